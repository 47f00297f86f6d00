"""HA's limit of enabled entities per config entry: the genuine overflow.

HA (2026.10) creates at most MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY (10,000) entities that are
enabled by default per config entry; it does not count disabled ones, and it checks the limit only
when it creates an entity, not when the user enables one. Partition entries (partitions.py) keep
each entry under the limit; an entry can still overflow when the user enabled many
disabled-by-default entities or one node alone has more. Then EdgeIoT creates the entities past
the limit disabled by default: they are in the registry, counted by a repair issue, and the user
enables the ones they need (Settings → Entities). Nothing is silently missing.
"""

from __future__ import annotations

from dataclasses import replace

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.entity_platform import MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY

from .const import DOMAIN
from .discovery import DISABLED_BY_DEFAULT, EntityInfo
from .partitions import GATEWAY_RESERVE

ENTITY_LIMIT = MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
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
    """Decides, for each new node entity, whether HA may create it enabled in its entry."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        # entry id → (domain, unique id) let in, not registered yet
        self._pending: dict[str, set[tuple[str, str]]] = {}
        self.limited: set[str] = set()  # unique ids created disabled because of the limit

    @callback
    def load(self, entry_id: str, gateway_id: str) -> None:
        """Count entities a previous run created disabled in the entry because of the limit."""
        self.limited |= limited_entities(self.hass, entry_id, gateway_id)

    @callback
    def admit(
        self, entry_id: str, infos: list[EntityInfo], unique_id: dict[str, str]
    ) -> list[EntityInfo]:
        """`infos` with those past the entry's limit disabled by default (`unique_id`: key →
        id)."""
        registry = er.async_get(self.hass)
        pending = self._pending[entry_id] = {
            (domain, uid)
            for domain, uid in self._pending.get(entry_id, ())
            if registry.async_get_entity_id(domain, DOMAIN, uid) is None
        }
        used = registry.entities.get_enabled_count_for_config_entry_id(entry_id) + len(pending)
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
                pending.add((info.platform, uid))
                admitted.append(info)
            else:
                self.limited.add(uid)
                admitted.append(replace(info, enabled=False))
        return admitted

    @callback
    def forget(self, unique_ids: set[str]) -> None:
        """Entities removed from HA, or enabled in another entry."""
        self.limited -= unique_ids

    @callback
    def report(self, main_entry_id: str, gateway_id: str) -> None:
        """Tell the user (repair issue) how many entities were created disabled by the limit."""
        issue_id = f"entity_limit_{main_entry_id}"
        if not self.limited:
            ir.async_delete_issue(self.hass, DOMAIN, issue_id)
            return
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="entity_limit",
            translation_placeholders={
                "gateway": gateway_id, "count": str(len(self.limited)),
                "limit": str(ENTITY_LIMIT),
            },
        )  # fmt: skip
