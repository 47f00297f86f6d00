"""The integration against a real gateway: devices, entities, live values."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from ..gateway.harness import NodeSimulator
from .helpers import state_of, wait_until


async def test_setup_creates_devices_and_entities(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator
) -> None:
    """Gateway and node devices are linked; fields become entities with live values."""
    assert integration.state is ConfigEntryState.LOADED
    devices = dr.async_get(hass)
    gateway = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw"), integration.entry_id
    )
    assert gateway is not None
    greenhouse = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw.greenhouse-1"), integration.entry_id
    )
    assert greenhouse is not None
    assert greenhouse.via_device_id == gateway.id
    assert greenhouse.sw_version == "1.2.0"

    entities = er.async_entries_for_config_entry(er.async_get(hass), integration.entry_id)
    by_unique = {e.unique_id: e.entity_id for e in entities}
    temperature = by_unique["ha-test-gw.greenhouse-1.climate.temperature"]
    await wait_until(hass, lambda: state_of(hass, temperature) == "21.5")
    node.state("climate", temperature=23.0)
    await wait_until(hass, lambda: state_of(hass, temperature) == "23.0")
