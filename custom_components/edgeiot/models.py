"""Typed runtime data of a config entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry

if TYPE_CHECKING:
    from .hub import EdgeIoTHub

type EdgeIoTConfigEntry = ConfigEntry[EdgeIoTHub]
