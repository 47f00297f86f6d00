"""The device and entity registry side of a gateway: its devices, and pruning what is gone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .client import EdgeIoTError
from .const import DOMAIN, LOGGER, MANUFACTURER
from .discovery import TELEMETRY_KEYS
from .helpers import gateway_identifier, node_id_of, node_identifier
from .limit import DISABLED_KEYS

if TYPE_CHECKING:
    from .hub import EdgeIoTHub


@callback
def register_gateway_device(
    hass: HomeAssistant, entry: ConfigEntry[Any], gateway_id: str, gateway: dict[str, Any], url: str
) -> None:
    """The gateway's device; its configuration URL is the gateway's own page (no token)."""
    dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={gateway_identifier(gateway_id)},
        manufacturer=MANUFACTURER,
        model="EdgeIoT gateway",
        name=f"EdgeIoT gateway {gateway_id}",
        sw_version=gateway.get("version"),
        configuration_url=url,
    )


@callback
def register_node_device(
    hass: HomeAssistant,
    entry: ConfigEntry[Any],
    gateway_id: str,
    node: dict[str, Any],
    *,
    sync_name: bool,
    main_entry_id: str,
) -> None:
    """Create or update a node's device in `entry` (the main entry `main_entry_id` holds the
    gateway's device, its via device); `sync_name`: take the gateway's user name."""
    registry = dr.async_get(hass)
    gateway = dr.async_get_device_id_by_identifier(
        hass, gateway_identifier(gateway_id), config_entry_id=main_entry_id
    )
    device = registry.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={node_identifier(gateway_id, node["id"])},
        name=node["name"],
        manufacturer=node.get("manufacturer") or MANUFACTURER,
        model=node.get("model") or node.get("kind"),
        sw_version=node.get("firmware"),
        hw_version=node.get("hardware"),
        via_device_id=gateway,
    )
    if sync_name and device.name_by_user != node.get("name_by_user"):
        registry.async_update_device(device.id, name_by_user=node.get("name_by_user"))


@callback
def prune_registry(
    hass: HomeAssistant,
    entry: ConfigEntry[Any],
    gateway_id: str,
    nodes: Mapping[str, Any],
    entity_keys: Mapping[str, Mapping[str, Any]],
) -> None:
    """Remove devices of nodes the gateway no longer has (`nodes`: all it has), and entities of
    fields gone from the nodes in `entity_keys` (those whose entities the entry holds)."""
    devices = dr.async_get(hass)
    node_of_device: dict[str, str] = {}
    for device in dr.async_entries_for_config_entry(devices, entry.entry_id):
        node_id = node_id_of(device.identifiers, gateway_id)
        if node_id is None:
            continue
        if node_id in nodes:
            node_of_device[device.id] = node_id
        else:
            devices.async_remove_device(device.id)
    entities = er.async_get(hass)
    for entity in er.async_entries_for_config_entry(entities, entry.entry_id):
        node_id = node_of_device.get(entity.device_id or "")
        if node_id is None or node_id not in entity_keys:
            continue
        key = entity.unique_id.removeprefix(f"{gateway_id}.{node_id}.")
        if key not in entity_keys[node_id] and key not in TELEMETRY_KEYS:
            entities.async_remove(entity.entity_id)


@callback
def move_node(
    hass: HomeAssistant, entry: ConfigEntry[Any], gateway_id: str, node_id: str
) -> set[str]:
    """Move a node's device and entities from another entry of the gateway into `entry` (same
    device, unique and entity ids), enabling those limit.py created disabled; returns these."""
    devices = dr.async_get(hass)
    identifier = node_identifier(gateway_id, node_id)
    if devices.async_get_device_by_identifier(identifier, entry.entry_id) is not None:
        return set()
    enabled: set[str] = set()
    entities = er.async_get(hass)
    for device in devices.async_get_devices(identifiers={identifier})[:1]:
        for entity in er.async_entries_for_device(
            entities, device.id, include_disabled_entities=True
        ):
            if entity.config_entry_id != device.config_entry_id:
                continue
            changes: dict[str, Any] = {"config_entry_id": entry.entry_id}
            if entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION and (
                entity.unique_id.rsplit(".", 1)[-1] not in DISABLED_KEYS
            ):
                changes["disabled_by"] = None
                enabled.add(entity.unique_id)
            entities.async_update_entity(entity.entity_id, **changes)
        devices.async_update_device(device.id, new_config_entry_id=entry.entry_id)
    return enabled


def hub_and_node(hass: HomeAssistant, device_id: str) -> tuple[EdgeIoTHub, dict[str, Any]] | None:
    """The hub and node behind a node's device (None for other devices and unknown nodes)."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None or device.config_entry_id is None:
        return None
    entry = hass.config_entries.async_get_entry(device.config_entry_id)
    if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
        return None
    hub: EdgeIoTHub = entry.runtime_data
    node_id = node_id_of(device.identifiers, hub.gateway_id)
    node = None if node_id is None else hub.nodes.get(node_id)
    return None if node is None or node_id in hub.forgotten else (hub, node)


@callback
def follow_rename(hub: EdgeIoTHub, event: Event[dr.EventDeviceRegistryUpdatedData]) -> None:
    """A node's device renamed in HA: the gateway's `name_by_user` follows."""
    if event.data["action"] != "update" or "name_by_user" not in event.data["changes"]:
        return
    device = dr.async_get(hub.hass).async_get(event.data["device_id"])
    node_id = None if device is None else node_id_of(device.identifiers, hub.gateway_id)
    if device is None or node_id is None:
        return
    owner = hub.owner_entry(node_id)
    node = hub.nodes.get(node_id)
    if owner is None or device.config_entry_id != owner.entry_id or node is None:
        return
    if node.get("name_by_user") == device.name_by_user:
        return
    hub.entry.async_create_task(
        hub.hass, _async_rename(hub, node["id"], device.name_by_user), "rename node"
    )


async def _async_rename(hub: EdgeIoTHub, node_id: str, name: str | None) -> None:
    try:
        await hub.client.command("rename_node", node_id=node_id, name=name)
    except EdgeIoTError as err:
        LOGGER.warning("Could not rename node %s on gateway %s: %s", node_id,
                       hub.gateway_id, err)  # fmt: skip
