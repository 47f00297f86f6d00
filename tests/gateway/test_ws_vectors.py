"""The WebSocket API vectors (tests/vectors/websocket.json) against a real gateway.

Each client vector is sent verbatim; each server vector is provoked and compared with what the
gateway really sent: same keys, same values, except values that differ between runs or
installations (LOOSE_KEYS), which only need the same JSON type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeiot_gateway.gateway import Gateway

from .esp_rom_sim import EspRomSimulator
from .harness import PREFIX, ApiClient, NodeSimulator, wait_for
from .harness import VECTORS as MQTT_VECTORS

VECTORS_DIR = Path(__file__).parent.parent / "vectors"
WS_VECTORS: list[dict[str, Any]] = json.loads((VECTORS_DIR / "websocket.json").read_text())[
    "messages"
]
MQTT = {case["name"]: case for case in MQTT_VECTORS["decode"] + MQTT_VECTORS["encode"]}

# Timestamps, versions, the gateway id, counters and human-readable texts.
LOOSE_KEYS = frozenset(
    {
        "server_version",
        "version",
        "gateway_id",
        "last_seen",
        "updated",
        "created",
        "processed",
        "received",
        "queued",
        "store_writes",
        "dropped",
        "message",
        "time",
        "duration",
        "since",
        "upload_id",
        "uploaded_at",
        "job_id",
        "port",
        "ports",
        "started_at",
    }
)


def _kind(value: object) -> str:
    """The JSON type of a value (int and float are both numbers)."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
    raise AssertionError(f"not JSON: {value!r}")


def assert_like(expected: Any, actual: Any, path: str = "$") -> None:
    """`actual` has the shape and values of `expected` (LOOSE_KEYS: same JSON type only)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        assert sorted(actual) == sorted(expected), f"{path}: keys {sorted(actual)}"
        for key, value in expected.items():
            if key in LOOSE_KEYS:
                assert _kind(actual[key]) == _kind(value), f"{path}.{key}: {actual[key]!r}"
            else:
                assert_like(value, actual[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: {actual!r} is not an array"
        assert len(actual) == len(expected), f"{path}: {len(actual)} items, not {len(expected)}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            assert_like(want, got, f"{path}[{index}]")
    else:
        assert type(actual) is type(expected), f"{path}: {actual!r} is not like {expected!r}"
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


class Vectors:
    """The WebSocket vectors by name, remembering which were checked against the gateway."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.by_name = {vector["name"]: vector for vector in WS_VECTORS}
        assert len(self.by_name) == len(WS_VECTORS), "vector names must be unique"
        self.checked: set[str] = set()

    def _vector(self, name: str, direction: str) -> dict[str, Any]:
        vector = self.by_name[name]
        assert vector["direction"] == direction, name
        return vector["message"]

    def server(self, name: str, actual: Any) -> None:
        """Compare a message the gateway sent with the server vector `name`."""
        assert_like(self._vector(name, "server"), actual, name)
        self.checked.add(name)

    async def command(self, name: str, result: str, **given: Any) -> dict[str, Any]:
        """Send the client vector `name` verbatim (but for ids the gateway `given` earlier); its
        answer must be like vector `result` and is returned."""
        message = self._vector(name, "client") | given
        answer = await self.api.send_raw(json.dumps(message))
        assert answer["message_id"] == message["message_id"]
        self.server(result, answer)
        self.checked.add(name)
        return answer

    async def event(self, name: str, **match: Any) -> None:
        """Wait for the event of vector `name` (with these data values) and compare it."""
        event_name = self._vector(name, "server")["event"]["event"]
        event = await self.api.wait_event(
            lambda e: e["event"] == event_name and all(e.get(k) == v for k, v in match.items())
        )
        self.server(name, {"type": "event", "event": event})


def _field_of(message: dict[str, Any]) -> str | None:
    return message.get("event", {}).get("field_id")


def _rom_simulator(chip: str) -> Iterator[EspRomSimulator]:
    sim = EspRomSimulator(chip).start()
    yield sim
    sim.stop()


def _publish(node: NodeSimulator, vector: str) -> None:
    """Publish an MQTT decode vector from the simulated node."""
    case = MQTT[vector]
    kind = case["topic"].removeprefix(f"{PREFIX}/{node.node_id}/")
    node.publish(kind, case["payload"], retain=case.get("retain", False))


async def _install(vectors: Vectors, node: NodeSimulator) -> None:
    """firmware_install to the simulated node: its ota command, a progress report, busy, the
    job list, then done."""
    started = await vectors.command("firmware_install", "firmware_install-result")
    job_id = started["result"]["job_id"]
    topic, command = await node.next_command()
    ota = MQTT["ota"]
    assert topic == ota["topic"]
    assert command["url"].startswith(f"{vectors.api.base}/api/v1/ota/")
    assert command | {"job": ota["payload"]["job"], "url": ota["payload"]["url"]} == ota["payload"]
    status = MQTT["ota-status"]["payload"] | {"job": command["job"]}
    node.publish("ota_status", status)
    await vectors.event("event-firmware-progress-ota", job_id=job_id, stage="downloading")
    await vectors.command("firmware_install-busy", "firmware_install-busy-result")
    await vectors.command("firmware_jobs", "firmware_jobs-result")
    node.publish("ota_status", {"v": 1, "job": command["job"], "state": "done"})
    await vectors.api.wait_event(
        lambda e: e["event"] == "firmware progress" and e["job_id"] == job_id
        and e["stage"] == "done"
    )  # fmt: skip


async def test_websocket_vectors(gateway: Gateway, api: ApiClient, node: NodeSimulator) -> None:
    """One session through every command and event, as the vectors show them."""
    vectors = Vectors(api)
    vectors.server("version", api.version)
    await vectors.command("set_api_schema", "set_api_schema-result")
    await vectors.command("supported_features", "supported_features-result")
    await vectors.command("start_listening", "start_listening-result")

    node.announce()  # the mqtt "announce" vector, then status online
    await api.wait_event(lambda e: e["event"] == "node added")
    for name in ("state", "state-with-timestamp"):
        _publish(node, name)
    await vectors.event("event-field-value", source_id="vent", field_id="open")
    # The two values of the "state" message reach the client in one frame.
    pairs = [frame[i : i + 2] for frame in api.arrays for i in range(len(frame) - 1)]
    vectors.server("coalesced-frame", next(p for p in pairs if _field_of(p[0]) == "temperature"))
    node.publish("state/climate", b"{oops")  # counted as invalid_json in the diagnostics
    _publish(node, "heartbeat")
    await vectors.event("event-node-status", battery=87)
    _publish(node, "event")
    await vectors.event("event-node-event")
    await wait_for(lambda: gateway.drops.counts["invalid_json"] == 1, what="drop")

    await vectors.event("event-gateway-status")
    await vectors.command("get_state", "get_state-result")
    await vectors.command("get_diagnostics", "get_diagnostics-result")

    await vectors.command("set_field", "set_field-result")
    assert await node.next_command() == (MQTT["set"]["topic"], MQTT["set"]["payload"])
    await vectors.command("node_action", "node_action-result")
    assert await node.next_command() == (MQTT["action"]["topic"], MQTT["action"]["payload"])
    await vectors.command("set_field-read-only", "error-result")
    assert node.commands.empty()

    begin = await vectors.command("firmware_upload_begin", "firmware_upload_begin-result")
    upload_id = begin["result"]["upload_id"]
    await vectors.command("firmware_upload_chunk", "firmware_upload_chunk-result",
                          upload_id=upload_id)  # fmt: skip
    await vectors.command("firmware_upload_end", "firmware_upload_end-result", upload_id=upload_id)
    await vectors.command("firmware_list", "firmware_list-result")
    await vectors.command("firmware_get", "firmware_get-result")
    await vectors.command("backup", "backup-result")
    await vectors.command("serial_ports", "serial_ports-result")
    for sim in _rom_simulator("esp32c3"):
        flashing = await vectors.command("flash_serial", "flash_serial-result", port=sim.device)
        await vectors.event("event-firmware-progress", job_id=flashing["result"]["job_id"],
                            stage="done")  # fmt: skip
    await _install(vectors, node)
    await vectors.command("firmware_delete", "firmware_delete-result")
    await vectors.command("remove_node", "remove_node-result")
    await vectors.event("event-node-removed")
    await vectors.command("restore", "restore-result")
    await vectors.event("event-node-added")
    await vectors.command("rename_node", "rename_node-result")
    await vectors.event("event-node-updated")
    restored = gateway.processor.nodes["greenhouse-1"]
    assert restored.display_name == "Glasshouse"
    assert restored.field("climate", "temperature").value == 21.5

    await vectors.command("automation_set", "automation_set-result")
    await vectors.event("event-automation-updated")
    await vectors.command("automation_list", "automation_list-result")
    await vectors.command("automation_get", "automation_get-result")
    await vectors.command("automation_run", "automation_run-result")
    await vectors.event("event-notify")
    await vectors.event("event-automation-run")
    await vectors.command("automation_history", "automation_history-result")
    node.publish("state/climate", b'{"v": 1, "values": {"temperature": 1.5}}')
    # Setting an alarm task showed it (inactive) at once; this is the update that raises it.
    await api.wait_event(lambda e: e["event"] == "alarm updated" and not e["alarm"]["active"])
    await vectors.event("event-alarm-updated")
    await vectors.command("alarm_list", "alarm_list-result")
    await vectors.command("alarm_acknowledge", "alarm_acknowledge-result")
    await vectors.command("automation_enable", "automation_enable-result")
    await vectors.command("automation_delete", "automation_delete-result")
    await vectors.event("event-automation-removed")
    await vectors.command("automation_set-invalid", "automation_set-invalid-result")
    await vectors.command("automation_set-references", "automation_set-references-result")
    await vectors.command("stop_listening", "stop_listening-result")

    assert vectors.checked == set(vectors.by_name), "vectors not checked against the gateway"
