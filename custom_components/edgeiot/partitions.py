"""Partition entries: one gateway's nodes spread over several config entries.

HA (2026.10) refuses new enabled entities past MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY per config
entry (docs/entity-limit.md). The gateway's entry (the *main* entry) keeps the connection, the
gateway device and the nodes up to CAPACITY entities; further nodes go to *partition* entries of
the same domain that the main entry creates itself. A node stays in its partition (persisted);
its removal frees the slot, and a partition left without nodes is removed.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import SOURCE_SYSTEM, ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity_platform import MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .helpers import node_identifier

# Entities per entry at most when a node is assigned; the headroom lets assigned nodes announce
# extra fields and stay in their entry.
CAPACITY = MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY - 1000
# Kept free in the main entry for the gateway's own entities (status, providers, alarms).
GATEWAY_RESERVE = 64
CONF_MAIN_ENTRY_ID = "main_entry_id"
CONF_PARTITION = "partition"
STORAGE_VERSION = 1
SAVE_DELAY = 1.0


def is_partition(entry: ConfigEntry[Any]) -> bool:
    """Whether `entry` is a partition entry (not a gateway's main entry)."""
    return CONF_MAIN_ENTRY_ID in entry.data


@callback
def partition_entries(hass: HomeAssistant, main_entry_id: str) -> dict[int, ConfigEntry[Any]]:
    """The partition entries of a main entry, by partition number."""
    return {
        int(entry.data[CONF_PARTITION]): entry
        for entry in hass.config_entries.async_entries(DOMAIN)
        if entry.data.get(CONF_MAIN_ENTRY_ID) == main_entry_id
    }


def _store(hass: HomeAssistant, main_entry_id: str) -> Store[dict[str, Any]]:
    return Store(hass, STORAGE_VERSION, f"{DOMAIN}.{main_entry_id}.partitions")


async def async_remove_partitions(hass: HomeAssistant, main_entry_id: str) -> None:
    """The main entry was removed: its partition entries and the assignment go too."""
    for entry in partition_entries(hass, main_entry_id).values():
        await hass.config_entries.async_remove(entry.entry_id)
    await _store(hass, main_entry_id).async_remove()


class Partitions:
    """The node → partition assignment of one main entry (partition 0 is the main entry)."""

    def __init__(self, hass: HomeAssistant, main_entry: ConfigEntry[Any]) -> None:
        self.hass = hass
        self.main_entry = main_entry
        self._store = _store(hass, main_entry.entry_id)
        self.assignment: dict[str, int] = {}
        self.sizes: dict[str, int] = {}  # node id → its enabled-by-default entities
        self.fresh = True  # nothing stored yet: the first start with partitions (migration)
        self._creating: set[int] = set()
        self._removing: set[int] = set()

    async def async_load(self) -> None:
        """Read the stored assignment."""
        if (data := await self._store.async_load()) is not None:
            self.assignment = {str(k): int(v) for k, v in data["nodes"].items()}
            self.fresh = False
            self._store.async_delay_save(self._data, SAVE_DELAY)

    def _data(self) -> dict[str, Any]:
        return {"nodes": dict(self.assignment)}

    async def async_save(self) -> None:
        """Write the assignment now (the hub stops)."""
        await self._store.async_save(self._data())

    @callback
    def partition_of(self, node_id: str) -> int | None:
        """The node's partition, None when it is not assigned."""
        return self.assignment.get(node_id)

    @callback
    def nodes_of(self, partition: int) -> list[str]:
        """Ids of the nodes assigned to `partition`."""
        return [node_id for node_id, n in self.assignment.items() if n == partition]

    @callback
    def assign(self, node_id: str, size: int, *, main: bool = True) -> int:
        """The node's partition; a new node goes to the first one it fits in (`main`: the main
        entry may take it), else to a new one. An assigned node never moves."""
        self.sizes[node_id] = size
        if (partition := self.assignment.get(node_id)) is not None:
            return partition
        loads = {0: GATEWAY_RESERVE}
        for other, n in self.assignment.items():
            loads[n] = loads.get(n, 0) + self.sizes.get(other, 0)
        fits = [n for n in sorted(loads) if (main or n) and loads[n] + size <= CAPACITY]
        partition = fits[0] if fits else min(set(range(1, len(loads) + 1)) - set(loads))
        self.assignment[node_id] = partition
        self._store.async_delay_save(self._data, SAVE_DELAY)
        return partition

    @callback
    def assign_dump(self, gateway_id: str, sizes: dict[str, int], limited: set[str]) -> None:
        """Assign every node of a state dump (`sizes`: node id → size), free those the gateway
        lost. On the first start with partitions, nodes whose device is in the main entry stay
        there, except those with entities limit.py created disabled (unique ids `limited`):
        they go to partitions, which enable them (devices.move_node)."""
        for node_id in set(self.assignment) - set(sizes):
            self.release(node_id)
        if self.fresh:
            registry = dr.async_get(self.hass)
            for node_id, size in sizes.items():
                identifier = node_identifier(gateway_id, node_id)
                if registry.async_get_device_by_identifier(identifier, self.main_entry.entry_id):
                    prefix = f"{gateway_id}.{node_id}."
                    if any(uid.startswith(prefix) for uid in limited):
                        self.assign(node_id, size, main=False)
                    else:
                        self.sizes[node_id], self.assignment[node_id] = size, 0
            self.fresh = False
            self._store.async_delay_save(self._data, SAVE_DELAY)
        for node_id, size in sizes.items():
            self.assign(node_id, size)

    @callback
    def release(self, node_id: str) -> None:
        """The node is gone from the gateway: its slot is free."""
        self.sizes.pop(node_id, None)
        if self.assignment.pop(node_id, None) is not None:
            self._store.async_delay_save(self._data, SAVE_DELAY)

    @callback
    def async_sync_entries(self) -> None:
        """Create the entry of each partition that has nodes but none; remove entries of
        partitions without nodes. Only while the main entry is loaded."""
        used = set(self.assignment.values()) - {0}
        existing = partition_entries(self.hass, self.main_entry.entry_id)
        for partition in sorted(used - set(existing) - self._creating):
            self._creating.add(partition)
            self.main_entry.async_create_task(
                self.hass, self._async_create(partition), f"{DOMAIN} create partition {partition}"
            )
        for partition, entry in existing.items():
            if partition not in used and partition not in self._removing:
                self._removing.add(partition)
                self.hass.async_create_task(
                    self._async_remove(partition, entry.entry_id),
                    f"{DOMAIN} remove empty partition {partition}",
                )

    async def _async_remove(self, partition: int, entry_id: str) -> None:
        try:
            await self.hass.config_entries.async_remove(entry_id)
        finally:
            self._removing.discard(partition)
        if self.main_entry.state is ConfigEntryState.LOADED:
            self.async_sync_entries()  # a node assigned to it meanwhile gets a new entry

    async def _async_create(self, partition: int) -> None:
        try:
            await self.hass.config_entries.flow.async_init(
                DOMAIN,
                context={"source": SOURCE_SYSTEM},
                data={CONF_MAIN_ENTRY_ID: self.main_entry.entry_id, CONF_PARTITION: partition},
            )
        finally:
            self._creating.discard(partition)
