"""Base entity: identity, device link, availability and live updates from the hub."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .discovery import EntityInfo
from .helpers import check_value, field_entity_name, field_key, node_identifier
from .hub import EdgeIoTHub, signal_add_entities
from .models import EdgeIoTConfigEntry


class EdgeIoTEntity(Entity):
    """An entity of one EdgeIoT node."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        self.hub = hub
        self.info = info
        self._rebuilding = False
        if not info.enabled:
            self._attr_entity_registry_enabled_default = False
        self._attr_unique_id = f"{hub.gateway_id}.{info.node_id}.{info.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={node_identifier(hub.gateway_id, info.node_id)}
        )

    @property
    def node(self) -> dict[str, Any]:
        """The node as last reported by the gateway."""
        return self.hub.nodes.get(self.info.node_id, {})

    @property
    def available(self) -> bool:
        return self.hub.connected and bool(self.node.get("online"))

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(self.hub.subscribe_node(self.info.node_id, self._handle_update))
        self.async_on_remove(
            self.hub.subscribe_definition(self.info.node_id, self.info.key, self._redefined)
        )

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()

    @callback
    def _redefined(self) -> None:
        """The node changed what this entity is built from: replace it (registry entry kept)."""
        if not self._rebuilding:
            self._rebuilding = True
            self.hub.entry.async_create_task(
                self.hass, self._async_rebuild(), f"rebuild {self.entity_id}"
            )

    async def _async_rebuild(self) -> None:
        await self.async_remove()
        self.hub.async_readd(self.info.node_id, self.info.key)


class EdgeIoTFieldEntity(EdgeIoTEntity):
    """An entity showing (and maybe setting) one field of a node."""

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        assert info.source_id is not None
        assert info.field_id is not None
        self.key = field_key(info.node_id, info.source_id, info.field_id)
        source = next(s for s in self.node["sources"] if s["id"] == info.source_id)
        self._attr_name = field_entity_name(source, self.field)

    @property
    def field(self) -> dict[str, Any]:
        """The field's description and last value."""
        return self.hub.fields.get(self.key, {})

    @property
    def field_value(self) -> Any:
        """The field's last value (None when unknown)."""
        return self.field.get("value")

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.hub.subscribe_field(self.key, self._handle_update))

    async def async_send_value(self, value: Any) -> None:
        """Send a value to the node through the gateway."""
        assert self.info.source_id is not None
        assert self.info.field_id is not None
        await self.hub.async_set_field(
            self.info.node_id, self.info.source_id, self.info.field_id, value
        )

    async def async_set_field(self, value: Any) -> None:
        """The `edgeiot.set_field` entity service: check the value, then send it."""
        await self.async_send_value(check_value(self.field, value, self.key))


type EntityFactory = Callable[[EdgeIoTHub, EntityInfo], Entity]


def platform_setup_entry(
    platform: Platform, factory: EntityFactory
) -> Callable[
    [HomeAssistant, EdgeIoTConfigEntry, AddConfigEntryEntitiesCallback], Coroutine[Any, Any, None]
]:
    """A platform module's `async_setup_entry` that adds `factory` entities for `platform`."""

    async def async_setup_entry(
        hass: HomeAssistant,
        entry: EdgeIoTConfigEntry,
        async_add_entities: AddConfigEntryEntitiesCallback,
    ) -> None:
        async_add_platform_entities(hass, entry, async_add_entities, platform, factory)

    return async_setup_entry


def async_add_platform_entities(
    hass: HomeAssistant,
    entry: EdgeIoTConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    platform: Platform,
    factory: EntityFactory,
) -> None:
    """Add the platform's entities now and whenever the hub discovers more."""
    hub = entry.runtime_data

    @callback
    def add(infos: list[EntityInfo]) -> None:
        async_add_entities(factory(hub, info) for info in infos)

    add(hub.current_infos(entry.entry_id, platform))
    entry.async_on_unload(
        async_dispatcher_connect(hass, signal_add_entities(entry.entry_id, platform), add)
    )
