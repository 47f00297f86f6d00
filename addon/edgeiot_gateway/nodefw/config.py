"""The node config (JSON) as the node runtime reads it (firmware/node/edgeiot/config.py), checked
before it goes into an image.

The builder is stricter than the node: an unknown key is an error here (a typo such as
"pasword" would otherwise ship silently), while the node reports and ignores it. Driver entries
are checked for their shape only (an object with a `type` and a unique `id`); their options are
the runtime's to check, which reports bad ones at boot. No message ever quotes a secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 64 * 1024
MAX_DRIVERS = 32
SECRETS = (("wifi", "password"), ("broker", "user"), ("broker", "password"))
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

# key: (kind, required); kinds: "id", "str" (1-128 chars), "secret" (<= 128 chars), (low, high).
type Spec = dict[str, tuple[str | tuple[int, int], bool]]
NODE: Spec = {
    "node_id": ("id", True), "name": ("str", False), "manufacturer": ("str", False),
    "model": ("str", False), "hardware": ("str", False),
    "heartbeat_interval": ((1, 86400), False), "watchdog": ((0, 3600), False),
    "health_window": ((10, 3600), False),
}  # fmt: skip
BROKER: Spec = {
    "host": ("str", True), "port": ((1, 65535), False), "user": ("str", False),
    "password": ("secret", False), "prefix": ("str", False), "client_id": ("str", False),
    "keepalive": ((5, 3600), False),
}  # fmt: skip
WIFI: Spec = {"ssid": ("str", True), "password": ("secret", False)}


class ConfigError(ValueError):
    """A node config the builder refuses; the message names the file and the key."""


def load(path: Path) -> dict[str, Any]:
    """Read and check the node config at `path`; ConfigError names the first problem."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {len(raw)} bytes, at most {MAX_CONFIG_BYTES}")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8") from None
    except json.JSONDecodeError as err:  # its message quotes no content, only the position
        raise ConfigError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    try:
        return check(doc)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def check(doc: object) -> dict[str, Any]:
    """Check a parsed node config; returns it unchanged (ConfigError otherwise)."""
    if not isinstance(doc, dict):
        raise ConfigError("expected a JSON object")
    sections = {"wifi": WIFI, "broker": BROKER}
    _check_object({k: v for k, v in doc.items() if k not in (*sections, "drivers")}, NODE, "")
    for name, spec in sections.items():
        if name not in doc:
            raise ConfigError(f"{name}: missing")
        if not isinstance(doc[name], dict):
            raise ConfigError(f"{name}: expected an object")
        _check_object(doc[name], spec, f"{name}.")
    _check_drivers(doc.get("drivers", []))
    return doc


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """What may be shown of a node config: its id and name, nothing else."""
    return {"node_id": doc["node_id"], "name": doc.get("name", doc["node_id"])}


def secrets(doc: dict[str, Any]) -> list[str]:
    """The secret values of a checked config (to prove they appear nowhere they must not)."""
    return [doc[a][b] for a, b in SECRETS if doc.get(a, {}).get(b)]


def _check_object(entry: dict[str, Any], spec: Spec, where: str) -> None:
    for key in entry:
        if key not in spec:
            raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(spec)})")
    for key, (kind, required) in spec.items():
        if key not in entry:
            if required:
                raise ConfigError(f"{where}{key}: missing")
            continue
        if (problem := _problem(kind, entry[key])) is not None:
            raise ConfigError(f"{where}{key}: {problem}")


def _problem(kind: str | tuple[int, int], value: object) -> str | None:
    if isinstance(kind, tuple):
        low, high = kind
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"expected an integer {low} to {high}"
    if kind == "id":
        ok = isinstance(value, str) and _ID.fullmatch(value) is not None
        return None if ok else "expected an id of 1-64 letters, digits, _ or -"
    if kind == "str":
        ok = isinstance(value, str) and 1 <= len(value) <= 128
        return None if ok else "expected a string of 1-128 characters"
    ok = isinstance(value, str) and len(value) <= 128  # a secret
    return None if ok else "expected a string of at most 128 characters"


def _check_drivers(drivers: object) -> None:
    if not isinstance(drivers, list):
        raise ConfigError("drivers: expected a list")
    if len(drivers) > MAX_DRIVERS:
        raise ConfigError(f"drivers: {len(drivers)} entries, at most {MAX_DRIVERS}")
    seen: set[str] = set()
    for number, entry in enumerate(drivers):
        where = f"drivers[{number}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object")
        kind, ident = entry.get("type"), entry.get("id")
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f'{where}.type: missing (the driver type, e.g. "dht22")')
        if not isinstance(ident, str) or not _ID.fullmatch(ident):
            raise ConfigError(f"{where}.id: expected an id of 1-64 letters, digits, _ or -")
        if ident in seen or ident == "node":
            raise ConfigError(f"{where}.id: duplicate or reserved id {ident!r}")
        seen.add(ident)
