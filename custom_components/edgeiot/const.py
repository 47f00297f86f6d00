"""Constants for the EdgeIoT integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "edgeiot"
LOGGER = logging.getLogger(__package__)

DEFAULT_PORT: Final = 8099
MANUFACTURER: Final = "EdgeIoT"

# HA bus event fired for node events (a button pressed on a node ...).
EVENT_NODE: Final = f"{DOMAIN}_event"

ATTR_NODE_ID: Final = "node_id"
ATTR_SOURCE_ID: Final = "source_id"
ATTR_FIELD_ID: Final = "field_id"
ATTR_EVENT_TYPE: Final = "event_type"
ATTR_DATA: Final = "data"
ATTR_FIELD: Final = "field"
ATTR_VALUE: Final = "value"
ATTR_CONFIG_ENTRY_ID: Final = "config_entry_id"

# Entry option: ids of nodes whose device the user deleted in HA (kept out until online again).
OPTION_FORGOTTEN: Final = "forgotten_nodes"

SERVICE_SET_FIELD: Final = "set_field"
SERVICE_BACKUP: Final = "backup"

# How often the hub asks the gateway for its providers' connection state (no event carries it).

# Reconnect backoff (seconds) after the gateway connection drops.
RECONNECT_MIN: Final = 1.0
RECONNECT_MAX: Final = 60.0
