"""How field hints become entity attributes: HA's tables decide, invalid hints are dropped."""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN

from .fake_gateway import FAKE_ID, FakeGateway, fake_node
from .helpers import state_of, wait_until


def _field(field_id: str, kind: str, **hints: Any) -> dict[str, Any]:
    return {"id": field_id, "name": field_id, "type": kind, "writable": False, **hints}


FIELDS = [
    _field("energy", "float", device_class="energy", unit="kWh", value=1.0),
    _field("temp", "float", device_class="temperature", unit="°C", value=1.0),
    _field("odd", "float", device_class="temperature", unit="ppm", value=1.0),
    _field("count", "int", value=3),
    _field("hum", "int", device_class="humidity", unit="%", state_class="total_increasing",
           value=3),
    _field("meter", "float", device_class="energy", unit="kWh", state_class="total_increasing",
           value=1.0),
    _field("level", "int", writable=True, value=3),
    _field("gain", "float", writable=True, min=0.5, value=1.0),
    _field("label", "string", writable=True, value="x"),
    _field("note", "string", value="n" * 300),
]  # fmt: skip


async def test_hints_follow_ha_tables(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """State class only where the node or device class says so; unit/class combinations HA
    rejects are dropped; numbers get their type's range; texts and states fit HA's 255."""
    node = fake_node("hints", sources=[{"id": "s", "name": "S", "fields": FIELDS}])
    await fake.send_event({"event": "node added", "node": node})
    registry = er.async_get(hass)

    def attributes(domain: str, field_id: str) -> dict[str, Any]:
        entity_id = registry.async_get_entity_id(domain, DOMAIN, f"{FAKE_ID}.hints.s.{field_id}")
        assert entity_id is not None, field_id
        state = hass.states.get(entity_id)
        assert state is not None
        return {**state.attributes, "state": state.state}

    await wait_until(
        hass, lambda: registry.async_get_entity_id("sensor", DOMAIN, f"{FAKE_ID}.hints.s.note")
    )
    assert "state_class" not in attributes("sensor", "energy")
    assert attributes("sensor", "energy")["device_class"] == "energy"
    assert attributes("sensor", "temp")["state_class"] == "measurement"
    odd = attributes("sensor", "odd")
    assert "device_class" not in odd
    assert odd["unit_of_measurement"] == "ppm"
    assert "state_class" not in attributes("sensor", "count")
    assert "state_class" not in attributes("sensor", "hum")
    assert attributes("sensor", "meter")["state_class"] == "total_increasing"
    level = attributes("number", "level")
    assert (level["min"], level["max"], level["mode"]) == (-(2**53) + 1, 2**53 - 1, "box")
    gain = attributes("number", "gain")
    assert gain["min"] == 0.5
    assert gain["max"] > 1e300
    assert attributes("text", "label")["max"] == 255
    assert attributes("sensor", "note")["state"] == "n" * 255


async def test_entity_names_combine_source_and_field(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """Source + field; the field alone when the source has no name or the field repeats it."""
    sources = [
        {"id": "vent", "name": "Vent", "fields": [_field("open", "bool", name="Open"),
                                                  _field("pos", "int", name="Vent position")]},
        {"id": "air", "name": "air", "fields": [_field("co2", "int", name="CO2")]},
        {"id": "probe", "name": "Probe", "fields": [_field("ph", "float", name="pH")]},
    ]  # fmt: skip
    await fake.send_event({"event": "node added", "node": fake_node("names", sources=sources)})
    registry = er.async_get(hass)
    expected = {
        "binary_sensor": {"vent.open": "Vent open"},
        "sensor": {"vent.pos": "Vent position", "air.co2": "CO2", "probe.ph": "Probe pH"},
    }
    for domain, names in expected.items():
        for key, name in names.items():
            uid = f"{FAKE_ID}.names.{key}"
            entity_id = await wait_until(
                hass, lambda d=domain, u=uid: registry.async_get_entity_id(d, DOMAIN, u)
            )
            entry = registry.async_get(entity_id)
            assert entry is not None
            assert entry.original_name == name, key


async def test_provider_state_from_gateway_status_events(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> None:
    """A `gateway status` event carrying providers updates their sensors at once."""
    entity_id = er.async_get(hass).async_get_entity_id(
        "binary_sensor", DOMAIN, f"{FAKE_ID}.gateway.provider:mqtt"
    )
    assert entity_id is not None
    await wait_until(hass, lambda: state_of(hass, entity_id) == "on")
    status = {"processed": 2, "dropped": 0, "recorder": None,
              "providers": [{"name": "mqtt", "type": "mqtt", "connected": False}]}  # fmt: skip
    await fake.send_event({"event": "gateway status", "status": status})
    await wait_until(hass, lambda: state_of(hass, entity_id) == "off")
