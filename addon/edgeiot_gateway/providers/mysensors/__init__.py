"""MySensors provider: a MySensors 2.x gateway over serial, TCP or MQTT, and its nodes."""

from __future__ import annotations

from .nodes import FirmwareSource
from .provider import OPTIONS_SCHEMA, MySensorsProvider

__all__ = ["OPTIONS_SCHEMA", "FirmwareSource", "MySensorsProvider"]
