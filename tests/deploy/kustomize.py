"""A small kustomize: `kustomize build` for the features deploy/kubernetes uses, offline.

Why it exists: the tests render the manifests on any machine that has the
project installed, where kubectl and kustomize may not be, and no PyPI package
renders kustomizations offline (the Python bindings of kustomize are young and
build a Go library). When kubectl is on the PATH, the tests compare this
renderer's output with `kubectl kustomize`, so that the two cannot drift apart
unnoticed.

What it does, in kustomize's order for one kustomization (`kusttarget.go`):
`resources` (files and directories, depth first), then `patches` (strategic
merge and JSON 6902), `namespace`, `labels`, `replicas`, `images`.

It refuses rather than guesses: any other field of a kustomization, any
strategic-merge directive (`$patch`...), a list field whose merge rule it does
not know, a JSON patch operation other than add/replace/remove, and
`labels.includeSelectors` raise `Unsupported`. The output is in resource order,
not kustomize's kind order: compare it by resource identity.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

Document = dict[str, Any]

_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
}

# Lists that a strategic-merge patch merges element by element, by this key
# (the `patchMergeKey` of the Kubernetes API types that the patches touch).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
}
# Lists without a merge key: a patch replaces them whole.
_ATOMIC_LISTS = {"args", "command", "rules", "paths", "tls", "hosts", "metrics", "drop", "add"}

# Kinds without a namespace: the namespace transformer leaves them alone.
_CLUSTER_KINDS = {
    "Namespace",
    "ClusterRole",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
}
# Kinds whose references to namespaces kustomize rewrites too: not supported here.
_NAMESPACE_REFERENCES = {
    "RoleBinding",
    "ClusterRoleBinding",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
}
# Where workload kinds keep their pod template.
_POD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
_SCALABLE = {"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"}


class Unsupported(Exception):
    """The kustomization uses a feature this renderer does not implement."""


def build(directory: Path) -> list[Document]:
    """Render the kustomization in `directory`, like `kustomize build DIRECTORY`.

    Raises:
        Unsupported: a feature outside the subset described in the module doc.
        ValueError: two resources with one identity, or a patch that matches nothing.
    """
    kustomization = _load_one(directory / "kustomization.yaml")
    unknown = set(kustomization) - _FIELDS
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {sorted(unknown)}")
    documents: list[Document] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        documents += build(path) if path.is_dir() else _load_all(path)
    _check_unique(documents)
    for patch in kustomization.get("patches", []):
        _apply_patch(documents, patch, directory)
    if "namespace" in kustomization:
        _set_namespace(documents, kustomization["namespace"])
    for labels in kustomization.get("labels", []):
        _add_labels(documents, labels)
    for replicas in kustomization.get("replicas", []):
        _set_replicas(documents, replicas)
    for image in kustomization.get("images", []):
        _set_image(documents, image)
    return documents


def identity(document: Document) -> tuple[str, str, str, str]:
    """(apiVersion, kind, namespace, name): what kustomize keys a resource by."""
    metadata = document["metadata"]
    namespace = metadata.get("namespace", "")
    return document["apiVersion"], document["kind"], namespace, metadata["name"]


def _load_one(path: Path) -> Document:
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a YAML mapping")
    return loaded


def _load_all(path: Path) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _check_unique(documents: list[Document]) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for document in documents:
        key = identity(document)
        if key in seen:
            raise ValueError(f"two resources are {key}")
        seen.add(key)


# Patches


def _apply_patch(documents: list[Document], entry: Document, directory: Path) -> None:
    """One `patches` entry: a strategic-merge patch or a JSON 6902 operation list."""
    unknown = set(entry) - {"path", "patch", "target"}
    if unknown:
        raise Unsupported(f"patch options {sorted(unknown)}")
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    body = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(body, list):
        if target is None:
            raise ValueError("a JSON 6902 patch needs a target")
        matched = _matching(documents, target)
        for document in matched:
            _apply_json6902(document, body)
    else:
        if target is None:
            target = {"kind": body["kind"], "name": body["metadata"]["name"]}
        matched = _matching(documents, target)
        for document in matched:
            _strategic_merge(document, body, path="")
    if not matched:
        raise ValueError(f"patch target {target} matches no resource")


def _matching(documents: list[Document], target: Document) -> list[Document]:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise Unsupported(f"patch target selectors {sorted(unknown)}")
    return [doc for doc in documents if _targets(doc, target)]


def _targets(document: Document, target: Document) -> bool:
    group, _, version = document["apiVersion"].rpartition("/")
    metadata = document["metadata"]
    # kustomize matches each given field as an anchored regular expression.
    wanted = {
        "group": group,
        "version": version,
        "kind": document["kind"],
        "name": metadata["name"],
        "namespace": metadata.get("namespace", ""),
    }
    return all(re.fullmatch(pattern, wanted[field]) for field, pattern in target.items())


def _strategic_merge(original: Document, patch: Document, path: str) -> None:
    """Merge `patch` into `original` in place: maps key by key, `null` deletes a
    key, lists by their merge key or whole (see `_MERGE_KEYS`)."""
    for key, value in patch.items():
        if key.startswith("$"):
            raise Unsupported(f"strategic-merge directive {key} at {path}")
        where = f"{path}/{key}"
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict) and isinstance(original.get(key), dict):
            _strategic_merge(original[key], value, where)
        elif isinstance(value, list) and key in _MERGE_KEYS:
            original[key] = _merge_list(original.get(key, []), value, _MERGE_KEYS[key], where)
        elif isinstance(value, list) and key not in _ATOMIC_LISTS:
            raise Unsupported(f"no merge rule for the list at {where}")
        else:
            original[key] = copy.deepcopy(value)


def _merge_list(original: list[Any], patch: list[Any], merge_key: str, path: str) -> list[Any]:
    merged = list(original)
    for item in patch:
        name = item[merge_key]
        match = next((old for old in merged if old.get(merge_key) == name), None)
        if match is None:
            merged.append(copy.deepcopy(item))
        else:
            _strategic_merge(match, item, f"{path}[{name}]")
    return merged


def _apply_json6902(document: Document, operations: list[Document]) -> None:
    """RFC 6902 add, replace and remove; RFC 6901 pointers."""
    for operation in operations:
        op = operation["op"]
        if op not in ("add", "replace", "remove"):
            raise Unsupported(f"JSON patch operation {op!r}")
        *parents, last = [
            part.replace("~1", "/").replace("~0", "~")
            for part in operation["path"].removeprefix("/").split("/")
        ]
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            index = len(node) if last == "-" else int(last)
            if op == "add":
                node.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                node[index] = copy.deepcopy(operation["value"])
            else:
                del node[index]
        elif op == "add":
            node[last] = copy.deepcopy(operation["value"])
        elif op == "replace":
            if last not in node:
                raise ValueError(f"JSON patch replace of a missing {operation['path']}")
            node[last] = copy.deepcopy(operation["value"])
        else:
            del node[last]


# Transformers


def _set_namespace(documents: list[Document], namespace: str) -> None:
    for document in documents:
        if document["kind"] in _NAMESPACE_REFERENCES:
            raise Unsupported(f"namespace for a {document['kind']}")
        if document["kind"] not in _CLUSTER_KINDS:
            document["metadata"]["namespace"] = namespace


def _add_labels(documents: list[Document], entry: Document) -> None:
    """`labels`: every resource's metadata, and with `includeTemplates` the pod templates."""
    unknown = set(entry) - {"pairs", "includeSelectors", "includeTemplates"}
    if unknown or entry.get("includeSelectors"):
        raise Unsupported(f"labels options {entry}")
    pairs: dict[str, str] = entry["pairs"]
    for document in documents:
        document["metadata"].setdefault("labels", {}).update(pairs)
        template_path = _POD_TEMPLATES.get(document["kind"])
        if not entry.get("includeTemplates") or template_path is None:
            continue
        _at(document, (*template_path, "metadata", "labels")).update(pairs)
        if document["kind"] == "CronJob":
            _at(document, ("spec", "jobTemplate", "metadata", "labels")).update(pairs)


def _set_replicas(documents: list[Document], entry: Document) -> None:
    matched = [
        doc
        for doc in documents
        if doc["kind"] in _SCALABLE and doc["metadata"]["name"] == entry["name"]
    ]
    if not matched:
        raise ValueError(f"replicas for {entry['name']}, which is no workload here")
    for document in matched:
        document["spec"]["replicas"] = entry["count"]


def _set_image(documents: list[Document], entry: Document) -> None:
    """`images`: rename and re-tag every container image named `entry["name"]`."""
    unknown = set(entry) - {"name", "newName", "newTag", "digest"}
    if unknown:
        raise Unsupported(f"images options {sorted(unknown)}")
    for document in documents:
        template_path = _POD_TEMPLATES.get(document["kind"])
        if template_path is None:
            continue
        pod = _at(document, (*template_path, "spec"))
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            name, suffix = _split_image(container["image"])
            if name != entry["name"]:
                continue
            if "digest" in entry:
                suffix = "@" + entry["digest"]
            elif "newTag" in entry:
                suffix = ":" + entry["newTag"]
            container["image"] = entry.get("newName", name) + suffix


def _split_image(image: str) -> tuple[str, str]:
    """`registry:5000/name:tag@digest` -> (`registry:5000/name`, `:tag@digest`)."""
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon:] + at + digest
    return name, at + digest


def _at(document: Document, path: tuple[str, ...]) -> Document:
    node = document
    for key in path:
        node = node.setdefault(key, {})
    return node
