"""End to end: simulated MQTT node ↔ real Mosquitto ↔ gateway ↔ WebSocket/REST clients."""

from __future__ import annotations

import json
from pathlib import Path

from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import ApiClient, NodeSimulator, gateway_config, start_gateway, wait_for


def _field(node: dict, source: str, field: str) -> dict:
    src = next(s for s in node["sources"] if s["id"] == source)
    return next(f for f in src["fields"] if f["id"] == field)


async def test_node_reflected_over_websocket_and_rest(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """Announce and state from a node appear as events and in the REST resources."""
    assert api.version["gateway_id"] == "test-gw"
    assert api.version["max_schema_version"] == 1
    assert (await api.command("set_api_schema", schema_version=1))["success"]
    listening = await api.command("start_listening")
    assert listening["result"]["state"]["nodes"] == []

    node.announce()
    added = await api.wait_event(lambda e: e["event"] == "node added")
    assert added["node"]["id"] == "greenhouse-1"
    assert added["node"]["provider"] == "mqtt"
    status = await api.wait_event(lambda e: e["event"] == "node status")
    assert status["online"] is True

    node.state("climate", temperature=21.5, humidity=48)
    event = await api.wait_event(
        lambda e: e["event"] == "field value" and e["field_id"] == "humidity"
    )
    assert event["value"] == 48
    assert event["source_id"] == "climate"

    status_code, nodes = await api.rest("GET", "/api/v1/nodes")
    assert status_code == 200
    assert _field(nodes[0], "climate", "temperature")["value"] == 21.5
    status_code, one = await api.rest("GET", "/api/v1/nodes/greenhouse-1")
    assert status_code == 200
    assert one["online"] is True
    assert one["firmware"] == "1.2.0"
    assert one["actions"] == ["reboot", "identify"]

    node.publish("heartbeat", {"v": 1, "battery": 87, "rssi": -61})
    telemetry = await api.wait_event(lambda e: e["event"] == "node status" and e["battery"])
    assert (telemetry["battery"], telemetry["rssi"]) == (87, -61)

    node.publish("event/button", {"v": 1, "event": "pressed", "data": {"count": 2}})
    pressed = await api.wait_event(lambda e: e["event"] == "node event")
    assert pressed == {"event": "node event", "node_id": "greenhouse-1", "source_id": "button",
                       "event_type": "pressed", "data": {"count": 2}}  # fmt: skip


async def test_set_field_reaches_node(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """A set over WebSocket and over REST arrives at the node as a QoS-1 command."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="announce")
    result = await api.command(
        "set_field", node_id="greenhouse-1", source_id="vent", field_id="position", value=40
    )
    assert result["success"], result
    assert await node.next_command() == ("edgeiot/v1/greenhouse-1/set/vent/position",
                                         {"v": 1, "value": 40})  # fmt: skip

    status, body = await api.rest(
        "PUT", "/api/v1/nodes/greenhouse-1/fields/vent/mode", {"value": "manual"}
    )
    assert (status, body) == (200, {"value": "manual"})
    assert (await node.next_command())[1] == {"v": 1, "value": "manual"}

    status, _ = await api.rest("POST", "/api/v1/nodes/greenhouse-1/actions/identify")
    assert status == 200
    assert await node.next_command() == ("edgeiot/v1/greenhouse-1/action",
                                         {"v": 1, "action": "identify"})  # fmt: skip


async def test_set_field_errors(gateway: Gateway, api: ApiClient, node: NodeSimulator) -> None:
    """Bad sets get structured errors and nothing reaches the node."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="announce")

    async def code(**args: object) -> str:
        result = await api.command("set_field", **args)
        assert not result["success"]
        return str(result["error_code"])

    base = {"node_id": "greenhouse-1", "source_id": "vent"}
    assert await code(**base, field_id="position", value=140) == "invalid_value"
    assert await code(**base, field_id="position", value="up") == "invalid_value"
    assert await code(**base, field_id="mode", value="turbo") == "invalid_value"
    assert await code(**base, field_id="nope", value=1) == "not_found"
    assert await code(node_id="ghost", source_id="vent", field_id="open", value=True) == "not_found"
    assert await code(node_id="greenhouse-1", source_id="climate", field_id="temperature",
                      value=20.0) == "not_writable"  # fmt: skip
    assert await code(**base, field_id="open") == "invalid_message"  # value missing
    action = await api.command("node_action", node_id="greenhouse-1", action="selfdestruct")
    assert action["error_code"] == "unsupported_action"

    status, body = await api.rest(
        "PUT", "/api/v1/nodes/greenhouse-1/fields/vent/position", {"value": -5}
    )
    assert (status, body["error_code"]) == (400, "invalid_value")
    status, body = await api.rest("PUT", "/api/v1/nodes/greenhouse-1/fields/vent/open", [1])
    assert (status, body["error_code"]) == (400, "invalid_message")
    assert node.commands.empty()


async def test_last_will_and_heartbeat_mark_node_offline(
    gateway: Gateway, api: ApiClient, mosquitto: Mosquitto
) -> None:
    """A node that vanishes is offline: by its Last Will, or by a missed heartbeat."""
    await api.command("start_listening")
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    sim.announce()
    await api.wait_event(lambda e: e["event"] == "node status" and e["online"])
    sim.crash()  # no DISCONNECT: the broker publishes the Last Will after keepalive * 1.5
    offline = await api.wait_event(lambda e: e["event"] == "node status", timeout=15)
    assert offline == offline | {"node_id": "greenhouse-1", "online": False}

    quiet = NodeSimulator(
        mosquitto, "quiet-1", {"v": 1, "heartbeat_interval": 1, "sources": []}
    ).start()
    try:
        quiet.announce()
        await api.wait_event(lambda e: e["event"] == "node status" and e["node_id"] == "quiet-1")
        gone = await api.wait_event(
            lambda e: e["event"] == "node status" and e["node_id"] == "quiet-1", timeout=10
        )
        assert gone["online"] is False  # no heartbeat for 2.5 intervals
        quiet.publish("heartbeat", {"v": 1})
        back = await api.wait_event(
            lambda e: e["event"] == "node status" and e["node_id"] == "quiet-1"
        )
        assert back["online"] is True
    finally:
        quiet.stop()


async def test_restart_keeps_nodes_and_values(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Nodes, fields, last values and user names survive a gateway restart."""
    config = gateway_config(tmp_path / "gw", mosquitto)
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    gateway = await start_gateway(config)
    try:
        sim.announce()
        sim.state("climate", temperature=19.25)
        await wait_for(
            lambda: (
                (n := gateway.processor.nodes.get("greenhouse-1"))
                and n.field("climate", "temperature").value == 19.25
            ),
            what="value",
        )
        gateway.commands.rename_node("greenhouse-1", "Glasshouse")
        token = gateway.token
    finally:
        await gateway.stop()
        sim.stop()

    mosquitto.stop()  # no broker: what the gateway shows now comes from its own store
    again = await start_gateway(config, wait_connected=False)
    try:
        assert again.token == token
        restored = again.processor.nodes["greenhouse-1"]
        assert restored.display_name == "Glasshouse"
        assert restored.field("climate", "temperature").value == 19.25
        assert restored.field("vent", "mode").options == ["auto", "manual", "off"]
        assert restored.online is False
    finally:
        await again.stop()


async def test_malformed_input_is_counted_not_fatal(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """Garbage on every node topic is dropped with a reason; the stream goes on."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="announce")
    node.publish("state/climate", b"{not json")
    node.publish("state/climate", {"v": 1, "values": {"temperature": "hot"}})
    node.publish("state/climate", {"v": 1, "values": {"humidity": 101}})
    node.publish("state/climate", {"v": 1, "values": {"pressure": 1013}})
    node.publish("state/nosuchsource", {"v": 1, "values": {"x": 1}})
    node.publish("telemetry", {"v": 1})
    node.publish("announce", b"x" * 300_000)
    node.publish("state/climate", {"v": 1, "values": {"temperature": float("nan")}})
    node.client.publish(
        "edgeiot/v1/ghost/state/climate", json.dumps({"v": 1, "values": {"a": 1}}), 1
    )
    node.state("climate", temperature=22.0)  # a good message after the garbage still lands

    await wait_for(
        lambda: (
            gateway.processor.nodes["greenhouse-1"].field("climate", "temperature").value == 22.0
        ),
        what="good value",
    )
    result = await api.command("get_diagnostics")
    dropped = result["result"]["dropped"]
    assert dropped == {
        "invalid_json": 1,
        "invalid_value": 3,  # "hot", 101 (max 100) and NaN
        "unknown_field": 2,
        "unknown_topic": 1,
        "oversized": 1,
        "unknown_node": 1,
    }
    assert "greenhouse-1" in gateway.processor.nodes


async def test_events_must_be_declared_and_bring_node_online(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """Undeclared events are dropped; a declared one is forwarded and marks the node online."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes, what="announce")
    await api.command("start_listening")
    node.publish("status", {"v": 1, "state": "offline"}, retain=True)
    await api.wait_event(lambda e: e["event"] == "node status" and not e["online"])
    node.publish("event/button", {"v": 1, "event": "exploded"})
    node.publish("event/vent", {"v": 1, "event": "pressed"})
    node.publish("event/button", {"v": 1, "event": "held"})
    online = await api.wait_event(lambda e: e["event"] == "node status")
    assert online["online"] is True
    held = await api.wait_event(lambda e: e["event"] == "node event")
    assert held["event_type"] == "held"
    dropped = (await api.command("get_diagnostics"))["result"]["dropped"]
    assert dropped == {"unknown_event": 2}
