"""The MQTT node protocol codec against the shared vectors in tests/vectors/mqtt.json."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.messages import (
    FieldValues,
    NodeAnnounced,
    NodeEvent,
    NodeHeartbeat,
    NodeStatus,
)
from edgeiot_gateway.protocol import OtaStatus, ProtocolError, Topics, encode_status

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "mqtt.json").read_text())
TOPICS = Topics(VECTORS["prefix"])


def _payload(case: dict[str, Any]) -> bytes:
    if "raw" in case:
        return str(case["raw"]).encode()
    if "raw_hex" in case:
        return bytes.fromhex(case["raw_hex"])
    if "raw_repeat" in case:
        text, count = case["raw_repeat"]
        return str(text).encode() * count
    return json.dumps(case["payload"]).encode()


def _summary(message: object) -> dict[str, Any]:
    match message:
        case NodeAnnounced(node=node):
            fields = sum(len(s.fields) for s in node.sources.values())
            return {"message": "node_announced", "node_id": node.id,
                    "sources": len(node.sources), "fields": fields}  # fmt: skip
        case FieldValues():
            return {"message": "field_values", **asdict(message)}
        case NodeStatus():
            return {"message": "node_status", **asdict(message)}
        case NodeHeartbeat():
            return {"message": "node_heartbeat", **asdict(message)}
        case NodeEvent():
            return {"message": "node_event", **asdict(message)}
        case OtaStatus():
            return {"message": "ota_status", **asdict(message)}
    raise AssertionError(message)


@pytest.mark.parametrize("case", VECTORS["decode"], ids=lambda c: c["name"])
def test_decode(case: dict[str, Any]) -> None:
    """Every documented node → gateway message decodes to what the vector expects."""
    assert _summary(TOPICS.decode(case["topic"], _payload(case))) == case["expect"]


def test_announce_round_trips_definition() -> None:
    """An announced node keeps every attribute of its fields."""
    case = next(c for c in VECTORS["decode"] if c["name"] == "announce")
    message = TOPICS.decode(case["topic"], _payload(case))
    assert isinstance(message, NodeAnnounced)
    definition = message.node.definition()
    sent = case["payload"]
    assert definition["actions"] == sent["actions"]
    assert definition["provider"] == "mqtt"
    for sent_source, source in zip(sent["sources"], definition["sources"], strict=True):
        for sent_field, field in zip(sent_source["fields"], source["fields"], strict=True):
            assert field == {"writable": False} | sent_field


@pytest.mark.parametrize("case", VECTORS["encode"], ids=lambda c: c["name"])
def test_encode(case: dict[str, Any]) -> None:
    """Every gateway → node message encodes exactly as documented."""
    command = case["command"]
    match command["kind"]:
        case "set":
            topic, payload = TOPICS.encode_set(
                command["node_id"], command["source_id"], command["field_id"], command["value"]
            )
        case "action":
            topic, payload = TOPICS.encode_action(command["node_id"], command["action"])
        case "gateway_status":
            topic = TOPICS.gateway_status(command["gateway_id"])
            payload = encode_status(command["online"])
        case "ota":
            topic, payload = TOPICS.encode_ota(
                command["node_id"], command["job"], command["url"], command["firmware"]
            )
    assert topic == case["topic"]
    assert json.loads(payload) == case["payload"]


@pytest.mark.parametrize("case", VECTORS["reject"], ids=lambda c: c["name"])
def test_reject(case: dict[str, Any]) -> None:
    """Malformed input raises ProtocolError with the documented reason."""
    with pytest.raises(ProtocolError) as err:
        TOPICS.decode(case["topic"], _payload(case))
    assert err.value.reason == case["reason"]


def test_commands_and_gateway_status_are_not_node_input() -> None:
    """The gateway sees its own commands and gateways' status on its subscription: ignored."""
    assert TOPICS.subscription() == "edgeiot/v1/#"
    for case in VECTORS["encode"]:
        assert TOPICS.decode(case["topic"], json.dumps(case["payload"]).encode()) is None
