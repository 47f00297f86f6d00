"""docs/configuration.md names every configuration key with its default.

The schemas are walked (CONFIG_SCHEMA and each built-in provider's OPTIONS_SCHEMA); every mapping
is a section, and the table after `<!-- keys: SECTION -->` must list exactly its keys, each with
its default as TOML (`required` for required keys, `—` for keys without a default).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol

from edgeiot_gateway.config import CONFIG_SCHEMA
from edgeiot_gateway.providers import PROVIDERS

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"
MARKER = re.compile(r"^<!-- keys: ?(?P<section>[a-z_.]*) -->$")
ROW = re.compile(r"^\| `(?P<key>[a-z_]+)` \| (?P<default>[^|]+?) \|")


def _mapping(validator: Any) -> dict[vol.Marker, Any] | None:
    """The keyed mapping a validator checks (inside Schema, All/Any, a one-item list), or None."""
    if isinstance(validator, vol.Schema):
        validator = validator.schema
    if isinstance(validator, vol.All | vol.Any):
        found = (_mapping(v) for v in validator.validators)
        return next((m for m in found if m is not None), None)
    if isinstance(validator, list) and len(validator) == 1:
        return _mapping(validator[0])
    if (
        isinstance(validator, dict)
        and validator
        and all(isinstance(k, vol.Marker) and isinstance(k.schema, str) for k in validator)
    ):
        return validator
    return None


def _sections(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, vol.Marker]]]:
    """(section path, its leaf keys) for a schema and every mapping nested in it."""
    mapping = _mapping(schema)
    assert mapping is not None
    leaves: dict[str, vol.Marker] = {}
    for marker, value in mapping.items():
        if _mapping(value) is not None:
            yield from _sections(value, f"{path}.{marker.schema}".lstrip("."))
        else:
            leaves[marker.schema] = marker
    yield path, leaves


def schema_sections() -> dict[str, dict[str, vol.Marker]]:
    """Every section of the gateway configuration, provider options as `providers.<type>`."""
    importlib.import_module("edgeiot_gateway.providers.can")  # registers the built-ins
    importlib.import_module("edgeiot_gateway.providers.mqtt")
    importlib.import_module("edgeiot_gateway.providers.mysensors")
    sections = dict(_sections(CONFIG_SCHEMA))
    for kind, cls in PROVIDERS.items():
        if cls.__module__.startswith("edgeiot_gateway.providers."):
            schema = sys.modules[cls.__module__].OPTIONS_SCHEMA
            sections |= dict(_sections(schema, f"providers.{kind}"))
    return sections


def documented_sections() -> dict[str, dict[str, str]]:
    """section → {key: default cell} from the marked tables of the document."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in DOC.read_text().splitlines():
        if marker := MARKER.match(line):
            assert marker["section"] not in sections, f"section {marker['section']!r} twice"
            current = sections[marker["section"]] = {}
        elif current is not None and line.startswith("|"):
            if row := ROW.match(line):
                current[row["key"]] = row["default"]
        else:
            current = None
    return sections


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | list | dict):
        return json.dumps(value)
    return repr(value)


def expected_default(marker: vol.Marker) -> str:
    """The default cell the document must show for a key."""
    if isinstance(marker, vol.Required):
        return "required"
    default = marker.default
    if default is vol.UNDEFINED:
        return "—"
    return f"`{_toml(default() if callable(default) else default)}`"


def test_every_section_is_documented() -> None:
    """One table per mapping of the schemas, and no table for a section that does not exist."""
    assert set(documented_sections()) == set(schema_sections())


@pytest.mark.parametrize("section", sorted(schema_sections()))
def test_every_key_is_documented_with_its_default(section: str) -> None:
    """Every key of a section is a row with its default; no row names a key that is gone."""
    documented = documented_sections().get(section, {})
    keys = schema_sections()[section]
    assert sorted(documented) == sorted(keys), f"section {section!r} of {DOC.name}"
    for key, marker in keys.items():
        assert documented[key] == expected_default(marker), f"{section}.{key}".lstrip(".")
