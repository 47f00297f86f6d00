"""A real gateway with 12,000 fields on stock HA (10,000 enabled entities per entry at most):
the nodes spread over the main entry and a partition entry, every entity enabled."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.entity_platform import MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN
from custom_components.edgeiot.partitions import CAPACITY, partition_entries

from ..servers import Mosquitto
from .conftest import GATEWAY_ID, GatewayProcess
from .fleet import Fleet, wait_known
from .helpers import state_of, wait_until

NODES, FIELDS = 120, 100  # 12,000 fields


@pytest.fixture
def fleet(mosquitto: Mosquitto, gateway_process: GatewayProcess) -> Iterator[Fleet]:
    sim = Fleet(mosquitto, FIELDS)
    yield sim
    sim.stop()


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("enable_custom_integrations")
async def test_twelve_thousand_fields_on_stock_ha(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    fleet: Fleet,
    gateway_process: GatewayProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every field gets an enabled entity: no entry passes HA's limit, none is disabled."""
    started = time.monotonic()
    node_ids = [f"n{i:03}" for i in range(NODES)]
    for node_id in node_ids:
        fleet.announce(node_id)
    wait_known(gateway_process, node_ids)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    registry = er.async_get(hass)
    prefix = f"{GATEWAY_ID}.n"

    def fields() -> list[er.RegistryEntry]:
        return [e for e in registry.entities.values() if e.platform == DOMAIN
                and e.unique_id.startswith(prefix) and e.unique_id.count(".") == 3]  # fmt: skip

    def loaded() -> bool:
        parts = partition_entries(hass, config_entry.entry_id).values()
        return len(parts) == 1 and all(e.state is ConfigEntryState.LOADED for e in parts)

    await wait_until(hass, loaded, timeout=120)
    await wait_until(hass, lambda: len(fields()) == NODES * FIELDS, timeout=120)
    assert [e.entity_id for e in fields() if e.disabled_by is not None] == []
    parts = partition_entries(hass, config_entry.entry_id).values()
    entries = [config_entry.entry_id, *(e.entry_id for e in parts)]
    counts = [registry.entities.get_enabled_count_for_config_entry_id(e) for e in entries]
    assert all(count <= CAPACITY < MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY for count in counts)
    # Fields, each node's online sensor and the gateway's own entities: all enabled.
    assert sum(counts) >= NODES * (FIELDS + 1)
    assert "Reached the maximum" not in caplog.text  # HA never refused one
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"entity_limit_{config_entry.entry_id}") is None
    )
    last = registry.async_get_entity_id(
        "sensor", DOMAIN, f"{GATEWAY_ID}.n{NODES - 1:03}.s.f{FIELDS - 1}"
    )
    assert last is not None
    fleet.state(f"n{NODES - 1:03}", 5)  # a node of the partition entry updates
    await wait_until(hass, lambda: state_of(hass, last) == "5", timeout=30)
    print(f"12,000 fields: {time.monotonic() - started:.1f} s, enabled per entry {counts}")
    await hass.config_entries.async_unload(config_entry.entry_id)
