"""Providers connect the gateway to node networks; each registers itself by type name."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import voluptuous as vol
from voluptuous.humanize import humanize_error

from ..config import ConfigError
from ..errors import StartupError
from .base import PROVIDERS, Provider, ProviderContext, register_provider

ENTRY_POINT_GROUP = "edgeiot.provider"


def provider_class(kind: str) -> type[Provider]:
    """The provider class registered for `kind` (built in, or from an installed plugin)."""
    if kind not in PROVIDERS:
        # Built-in providers register on import; plugins through the entry-point group.
        from . import can, mqtt, mysensors  # noqa: F401, PLC0415

        for entry in entry_points(group=ENTRY_POINT_GROUP, name=kind):
            entry.load()
    try:
        return PROVIDERS[kind]
    except KeyError:
        raise StartupError(
            f"unknown provider type {kind!r}",
            f"set the provider's `type` to one of {', '.join(sorted(PROVIDERS))}, or install"
            f" the package that adds {kind!r} (entry point group {ENTRY_POINT_GROUP})",
        ) from None


def create_provider(
    kind: str, name: str, context: ProviderContext, options: dict[str, Any]
) -> Provider:
    """A provider of type `kind`; options it refuses raise ConfigError naming the provider."""
    cls = provider_class(kind)
    try:
        return cls(name, context, options)
    except vol.Invalid as err:
        raise ConfigError(f"provider {name!r}: {humanize_error(options, err)}") from None


__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderContext",
    "create_provider",
    "provider_class",
    "register_provider",
]
