"""HA's limit of enabled entities per config entry, and how EdgeIoT stays within it.

HA (2026.10) creates at most MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY (10,000) entities that are
enabled by default per config entry; it does not count disabled ones, and it checks the limit only
when it creates an entity, not when the user enables one. So EdgeIoT creates every entity, and
those past the limit disabled by default: they are in the registry, listed by a repair issue, and
the user enables the ones they need (Settings → Entities). Nothing is silently missing.
"""

from __future__ import annotations

from dataclasses import replace

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY

from .const import DOMAIN
from .discovery import DISABLED_BY_DEFAULT, EntityInfo

ENTITY_LIMIT = MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
# Kept free for the gateway's own entities (status figures, connectivity of each provider).
GATEWAY_RESERVE = 64
# Keys of node entities that are disabled by default anyway (not because of the limit).
DISABLED_KEYS = frozenset({"rssi", "last_seen"})


@callback
def limited_entities(hass: HomeAssistant, entry_id: str, gateway_id: str) -> set[str]:
    """Unique ids of the entry's node entities disabled by the integration for the limit."""
    return {
        entity.unique_id
        for entity in er.async_entries_for_config_entry(er.async_get(hass), entry_id)
        if entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        and entity.unique_id.rsplit(".", 1)[-1] not in DISABLED_KEYS
        and entity.unique_id.startswith(f"{gateway_id}.")
    }


class EntityBudget:
    """Decides, for each new node entity, whether HA may create it enabled."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self.hass = hass
        self.entry_id = entry_id
        self._pending: set[tuple[str, str]] = (
            set()
        )  # (domain, unique id) let in, not registered yet
        self.limited: set[str] = set()  # unique ids created disabled because of the limit

    @callback
    def load(self, gateway_id: str) -> None:
        """Count entities a previous run created disabled because of the limit."""
        self.limited |= limited_entities(self.hass, self.entry_id, gateway_id)

    @callback
    def admit(self, infos: list[EntityInfo], unique_id: dict[str, str]) -> list[EntityInfo]:
        """`infos` with those past the limit disabled by default (`unique_id`: key → id)."""
        registry = er.async_get(self.hass)
        self._pending = {
            (domain, uid)
            for domain, uid in self._pending
            if registry.async_get_entity_id(domain, DOMAIN, uid) is None
        }
        used = registry.entities.get_enabled_count_for_config_entry_id(self.entry_id)
        used += len(self._pending)
        admitted: list[EntityInfo] = []
        for info in infos:
            uid = unique_id[info.key]
            if (
                info.kind in DISABLED_BY_DEFAULT
                or registry.async_get_entity_id(info.platform, DOMAIN, uid) is not None
            ):
                admitted.append(info)  # HA keeps what its registry says
            elif used < ENTITY_LIMIT - GATEWAY_RESERVE:
                used += 1
                self._pending.add((info.platform, uid))
                admitted.append(info)
            else:
                self.limited.add(uid)
                admitted.append(replace(info, enabled=False))
        return admitted

    @callback
    def forget(self, unique_ids: set[str]) -> None:
        """Entities removed from HA."""
        self.limited -= unique_ids
