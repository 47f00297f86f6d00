"""Diagnostics for a gateway entry and a node device (token redacted)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from .helpers import node_id_of
from .models import EdgeIoTConfigEntry
from .partitions import CONF_PARTITION, is_partition

TO_REDACT = {CONF_TOKEN}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EdgeIoTConfigEntry
) -> dict[str, Any]:
    """The entry, the gateway's info and counters, and every node (a partition entry: its
    main entry and its nodes)."""
    hub = entry.runtime_data
    if is_partition(entry):
        partition = int(entry.data[CONF_PARTITION])
        return {
            "entry": async_redact_data(entry.as_dict(), TO_REDACT),
            "main_entry_id": hub.entry.entry_id,
            "gateway_id": hub.gateway_id,
            "partition": partition,
            "nodes": sorted(hub.partitions.nodes_of(partition)),
        }
    try:
        gateway_diagnostics: Any = await hub.client.command("get_diagnostics")
    except Exception as err:
        gateway_diagnostics = {"error": repr(err)}
    return {
        "entry": async_redact_data(entry.as_dict(), TO_REDACT),
        "connected": hub.connected,
        "gateway": hub.gateway,
        "gateway_diagnostics": gateway_diagnostics,
        "nodes": list(hub.nodes.values()),
    }


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: EdgeIoTConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """One node as the gateway reports it."""
    hub = entry.runtime_data
    if (node_id := node_id_of(device.identifiers, hub.gateway_id)) is not None:
        return {"node": hub.nodes.get(node_id)}
    return {"gateway": hub.gateway, "connected": hub.connected}
