"""deploy/kubernetes: rendered offline, validated against the Kubernetes schemas,
and checked for the properties an operator relies on.

Every kustomization is rendered by `tests/deploy/kustomize.py` (and compared with
`kubectl kustomize` where kubectl exists), then each document is validated with
kubernetes-validate in strict mode (unknown fields are errors) for Kubernetes
1.30, the oldest version the manifests support (the preStop `sleep` action).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from packyard.cli import main
from packyard.routes.roles import serves
from packyard.settings import Role, Settings, load_settings
from tests.deploy.kustomize import Document, Unsupported, build, identity

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "example"
KUSTOMIZATIONS = [pytest.param(BASE, id="base"), pytest.param(OVERLAY, id="overlay")]
KUBERNETES_VERSION = "1.30"
ROLES: tuple[Role, ...] = ("index", "upload", "browser")


@functools.cache
def _rendered(directory: Path) -> tuple[Document, ...]:
    return tuple(build(directory))


def rendered(directory: Path) -> list[Document]:
    """The documents of a kustomization, rendered once per test session."""
    return list(_rendered(directory))


def of_kind(documents: list[Document], kind: str) -> dict[str, Document]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def pod_templates(documents: list[Document]) -> Iterator[tuple[str, Document]]:
    """(workload name, pod template) of every Deployment and Job."""
    for document in documents:
        if document["kind"] in ("Deployment", "Job"):
            yield document["metadata"]["name"], document["spec"]["template"]


def settings_of(documents: list[Document], tmp_path: Path) -> Settings:
    """The ConfigMap's packyard.toml, loaded by packyard itself (no environment)."""
    config = tmp_path / "packyard.toml"
    config.write_text(of_kind(documents, "ConfigMap")["packyard-config"]["data"]["packyard.toml"])
    return load_settings(config, environ={})


def parsed(args: list[str]) -> tuple[str, dict[str, Any]]:
    """A container's `args` as the `packyard` command parses them (nothing runs):
    the subcommand and its parameters. An unknown option or value fails here."""
    command = main.get_command(click.Context(main), args[0])
    assert command is not None, args
    return args[0], command.make_context(args[0], args[1:]).params


def strings(value: Any) -> Iterator[str]:
    """Every string anywhere in a document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


# Rendering and schemas


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_document_is_valid_for_kubernetes(directory: Path) -> None:
    documents = rendered(directory)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the offline renderer alone is checked")
    output = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    theirs = {identity(doc): doc for doc in yaml.safe_load_all(output) if doc}
    ours = {identity(doc): doc for doc in rendered(directory)}
    assert ours.keys() == theirs.keys()
    for key, document in ours.items():
        assert document == theirs[key], key


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\nconfigMapGenerator:\n  - name: x\n    literals: [a=b]\n"
    )
    with pytest.raises(Unsupported, match="configMapGenerator"):
        build(tmp_path)


def test_the_example_secret_is_left_out_of_the_kustomization() -> None:
    example = BASE / "secret.example.yaml"
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert example.name not in kustomization["resources"]
    secret = yaml.safe_load(example.read_text())
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())
    assert set(secret["stringData"]) == {
        "PACKYARD_DATABASE_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    }


# Security


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_every_container_runs_unprivileged_on_a_read_only_root(directory: Path) -> None:
    for name, template in pod_templates(rendered(directory)):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        emptydirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] > 0, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            writable = {
                mount["mountPath"]: mount["name"]
                for mount in container["volumeMounts"]
                if not mount.get("readOnly")
            }
            # Only throw-away directories are writable: the data dir and /tmp.
            assert set(writable.values()) <= emptydirs, name
            assert "/tmp" in writable, name


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_no_manifest_holds_a_secret(directory: Path, tmp_path: Path) -> None:
    documents = rendered(directory)
    assert not of_kind(documents, "Secret")
    credentials_in_url = re.compile(r"://[^/\s:@]+:[^/\s@]+@")
    for document in documents:
        for text in strings(document):
            assert not credentials_in_url.search(text), identity(document)
    for name, template in pod_templates(documents):
        for container in template["spec"]["containers"]:
            literal = {env["name"] for env in container.get("env", []) if "value" in env}
            assert literal <= {"PACKYARD_CONFIG", "PACKYARD_WORKERS"}, name
            assert container["envFrom"] == [{"secretRef": {"name": "packyard"}}], name
    settings = settings_of(documents, tmp_path)
    assert settings.database_url is None
    assert settings.browser.session_secret is None
    assert settings.s3.access_key_id is None
    assert settings.s3.secret_access_key is None


# The processes


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_settings_file_is_valid_and_role_independent(directory: Path, tmp_path: Path) -> None:
    documents = rendered(directory)
    settings = settings_of(documents, tmp_path)
    assert settings.host == "0.0.0.0"
    assert settings.storage_url is not None
    assert settings.storage_url.startswith("s3://")
    assert settings.role == "all"  # each Deployment names its role
    for name, template in pod_templates(documents):
        container = template["spec"]["containers"][0]
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert str(settings.data_dir) in mounts, name
        assert {"name": "PACKYARD_CONFIG", "value": "/etc/packyard/packyard.toml"} in container[
            "env"
        ]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_each_role_has_its_deployment(directory: Path) -> None:
    deployments = of_kind(rendered(directory), "Deployment")
    assert set(deployments) == {f"packyard-{role}" for role in ROLES}
    for role in ROLES:
        (container,) = deployments[f"packyard-{role}"]["spec"]["template"]["spec"]["containers"]
        assert container["args"] == ["serve", "--role", role, "--no-migrate"]
        command, params = parsed(container["args"])
        assert (command, params["role"], params["no_migrate"]) == ("serve", role, True)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_migration_job_runs_packyard_migrate(directory: Path) -> None:
    documents = rendered(directory)
    (job,) = of_kind(documents, "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert parsed(container["args"])[0] == "migrate"
    images = {
        c["image"]
        for d in of_kind(documents, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {container["image"]}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_deployments_probe_liveness_and_readiness(directory: Path) -> None:
    for name, deployment in of_kind(rendered(directory), "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["ports"] == [{"name": "http", "containerPort": 8000}], name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_shutdown_drains_before_the_grace_period_ends(directory: Path, tmp_path: Path) -> None:
    documents = rendered(directory)
    grace = settings_of(documents, tmp_path).shutdown_grace_seconds
    for name, deployment in of_kind(documents, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        drain = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert drain > 0, name
        # The kubelet's clock runs from the preStop hook: sleep, then SIGTERM's grace.
        assert pod["terminationGracePeriodSeconds"] > drain + grace, name


SPOOL_ROOM = 4 * 1024**3  # upstream files being cached are spooled to the data directory
QUANTITIES = {"Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_index_data_directory_holds_its_local_copies(directory: Path, tmp_path: Path) -> None:
    """The index pods copy the files they serve into their data emptyDir
    (`[s3] local_copies_mb`): past its sizeLimit the kubelet would evict the pod."""
    documents = rendered(directory)
    copies = settings_of(documents, tmp_path).s3.local_copies_mb * 1024**2
    pod = of_kind(documents, "Deployment")["packyard-index"]["spec"]["template"]["spec"]
    (data,) = [volume for volume in pod["volumes"] if volume["name"] == "data"]
    limit = str(data["emptyDir"]["sizeLimit"])
    assert int(limit[:-2]) * QUANTITIES[limit[-2:]] >= copies + SPOOL_ROOM


# Scaling and routing


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_index_is_autoscaled_and_protected_from_disruption(directory: Path) -> None:
    documents = rendered(directory)
    index = of_kind(documents, "Deployment")["packyard-index"]
    assert "replicas" not in index["spec"]  # the autoscaler's to set
    (hpa,) = of_kind(documents, "HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "packyard-index",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (pdb,) = of_kind(documents, "PodDisruptionBudget").values()
    selected = [
        name
        for name, template in pod_templates(documents)
        if selects(pdb["spec"]["selector"]["matchLabels"], template)
    ]
    assert selected == ["packyard-index"]


def selects(selector: dict[str, str], template: Document) -> bool:
    labels: dict[str, str] = template["metadata"]["labels"]
    return selector.items() <= labels.items()


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_each_service_selects_the_pods_of_one_role(directory: Path) -> None:
    documents = rendered(directory)
    templates = dict(pod_templates(documents))
    services = of_kind(documents, "Service")
    assert set(services) == {f"packyard-{role}" for role in ROLES}
    for name, service in services.items():
        selected = [w for w, t in templates.items() if selects(service["spec"]["selector"], t)]
        assert selected == [name]
        container = templates[name]["spec"]["containers"][0]
        ports = {port["name"] for port in container["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports


ROUTES = {
    "/simple/": "packyard-index",
    "/simple/requests/": "packyard-index",
    "/files/requests/requests-2.32.3-py3-none-any.whl": "packyard-index",
    "/files/requests/requests-2.32.3-py3-none-any.whl.metadata": "packyard-index",
    "/snapshot/2025-01-31/simple/": "packyard-index",
    "/osv/v1/querybatch": "packyard-index",
    "/legacy/": "packyard-upload",
    "/api/v1/openapi.json": "packyard-upload",
    "/": "packyard-browser",
    "/search": "packyard-browser",
    "/project/requests/": "packyard-browser",
    "/admin/": "packyard-browser",
    "/static/0123456789abcdef/app.css": "packyard-browser",
    "/simplex": "packyard-browser",
}


def route(ingress: Document, path: str) -> str:
    """The Service an Ingress sends `path` to: the longest matching Prefix, matched
    element by element as the Ingress API defines it."""
    elements = [part for part in path.split("/") if part]
    best: tuple[int, str] | None = None
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            assert entry["pathType"] == "Prefix"
            prefix = [part for part in entry["path"].split("/") if part]
            if elements[: len(prefix)] == prefix and (best is None or len(prefix) > best[0]):
                best = (len(prefix), entry["backend"]["service"]["name"])
    assert best is not None, path
    return best[1]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_ingress_routes_each_path_to_its_role(directory: Path) -> None:
    documents = rendered(directory)
    (ingress,) = of_kind(documents, "Ingress").values()
    assert {path: route(ingress, path) for path in ROUTES} == ROUTES
    # ... and each lands on a process whose role answers it (routes/roles.py).
    roles = {f"packyard-{role}": role for role in ROLES}
    for path, service in ROUTES.items():
        assert serves(roles[service], path), path
    services = of_kind(documents, "Service")
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            backend = entry["backend"]["service"]
            ports = {port["name"] for port in services[backend["name"]]["spec"]["ports"]}
            assert backend["port"]["name"] in ports
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "1100m"


# The example overlay


def test_the_overlay_applies_the_sites_values(tmp_path: Path) -> None:
    documents = rendered(OVERLAY)
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "packyard", identity(document)
        assert document["metadata"]["labels"]["app.kubernetes.io/instance"] == "packyard-example"
    for name, template in pod_templates(documents):
        image = template["spec"]["containers"][0]["image"]
        assert image == "registry.example.org/platform/packyard:0.1.0", name
    deployments = of_kind(documents, "Deployment")
    assert deployments["packyard-upload"]["spec"]["replicas"] == 3
    assert deployments["packyard-browser"]["spec"]["replicas"] == 3
    hpa = of_kind(documents, "HorizontalPodAutoscaler")["packyard-index"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    ingress = of_kind(documents, "Ingress")["packyard"]
    assert ingress["spec"]["rules"][0]["host"] == "pypi.example.org"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["pypi.example.org"], "secretName": "pypi-example-org-tls"}
    ]
    assert settings_of(documents, tmp_path).storage_url == "s3://example-packyard/prod"
