"""Identifiers shared by devices, entities, actions and diagnostics."""

from __future__ import annotations

from collections.abc import Iterable

from .const import DOMAIN


def gateway_identifier(gateway_id: str) -> tuple[str, str]:
    """The device-registry identifier of a gateway."""
    return (DOMAIN, gateway_id)


def node_identifier(gateway_id: str, node_id: str) -> tuple[str, str]:
    """The device-registry identifier of a node."""
    return (DOMAIN, f"{gateway_id}-{node_id}")


def node_id_of(identifiers: Iterable[tuple[str, str]], gateway_id: str) -> str | None:
    """The node id behind a device's identifiers (None for the gateway or another device)."""
    prefix = f"{gateway_id}-"
    for domain, identifier in identifiers:
        if domain == DOMAIN and identifier.startswith(prefix):
            return identifier[len(prefix) :]
    return None


def field_key(node_id: str, source_id: str, field_id: str) -> str:
    """A field's id within its gateway: `node.source.field` (the unique id adds the gateway)."""
    return f"{node_id}.{source_id}.{field_id}"
