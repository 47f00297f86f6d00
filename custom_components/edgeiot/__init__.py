"""The EdgeIoT integration: HA client of an EdgeIoT gateway's WebSocket API."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.typing import ConfigType

from .client import EdgeIoTClient, EdgeIoTError, InvalidAuth, WrongGateway
from .const import DOMAIN
from .discovery import PLATFORMS
from .helpers import node_id_of
from .hub import EdgeIoTHub
from .migrate import async_migrate_registry_ids
from .models import EdgeIoTConfigEntry
from .partitions import (
    CONF_MAIN_ENTRY_ID,
    async_remove_partitions,
    is_partition,
    partition_entries,
)
from .services import async_setup_services
from .wrong_gateway import async_raise_wrong_gateway

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's actions (once, for every entry)."""
    async_setup_services(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: EdgeIoTConfigEntry) -> bool:
    """Bring an entry written by an older version up to date (registry ids)."""
    if entry.version > 1:
        return False  # written by a newer version: refuse rather than guess
    if entry.minor_version < 2:
        async_migrate_registry_ids(hass, entry)
        hass.config_entries.async_update_entry(entry, minor_version=2)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: EdgeIoTConfigEntry) -> bool:
    """Connect to the gateway, mirror its nodes and keep listening (a partition entry: take
    its share of the nodes from the main entry's hub)."""
    if is_partition(entry):
        return await _async_setup_partition(hass, entry)
    client = EdgeIoTClient(
        async_get_clientsession(hass),
        entry.data[CONF_HOST],
        entry.data[CONF_PORT],
        entry.data[CONF_TOKEN],
    )
    hub = EdgeIoTHub(hass, entry, client)
    await hub.partitions.async_load()
    try:
        await hub.async_connect()
    except InvalidAuth as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="invalid_auth"
        ) from err
    except WrongGateway as err:
        # Retried: the right gateway may come back; the repair issue says how to fix the address.
        async_raise_wrong_gateway(hass, entry.entry_id, err, hub.client.url)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="wrong_gateway",
            translation_placeholders={"expected": err.expected, "found": err.found},
        ) from err
    except EdgeIoTError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err
    entry.runtime_data = hub
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    hub.async_start_listening()

    @callback
    def state_changed() -> None:
        if entry.state is ConfigEntryState.LOADED:
            hub.async_main_loaded()

    entry.async_on_unload(entry.async_on_state_change(state_changed))
    return True


async def _async_setup_partition(hass: HomeAssistant, entry: EdgeIoTConfigEntry) -> bool:
    main_entry_id = entry.data[CONF_MAIN_ENTRY_ID]
    main = hass.config_entries.async_get_entry(main_entry_id)
    if main is None or main.state is not ConfigEntryState.LOADED:
        # Retried, and reloaded by the main entry once it is loaded.
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="main_not_loaded",
            translation_placeholders={"main_entry_id": main_entry_id},
        )
    hub: EdgeIoTHub = main.runtime_data
    entry.runtime_data = hub
    hub.async_attach_partition(entry)
    entry.async_on_unload(lambda: hub.async_detach_partition(entry))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: EdgeIoTConfigEntry) -> bool:
    """Unload platforms and close the connection (a main entry unloads its partitions first:
    they use its hub)."""
    if not is_partition(entry):
        for partition in partition_entries(hass, entry.entry_id).values():
            if partition.state is ConfigEntryState.LOADED:
                await hass.config_entries.async_unload(partition.entry_id)
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded and not is_partition(entry):
        await entry.runtime_data.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: EdgeIoTConfigEntry) -> None:
    """A removed main entry takes its partition entries and node assignment along."""
    if not is_partition(entry):
        await async_remove_partitions(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: EdgeIoTConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Let the user delete an offline node's device: HA forgets it; the gateway keeps the node
    until the user confirms its removal there too (repair issue). Online nodes and the gateway
    cannot be deleted (they would come straight back)."""
    hub = entry.runtime_data
    node_id = node_id_of(device.identifiers, hub.gateway_id)
    if node_id is None:
        return False  # the gateway device itself
    node = hub.nodes.get(node_id)
    if node is None:
        return True  # a leftover: the gateway no longer has it
    if node.get("online"):
        return False
    hub.async_forget_node(node_id)
    return True
