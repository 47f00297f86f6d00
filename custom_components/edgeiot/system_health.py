"""System health: per gateway whether it is reachable, its version, nodes and drop counters."""

from __future__ import annotations

from typing import Any

from homeassistant.components.system_health import (
    SystemHealthRegistration,
    async_check_can_reach_url,
)
from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN
from .hub import EdgeIoTHub
from .partitions import is_partition


@callback
def async_register(hass: HomeAssistant, register: SystemHealthRegistration) -> None:
    """Register the info callback."""
    register.async_register_info(system_health_info)


def _figures(hub: EdgeIoTHub) -> dict[str, Any]:
    recorder = hub.status.get("recorder")
    online = sum(1 for node in hub.nodes.values() if node.get("online"))
    return {
        "connected": hub.connected,
        "version": hub.gateway.get("version"),
        "nodes": f"{online} online / {len(hub.nodes)}",
        "dropped": hub.status.get("dropped"),
        "recorder_queue": recorder.get("queued") if isinstance(recorder, dict) else "off",
    }


async def system_health_info(hass: HomeAssistant) -> dict[str, Any]:
    """One set of figures per loaded gateway; several gateways are prefixed by their id."""
    hubs: list[EdgeIoTHub] = [
        e.runtime_data
        for e in hass.config_entries.async_loaded_entries(DOMAIN)
        if not is_partition(e)
    ]
    info: dict[str, Any] = {}
    for hub in hubs:
        prefix = "" if len(hubs) == 1 else f"{hub.gateway_id} "
        info[f"{prefix}reachable"] = async_check_can_reach_url(hass, f"{hub.client.base_url}health")
        for key, value in _figures(hub).items():
            info[f"{prefix}{key}"] = value
    return info
