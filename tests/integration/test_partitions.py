"""Partition entries (partitions.py) against a real gateway: HA's entity limit patched low, so a
few nodes fill three config entries, and the issue's 12,000 fields on stock HA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_platform
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import limit, partitions
from custom_components.edgeiot.const import DOMAIN
from custom_components.edgeiot.diagnostics import async_get_config_entry_diagnostics
from custom_components.edgeiot.helpers import gateway_identifier, node_identifier
from custom_components.edgeiot.hub import EdgeIoTHub
from custom_components.edgeiot.partitions import CONF_MAIN_ENTRY_ID, partition_entries

from ..servers import Mosquitto
from .conftest import GATEWAY_ID, GatewayProcess
from .fleet import Fleet, wait_known
from .helpers import state_of, wait_until

LIMIT, CAPACITY, RESERVE = 60, 50, 5
FIELDS = 10  # + the online sensor: 11 enabled entities per node → 4 nodes per entry


@pytest.fixture
def fleet(mosquitto: Mosquitto, gateway_process: GatewayProcess) -> Iterator[Fleet]:
    sim = Fleet(mosquitto, FIELDS)
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def low_limit() -> Iterator[None]:
    """HA's limit and the capacity patched low (a gateway of 10 nodes fills three entries)."""
    with ExitStack() as stack:
        for target, name, value in (
            (entity_platform, "MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY", LIMIT),
            (limit, "ENTITY_LIMIT", LIMIT),
            (limit, "GATEWAY_RESERVE", RESERVE),
            (partitions, "CAPACITY", CAPACITY),
            (partitions, "GATEWAY_RESERVE", RESERVE),
        ):
            stack.enter_context(patch.object(target, name, value))
        yield


def _field_entity(hass: HomeAssistant, node_id: str, field: int = 0) -> str | None:
    return er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, f"{GATEWAY_ID}.{node_id}.s.f{field}"
    )


def _owner(hass: HomeAssistant, node_id: str) -> str | None:
    """The config entry holding the node's device."""
    identifier = node_identifier(GATEWAY_ID, node_id)
    devices = dr.async_get(hass).async_get_devices(identifiers={identifier})
    return devices[0].config_entry_id if len(devices) == 1 else None


def _layout(hass: HomeAssistant, main: MockConfigEntry) -> dict[int, set[str]]:
    """Partition number → the nodes whose device that entry holds (0: the main entry)."""
    numbers = {main.entry_id: 0} | {
        e.entry_id: n for n, e in partition_entries(hass, main.entry_id).items()
    }
    layout: dict[int, set[str]] = {}
    for device in dr.async_get(hass).devices:
        node = next((v for d, v in device.identifiers if d == DOMAIN), "")
        if node.startswith(f"{GATEWAY_ID}.") and device.config_entry_id in numbers:
            layout.setdefault(numbers[device.config_entry_id], set()).add(node.split(".")[1])
    return layout


def _all_loaded(hass: HomeAssistant, main: MockConfigEntry, count: int) -> bool:
    entries = partition_entries(hass, main.entry_id)
    return len(entries) == count and all(
        e.state is ConfigEntryState.LOADED for e in [main, *entries.values()]
    )


NODES = [f"n{i}" for i in range(10)]
THREE_ENTRIES = {0: set(NODES[:4]), 1: set(NODES[4:8]), 2: set(NODES[8:])}


@pytest.fixture
async def spread(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    config_entry: MockConfigEntry,
    fleet: Fleet,
    gateway_process: GatewayProcess,
) -> AsyncIterator[MockConfigEntry]:
    """Ten nodes announced in order, then the integration set up: three entries."""
    for node_id in NODES:
        fleet.announce(node_id)
    wait_known(gateway_process, NODES)
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await wait_until(hass, lambda: _layout(hass, config_entry) == THREE_ENTRIES)
    await wait_until(hass, lambda: _all_loaded(hass, config_entry, 2))
    yield config_entry
    if hass.config_entries.async_get_entry(config_entry.entry_id) is not None:
        await hass.config_entries.async_unload(config_entry.entry_id)
    await hass.async_block_till_done()


async def test_nodes_fill_three_entries(
    hass: HomeAssistant, spread: MockConfigEntry, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    """Every entity enabled and updating; each node's device and entities in its owner entry,
    linked to the gateway's device in the main entry."""
    registry = er.async_get(hass)
    devices = dr.async_get(hass)
    gateway = devices.async_get_device_by_identifier(
        gateway_identifier(GATEWAY_ID), spread.entry_id
    )
    assert gateway is not None
    for entry_id in [
        spread.entry_id,
        *(e.entry_id for e in partition_entries(hass, spread.entry_id).values()),
    ]:
        assert registry.entities.get_enabled_count_for_config_entry_id(entry_id) <= LIMIT
    for node_id in NODES:
        owner = _owner(hass, node_id)
        device = devices.async_get_device_by_identifier(
            node_identifier(GATEWAY_ID, node_id), owner or ""
        )
        assert device is not None
        assert device.via_device_id == gateway.id
        for field in range(FIELDS):
            entity_id = _field_entity(hass, node_id, field)
            assert entity_id is not None
            entity = registry.async_get(entity_id)
            assert entity is not None
            assert entity.disabled_by is None
            assert entity.config_entry_id == owner
            assert entity.device_id == device.id
    assert "Reached the maximum" not in caplog.text  # HA never refused one
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"entity_limit_{spread.entry_id}") is None
    for node_id in ("n0", "n5", "n9"):  # one node of each entry
        fleet.state(node_id, 42)
    await wait_until(hass, lambda: all(
        state_of(hass, _field_entity(hass, n, FIELDS - 1) or "") == "42" for n in ("n0", "n5", "n9")
    ))  # fmt: skip
    part = partition_entries(hass, spread.entry_id)[2]
    diagnostics = await async_get_config_entry_diagnostics(hass, part)
    assert diagnostics["main_entry_id"] == spread.entry_id
    assert diagnostics["nodes"] == ["n8", "n9"]
    assert part.title == f"EdgeIoT {GATEWAY_ID} (nodes, part 2)"
    assert part.data == {CONF_MAIN_ENTRY_ID: spread.entry_id, "partition": 2}


async def test_removed_node_frees_its_slot(
    hass: HomeAssistant, spread: MockConfigEntry, fleet: Fleet
) -> None:
    """Removed nodes free their slot; a partition left without nodes is removed."""
    hub: EdgeIoTHub = spread.runtime_data
    for node_id in ("n8", "n9", "n0"):
        fleet.clear(node_id)
        await hub.async_command("remove_node", node_id=node_id)
    await wait_until(hass, lambda: len(partition_entries(hass, spread.entry_id)) == 1)
    await wait_until(
        hass, lambda: _layout(hass, spread) == {0: {"n1", "n2", "n3"}, 1: set(NODES[4:8])}
    )
    assert _field_entity(hass, "n9") is None
    fleet.announce("n10")  # takes n0's slot in the main entry
    await wait_until(hass, lambda: _owner(hass, "n10") == spread.entry_id)
    fleet.state("n10", 7)
    await wait_until(hass, lambda: state_of(hass, _field_entity(hass, "n10") or "") == "7")


async def test_reload_and_restart_keep_the_assignment(
    hass: HomeAssistant, spread: MockConfigEntry, fleet: Fleet, hass_storage: dict[str, Any]
) -> None:
    """A reload of the main entry, and a restart (the partitions set up before the main entry),
    keep every node in its entry; entities keep their ids and update."""
    entity_ids = {node_id: _field_entity(hass, node_id) for node_id in NODES}
    assert await hass.config_entries.async_reload(spread.entry_id)
    await wait_until(hass, lambda: _all_loaded(hass, spread, 2))
    assert _layout(hass, spread) == THREE_ENTRIES
    fleet.state("n9", 3)
    await wait_until(hass, lambda: state_of(hass, entity_ids["n9"] or "") == "3")

    assert await hass.config_entries.async_unload(spread.entry_id)
    parts = partition_entries(hass, spread.entry_id)
    assert all(e.state is ConfigEntryState.NOT_LOADED for e in parts.values())
    stored = hass_storage[f"{DOMAIN}.{spread.entry_id}.partitions"]["data"]["nodes"]
    assert stored == {node_id: n for n, nodes in THREE_ENTRIES.items() for node_id in nodes}
    for part in parts.values():  # HA starts them in any order: the main entry is not loaded
        assert not await hass.config_entries.async_setup(part.entry_id)
        assert part.state is ConfigEntryState.SETUP_RETRY
    assert await hass.config_entries.async_setup(spread.entry_id)
    await wait_until(hass, lambda: _all_loaded(hass, spread, 2))
    assert _layout(hass, spread) == THREE_ENTRIES
    assert {node_id: _field_entity(hass, node_id) for node_id in NODES} == entity_ids
    fleet.state("n5", 4)
    await wait_until(hass, lambda: state_of(hass, entity_ids["n5"] or "") == "4")


async def test_main_entry_removal_removes_partitions(
    hass: HomeAssistant, spread: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    """Removing the gateway's entry removes its partition entries, devices and assignment."""
    await hass.config_entries.async_remove(spread.entry_id)
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == []
    assert _layout(hass, spread) == {}
    assert f"{DOMAIN}.{spread.entry_id}.partitions" not in hass_storage


async def test_entities_disabled_by_the_old_limit_move_and_are_enabled(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    config_entry: MockConfigEntry,
    fleet: Fleet,
    gateway_process: GatewayProcess,
) -> None:
    """Migration: a node whose entities limit.py created disabled in the main entry moves to a
    partition with them enabled (same entity ids); the repair issue goes; the other node stays
    in the main entry."""
    for node_id in ("n0", "n1"):
        fleet.announce(node_id)
    wait_known(gateway_process, ["n0", "n1"])
    config_entry.add_to_hass(hass)
    for node_id in ("n0", "n1"):  # both were in the main entry; n1 had hit the limit
        device = dr.async_get(hass).async_get_or_create(
            config_entry_id=config_entry.entry_id,
            identifiers={node_identifier(GATEWAY_ID, node_id)},
        )
    registry = er.async_get(hass)
    old = registry.async_get_or_create(
        "sensor", DOMAIN, f"{GATEWAY_ID}.n1.s.f0", config_entry=config_entry,
        device_id=device.id, disabled_by=er.RegistryEntryDisabler.INTEGRATION,
    )  # fmt: skip
    issue_id = f"entity_limit_{config_entry.entry_id}"
    ir.async_create_issue(
        hass, DOMAIN, issue_id, is_fixable=False, severity=ir.IssueSeverity.WARNING,
        translation_key="entity_limit",
    )  # fmt: skip
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await wait_until(hass, lambda: _all_loaded(hass, config_entry, 1))
    await wait_until(hass, lambda: _layout(hass, config_entry) == {0: {"n0"}, 1: {"n1"}})
    part = partition_entries(hass, config_entry.entry_id)[1]
    moved = registry.async_get(old.entity_id)
    assert moved is not None
    assert moved.disabled_by is None
    assert moved.config_entry_id == part.entry_id
    assert moved.device_id == device.id
    fleet.state("n1", 9)
    await wait_until(hass, lambda: state_of(hass, old.entity_id) == "9")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await hass.config_entries.async_unload(config_entry.entry_id)


async def test_a_node_past_the_limit_alone_overflows(
    hass: HomeAssistant, spread: MockConfigEntry, fleet: Fleet
) -> None:
    """The genuine overflow: a node alone with more entities than HA allows per entry gets a
    partition of its own; the entities past the limit are created disabled, counted by the
    repair issue, which goes with the node."""
    hub: EdgeIoTHub = spread.runtime_data
    fleet.announce("big", fields=LIMIT + 10)
    await wait_until(hass, lambda: _field_entity(hass, "big", LIMIT + 9) is not None)
    await wait_until(hass, lambda: _all_loaded(hass, spread, 3))
    assert _layout(hass, spread)[3] == {"big"}
    registry = er.async_get(hass)
    disabled = [
        f for f in range(LIMIT + 10)
        if (e := registry.async_get(_field_entity(hass, "big", f) or "")) and e.disabled_by
    ]  # fmt: skip
    assert len(disabled) == LIMIT + 10 - (LIMIT - RESERVE)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"entity_limit_{spread.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["count"] == str(len(disabled) + 1)  # + online
    fleet.clear("big")
    await hub.async_command("remove_node", node_id="big")
    await wait_until(hass, lambda: len(partition_entries(hass, spread.entry_id)) == 2)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"entity_limit_{spread.entry_id}") is None


async def test_rename_syncs_for_a_partition_node(
    hass: HomeAssistant, spread: MockConfigEntry, gateway_process: GatewayProcess
) -> None:
    """A node's device renamed in HA in a partition entry: the gateway's name follows."""
    devices = dr.async_get(hass)
    part = partition_entries(hass, spread.entry_id)[2]
    device = devices.async_get_device_by_identifier(
        node_identifier(GATEWAY_ID, "n9"), part.entry_id
    )
    assert device is not None
    devices.async_update_device(device.id, name_by_user="Far shed")
    hub: EdgeIoTHub = spread.runtime_data
    await wait_until(hass, lambda: hub.nodes["n9"].get("name_by_user") == "Far shed")
