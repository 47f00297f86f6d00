"""The node firmware on MicroPython's unix port against a real Mosquitto and a real gateway."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest
from paho.mqtt import publish

from edgeiot_gateway.gateway import Gateway

from ..gateway.harness import ApiClient
from ..servers import Mosquitto
from .conftest import node_config

pytestmark = pytest.mark.timeout(60)

# Bosch's worked example (BMP280 datasheet 3.12): these raw values and calibration give
# 25.08 °C and 100653.27 Pa; the humidity calibration is a typical chip's.
T_CAL, P_CAL = (27504, 26435, -1000), (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
H_CAL = (75, 362, 0, 313, 50, 30)
ADC_T, ADC_P, ADC_H = 519888, 415148, 30000


def bme280_registers() -> dict[str, list[int]]:
    h1, h2, h3, h4, h5, h6 = H_CAL
    e = [
        *struct.pack("<hB", h2, h3),
        h4 >> 4,
        (h4 & 0xF) | ((h5 & 0xF) << 4),
        h5 >> 4,
        *struct.pack("<b", h6),
    ]
    data = [
        ADC_P >> 12,
        (ADC_P >> 4) & 0xFF,
        (ADC_P & 0xF) << 4,
        ADC_T >> 12,
        (ADC_T >> 4) & 0xFF,
        (ADC_T & 0xF) << 4,
        ADC_H >> 8,
        ADC_H & 0xFF,
    ]
    return {
        "208": [0x60],
        "136": list(struct.pack("<HhhH8h", *T_CAL, *P_CAL)),
        "161": [h1],
        "225": e,
        "247": data,
    }


def expected_humidity() -> float:
    """The datasheet's double-precision humidity formula, written out independently."""
    t1, t2, t3 = T_CAL
    t_fine = (ADC_T / 16384 - t1 / 1024) * t2 + (ADC_T / 131072 - t1 / 8192) ** 2 * t3
    h1, h2, h3, h4, h5, h6 = H_CAL
    x = t_fine - 76800
    x = (ADC_H - (h4 * 64 + h5 / 16384 * x)) * (
        h2 / 65536 * (1 + h6 / 67108864 * x * (1 + h3 / 67108864 * x))
    )
    return min(100.0, max(0.0, x * (1 - h1 * x / 524288)))


ALL_DRIVERS: tuple[dict[str, Any], ...] = (
    {"type": "relay", "id": "relay", "name": "Pump", "pin": 5},
    {"type": "button", "id": "button", "pin": 0, "hold_ms": 600},
    {
        "type": "adc",
        "id": "light",
        "pin": 34,
        "scale": 100,
        "unit": "%",
        "interval": 0.1,
        "min_change": 5,
    },
    {"type": "pwm", "id": "fan", "pin": 12},
    {"type": "battery", "id": "battery", "pin": 35, "interval": 0.5},
    {"type": "ds18b20", "id": "water", "pin": 4, "interval": 1},
    {"type": "dht22", "id": "air", "pin": 14},
    {"type": "bme280", "id": "climate", "sda": 21, "scl": 22, "interval": 1, "precision": 4},
)
SIM = {
    "adc": {"34": 32768, "35": 50000},
    "onewire": {"4": {"28ff4a1b00000012": 21.5}},
    "dht22": {"14": {"temperature": 20.5, "humidity": 45.0}},
    "i2c": {"118": bme280_registers()},
}


async def node_state(api: ApiClient, node_id: str = "fw-1") -> dict[str, Any] | None:
    result = await api.command("get_state")
    return next((n for n in result["result"]["nodes"] if n["id"] == node_id), None)


def values(node: dict[str, Any]) -> dict[str, Any]:
    return {f"{s['id']}.{f['id']}": f["value"] for s in node["sources"] for f in s["fields"]}


async def wait_values(api: ApiClient, want: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
    """Poll get_state until the node's values include want (floats to 2 places)."""
    deadline = asyncio.get_running_loop().time() + timeout
    got: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        node = await node_state(api)
        got = values(node) if node else {}
        if all(
            k in got
            and (
                got[k] == v
                if not isinstance(v, float)
                else got[k] is not None and abs(got[k] - v) < 0.005
            )
            for k, v in want.items()
        ):
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"values {got} never matched {want}")


async def test_announce_and_values_from_every_driver(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    run_node(node_config(mosquitto, *ALL_DRIVERS), SIM)
    got = await wait_values(
        api,
        {
            "relay.on": False,
            "button.pressed": False,
            "light.value": 50.0,
            "fan.level": 0,
            "battery.voltage": 5.04,
            "water.temperature": 21.5,
            "air.temperature": 20.5,
            "air.humidity": 45.0,
            "climate.temperature": 25.08,
            "climate.pressure": 1006.53,
        },
    )
    assert got["climate.humidity"] == pytest.approx(expected_humidity(), abs=1e-4)
    node = await node_state(api)
    assert node is not None
    assert node["online"]
    assert (node["firmware"], node["kind"]) == ("0.1.0", "edgeiot-node")
    assert (node["name"], node["heartbeat_interval"]) == ("Firmware node", 2)
    assert node["actions"] == ["reboot"]
    sources = {s["id"]: s for s in node["sources"]}
    assert list(sources) == ["node", *(d["id"] for d in ALL_DRIVERS)]
    assert sources["button"]["events"] == ["pressed", "held"]
    relay = sources["relay"]["fields"][0]
    assert (relay["name"], relay["type"], relay["writable"]) == ("Pump", "bool", True)
    light = sources["light"]["fields"][0]
    assert (light["unit"], light["state_class"], light["writable"]) == ("%", "measurement", False)
    fan = sources["fan"]["fields"][0]
    assert (fan["type"], fan["min"], fan["max"], fan["unit"]) == ("int", 0, 100, "%")
    pressure = sources["climate"]["fields"][2]
    assert (pressure["unit"], pressure["device_class"]) == ("hPa", "atmospheric_pressure")
    # The heartbeat carries battery (5.04 V between 3.3 and 4.2 V: full) and RSSI.
    await wait_for_node(api, lambda n: n["battery"] == 100 and n["rssi"] == -55)


async def wait_for_node(api: ApiClient, match: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        node = await node_state(api)
        if node is not None and match(node):
            return node
        await asyncio.sleep(0.05)
    raise AssertionError(f"node never matched: {await node_state(api)}")


async def test_min_change_holds_back_small_moves(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    node = run_node(node_config(mosquitto, ALL_DRIVERS[2]), {"adc": {"34": 32768}})
    await wait_values(api, {"light.value": 50.0})
    node.control({"adc": {"34": 34078}})  # 52.0 %: less than min_change 5 → not reported
    await asyncio.sleep(0.5)
    assert values(await node_state(api) or {})["light.value"] == 50.0
    node.control({"adc": {"34": 39321}})  # 60.0 %
    await wait_values(api, {"light.value": 60.0})


async def test_set_relay_and_pwm(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    node = run_node(node_config(mosquitto, ALL_DRIVERS[0], ALL_DRIVERS[3]))
    await wait_values(api, {"relay.on": False, "fan.level": 0})
    for source, field, value in (("relay", "on", True), ("fan", "level", 40)):
        result = await api.command(
            "set_field", node_id="fw-1", source_id=source, field_id=field, value=value
        )
        assert result["success"], result
    await node.wait_log(r"^SIM pin 5 1$")
    await node.wait_log(r"^SIM pwm 12 26214$")
    await wait_values(api, {"relay.on": True, "fan.level": 40})
    result = await api.command("node_action", node_id="fw-1", action="reboot")
    assert result["success"], result
    await node.wait_log(r"^SIM reset$")
    await node.wait_log(r"online \(connection 1\)", count=2)  # booted again
    await wait_for_node(api, lambda n: n["online"])
    await wait_values(api, {"relay.on": False, "fan.level": 0})  # initial values after the boot


async def test_button_events(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    node = run_node(node_config(mosquitto, ALL_DRIVERS[1]))
    await wait_values(api, {"button.pressed": False})
    # A bounce shorter than the debounce time is no press at all.
    node.control({"pins": {"0": 0}})
    node.control({"pins": {"0": 1}})
    node.control({"pins": {"0": 0}})  # active low: pressed
    await wait_values(api, {"button.pressed": True})
    await asyncio.sleep(0.1)
    node.control({"pins": {"0": 1}})
    event = await api.wait_event(lambda e: e["event"] == "node event")
    assert (event["source_id"], event["event_type"]) == ("button", "pressed")
    assert 0.05 < event["data"]["duration"] < 0.6
    node.control({"pins": {"0": 0}})
    event = await api.wait_event(lambda e: e["event"] == "node event")
    assert (event["source_id"], event["event_type"], event["data"]) == ("button", "held", {})
    node.control({"pins": {"0": 1}})
    await wait_values(api, {"button.pressed": False})
    await asyncio.sleep(0.2)
    assert not [e for e in api.events if e["event"] == "node event"]  # no press after a hold


async def test_broker_restart_and_last_will(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    node = run_node(node_config(mosquitto, ALL_DRIVERS[0], ALL_DRIVERS[3]))
    await wait_values(api, {"relay.on": False})
    mosquitto.restart()
    await node.wait_log(r"online \(connection 2\)", timeout=15)
    await wait_for_node(api, lambda n: n["online"], timeout=15)
    await api.command("set_field", node_id="fw-1", source_id="relay", field_id="on", value=True)
    await wait_values(api, {"relay.on": True})
    node.kill()
    await wait_for_node(api, lambda n: not n["online"], timeout=15)  # its Last Will
    # The session is persistent: a command sent while the node is away is applied when it is back.
    result = await api.command(
        "set_field", node_id="fw-1", source_id="fan", field_id="level", value=70
    )
    assert result["success"], result
    node.start()
    await node.wait_log(r"^SIM pwm 12 45874$")
    await wait_values(api, {"relay.on": False, "fan.level": 70})


async def test_wifi_loss_drops_the_link_and_reconnects(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    node = run_node(node_config(mosquitto, ALL_DRIVERS[0]))
    await wait_for_node(api, lambda n: n["online"])
    node.control({"wifi": False})
    await node.wait_log(r"broker link: OSError\('Wi-Fi lost',\)")
    await wait_for_node(api, lambda n: not n["online"])  # no DISCONNECT: the Last Will
    node.control({"wifi": True, "rssi": -70})
    await node.wait_log(r"online \(connection 2\)", timeout=15)
    await wait_for_node(api, lambda n: n["online"] and n["rssi"] == -70)


async def test_bad_config_entries_are_events_not_a_crash(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    drivers = (
        ALL_DRIVERS[0],
        {"type": "thermocouple", "id": "x"},
        {"type": "relay", "id": "relay2", "pin": 5, "colour": "red"},
        {"type": "adc", "id": "bad id", "pin": 99},
        {"type": "bme280", "id": "missing", "sda": 21, "scl": 22},  # no chip on the bus
    )
    run_node(node_config(mosquitto, *drivers, watchdog="no"))
    await wait_values(api, {"relay.on": False})
    errors = []
    while len(errors) < 7:  # six config errors and the sensor error, in any order
        event = await api.wait_event(lambda e: e["event"] == "node event")
        data = event["data"]
        errors.append((event["event_type"], data.get("path", data.get("source")), data["error"]))
    assert ("config_error", "config.watchdog", "expected an integer 0 to 3600; using 30") in errors
    assert ("config_error", "drivers[1].type", "unknown driver type 'thermocouple'") in errors
    assert ("config_error", "drivers[2].colour", "unknown key, ignored") in errors
    assert ("config_error", "drivers[2].pin", "pin 5 is used by relay") in errors
    assert ("config_error", "drivers[3].pin", "expected an integer 0-48") in errors
    assert any(e[:2] == ("config_error", "drivers[3].id") for e in errors)
    assert ("sensor_error", "missing", "OSError(19,)") in errors
    node = await node_state(api)
    assert node is not None
    assert node["online"]
    assert [s["id"] for s in node["sources"]] == ["node", "relay", "missing"]
    # A command the node cannot apply is an event too (the gateway checks its commands; a
    # stray publisher need not).
    for payload in (b'{"v": 1, "value": "yes"}', b"\xff"):
        publish.single(
            "edgeiot/v1/fw-1/set/relay/on",
            payload,
            qos=1,
            hostname=mosquitto.host,
            port=mosquitto.port,
        )
        event = await api.wait_event(lambda e: e["event"] == "node event")
        assert event["event_type"] == "command_error"
        assert event["data"]["topic"] == "edgeiot/v1/fw-1/set/relay/on"
    assert (await node_state(api) or {})["online"]


async def test_unusable_config_waits_instead_of_crashing(
    mosquitto: Mosquitto, gateway: Gateway, api: ApiClient, run_node: Any
) -> None:
    node = run_node("{not json")
    await node.wait_log(r"no usable node config; trying again in 10 s")
    assert node.proc is not None
    assert node.proc.poll() is None
    # A good config appears: the node picks it up on its next try and keeps it as the last good.
    node.config_path.write_text(json.dumps(node_config(mosquitto, ALL_DRIVERS[0])))
    await wait_values(api, {"relay.on": False}, timeout=15)
    node.stop()
    node.config_path.write_text('{"node_id": "fw-1"}')  # no broker: falls back to the good copy
    node.start()
    await node.wait_log(r"unusable; running the last good config")
    await node.wait_log(r"online \(connection 1\)", count=2)
