"""MySensors provider: a MySensors 2.x gateway over serial, TCP or MQTT, and its nodes."""

from __future__ import annotations

from .nodes import FirmwareSource
from .options import OPTIONS_SCHEMA
from .provider import MySensorsProvider

__all__ = ["OPTIONS_SCHEMA", "FirmwareSource", "MySensorsProvider"]
