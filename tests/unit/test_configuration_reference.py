"""docs/configuration.md documents every setting of the model (`settings.py`).

The reference claims "every setting": each key of `Settings`, and of each
nested table (`[auth]`, `[[upstreams]]`, `[[auth.oidc]]`, …), must have a row in
the table under that section's heading. A setting added to the model without
its row fails here, naming it.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel

from packyard.settings import Settings

REFERENCE = Path(__file__).parents[2] / "docs" / "configuration.md"
TOP_LEVEL = "Top level"

# A section heading names its table: "## `[s3]` — with …", "### `[[auth.oidc]]` — …".
_HEADING = re.compile(r"^#{2,4} +(?:`\[\[?(?P<table>[\w.]+)\]\]?`|(?P<plain>.+?))\s*(?:—.*)?$")
_ROW_KEY = re.compile(r"^\|\s*`(?P<key>\w+)`\s*\|")


def _nested_model(annotation: object) -> type[BaseModel] | None:
    """The model a field holds: itself, or the item of a tuple of tables (`[[…]]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (tuple, list, types.UnionType, typing.Union):
        for argument in typing.get_args(annotation):
            model = _nested_model(argument)
            if model is not None:
                return model
    return None


def model_keys(model: type[BaseModel], table: str = TOP_LEVEL) -> set[tuple[str, str]]:
    """(table, key) for every setting: scalar fields in their table, tables recursed."""
    keys: set[tuple[str, str]] = set()
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is None:
            keys.add((table, field.alias or name))
        else:
            keys |= model_keys(nested, name if table == TOP_LEVEL else f"{table}.{name}")
    return keys


def documented_keys(text: str) -> set[tuple[str, str]]:
    """(table, key) for every table row of the reference, by the heading above it."""
    keys: set[tuple[str, str]] = set()
    table: str | None = None
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading:
            table = heading["table"] or (TOP_LEVEL if heading["plain"] == TOP_LEVEL else None)
            continue
        row = _ROW_KEY.match(line)
        if row and table is not None and row["key"] != "key":
            keys.add((table, row["key"]))
    return keys


def test_every_setting_is_documented() -> None:
    missing = model_keys(Settings) - documented_keys(REFERENCE.read_text())
    assert not missing, "settings without a row in docs/configuration.md: " + ", ".join(
        f"[{table}] {key}" for table, key in sorted(missing)
    )


def test_every_documented_setting_exists() -> None:
    stale = documented_keys(REFERENCE.read_text()) - model_keys(Settings)
    assert not stale, "docs/configuration.md documents settings the model lacks: " + ", ".join(
        f"[{table}] {key}" for table, key in sorted(stale)
    )


def test_the_walk_finds_nested_tables() -> None:
    """The walk itself: a nested table and a list of tables are recursed, not listed as keys."""
    keys = model_keys(Settings)
    assert (TOP_LEVEL, "public_url") in keys
    assert ("upstreams", "url") in keys
    assert ("auth.oidc", "issuer") in keys
    assert (TOP_LEVEL, "auth") not in keys
    assert documented_keys("## `[[auth.oidc]]` — x\n\n| key |\n|---|\n| `issuer` | |\n") == {
        ("auth.oidc", "issuer")
    }
