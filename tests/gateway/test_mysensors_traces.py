"""MySensors scenario traces written from the public serial protocol (MySensors 2.x, and how the
library's core/MyTransport.cpp, MySensorsCore.cpp and MyProtocol.cpp read what the controller
sends), played by a simulated serial gateway against a running EdgeIoT gateway."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.models import FieldType
from edgeiot_gateway.providers.mysensors import protocol as ms
from edgeiot_gateway.providers.mysensors import values as mv

from .harness import start_gateway, wait_for
from .test_mysensors import PtySimulator, _config, _provider, present

S = ms.Presentation
V = ms.SetReq


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncIterator[PtySimulator]:
    simulator = PtySimulator()
    yield simulator
    simulator.close()


@pytest.fixture
async def gateway(tmp_path: Path, sim: PtySimulator) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(_config(tmp_path, transport="serial", device=sim.path))
    await sim.expect("0;255;3;0;2;")
    yield gateway
    await gateway.stop()


async def test_two_new_nodes_ask_for_an_id_at_once(gateway: Gateway, sim: PtySimulator) -> None:
    """Each I_ID_RESPONSE carries the requesting node's token as its child id, so each node
    takes its own id (a node accepts a response for its token or for 255 only); the same token
    again gets the same id."""
    sim.send("255;17;3;0;3;", "255;201;3;0;3;")  # two nodes, tokens 17 and 201
    responses = {await sim.expect("255;"), await sim.expect("255;")}
    assert responses == {"255;17;3;0;4;1", "255;201;3;0;4;2"}
    sim.send("255;17;3;0;3;")  # the first node did not hear its answer: asks again
    assert await sim.expect("255;") == "255;17;3;0;4;1"
    sim.send("255;255;3;0;3;")  # a library without tokens
    assert await sim.expect("255;") == "255;255;3;0;4;3"
    assert _provider(gateway).stats["ids_assigned"] == 3


async def test_presentation_and_re_presentation(gateway: Gateway, sim: PtySimulator) -> None:
    """A re-presentation with other children and types replaces the definition; values the
    node sent on a child (beyond what its type implies) stay fields of it."""
    await present(sim, 4, "Hall", "1.0", (1, S.S_BINARY, "Light"), (2, S.S_TEMP, "Air"))
    sim.send("4;1;1;0;3;40")  # V_PERCENTAGE on a switch: the sketch may send any V_ type
    nodes = gateway.processor.nodes
    await wait_for(lambda: "ms-4" in nodes and nodes["ms-4"].field("child-1", "percentage"))
    assert nodes["ms-4"].field("child-1", "percentage").value == 40  # type: ignore[union-attr]
    await gateway.commands.set_field("ms-4", "child-1", "percentage", 55)
    assert await sim.expect("4;1;") == "4;1;1;0;3;55"

    await present(sim, 4, "Hall", "1.1", (1, S.S_DIMMER, "Lamp"), (3, S.S_HUM, ""))
    await wait_for(lambda: nodes["ms-4"].firmware == "1.1", what="re-presentation")
    await wait_for(lambda: "child-3" in nodes["ms-4"].sources, what="new child")
    node = nodes["ms-4"]
    lamp = node.sources["child-1"]
    assert (lamp.name, list(lamp.fields)) == ("Lamp", ["status", "percentage"])
    assert node.sources["child-3"].fields["hum"].type is FieldType.FLOAT
    assert "child-2" in node.sources  # MySensors never un-presents a child


def _sample(spec: mv.ValueSpec, value_type: int) -> str:
    """A payload of the value's kind, as a sketch sends it."""
    if spec.options:
        return spec.options[-1]
    match spec.type:
        case FieldType.BOOL:
            return "1"
        case FieldType.INT:
            return str(int(spec.max) if spec.max is not None else 42)
        case FieldType.FLOAT:
            return "-12.5" if spec.min is None or spec.min < 0 else "12.5"
    return f"text {value_type}"


async def test_set_and_req_with_every_payload_kind(gateway: Gateway, sim: PtySimulator) -> None:
    """Every V_ type on a custom child: the set lands in its field as the value's type, a req
    gets the last payload back; event values become events."""
    await present(sim, 6, "Lab", "1.0", (1, S.S_CUSTOM, "All"))
    nodes = gateway.processor.nodes
    await wait_for(lambda: "ms-6" in nodes, what="node 6")
    expected: dict[str, Any] = {}
    events = 0
    for value_type in ms.SetReq:
        if value_type == V.V_UNIT_PREFIX:
            continue
        spec = mv.value_spec(S.S_CUSTOM, value_type)
        payload = _sample(spec, value_type)
        sim.send(f"6;1;1;0;{int(value_type)};{payload}")
        if spec.event is not None:
            events += 1
            continue
        expected[mv.FIELD_IDS[value_type]] = mv.decode_value(spec.type, payload)
        sim.send(f"6;1;2;0;{int(value_type)};")
        assert await sim.expect("6;1;") == f"6;1;1;0;{int(value_type)};{payload}"
    fields = nodes["ms-6"].sources["child-1"].fields
    await wait_for(lambda: len(fields) == len(expected), what="every field")
    assert {f: fields[f].value for f in expected} == expected
    assert gateway.drops.total == 0
    assert _provider(gateway).stats["requests_answered"] == len(expected)
    assert events > 0


async def test_echo_in_both_directions(gateway: Gateway, sim: PtySimulator) -> None:
    """The controller asks for an echo only when told to; an inbound echo (ack bit) confirms
    what we sent and is never answered, whatever its type."""
    await present(sim, 8, "Relay", "1.0", (1, S.S_BINARY, "Pump"))
    await wait_for(lambda: "ms-8" in gateway.processor.nodes, what="node 8")
    commands = gateway.commands
    await commands.set_field("ms-8", "child-1", "status", True)  # default: request_ack false
    assert await sim.expect("8;") == "8;1;1;0;2;1"
    await commands.set_field("ms-8", "child-1", "status", False, ack=True)
    assert await sim.expect("8;") == "8;1;1;1;2;0"
    sim.send("8;1;1;1;2;0")  # the node's echo
    provider = _provider(gateway)
    await wait_for(lambda: provider.stats["acks"] == 1, what="echo matched")
    assert gateway.processor.nodes["ms-8"].field("child-1", "status").value is False  # type: ignore[union-attr]
    # Echoes of a req, of I_TIME, I_CONFIG, I_ID_REQUEST: nothing is answered.
    sim.send("8;1;2;1;2;", "8;255;3;1;1;", "8;255;3;1;6;M", "255;9;3;1;3;")
    sim.send("8;255;3;0;6;")  # a real request after them: the next line out answers it
    assert await sim.expect("8;") == "8;255;3;0;6;M"
    assert provider.stats["echoes_unmatched"] == 4
    assert provider.stats["ids_assigned"] == 0


async def test_time_config_and_node_actions(gateway: Gateway, sim: PtySimulator) -> None:
    """I_TIME and I_CONFIG requests are answered; the controller's own internal messages are
    node actions."""
    await present(sim, 2, "Clock", "1.0", (1, S.S_INFO, "Display"))
    await wait_for(lambda: "ms-2" in gateway.processor.nodes, what="node 2")
    sim.send("2;255;3;0;1;")
    reply = await sim.expect("2;255;3;0;1;")
    assert abs(int(reply.rsplit(";", 1)[1]) - time.time()) < 5
    sim.send("2;255;3;0;6;0")
    assert await sim.expect("2;") == "2;255;3;0;6;M"
    commands = gateway.commands
    for action, line in (
        ("reboot", "2;255;3;0;13;"),
        ("request_heartbeat", "2;255;3;0;18;"),
        ("request_presentation", "2;255;3;0;19;"),
        ("request_version", "2;255;3;0;2;"),
        ("discover", "2;255;3;0;20;"),
        ("send_config", "2;255;3;0;6;M"),
    ):
        await commands.node_action("ms-2", action)
        assert await sim.expect("2;") == line, action
    await commands.node_action("ms-2", "send_time")
    sent = await sim.expect("2;255;3;0;1;")
    assert abs(int(sent.rsplit(";", 1)[1]) - time.time()) < 5
    sim.send("2;255;3;0;2;33751810", "2;255;3;0;21;0")  # its version, its discover response
    await sim.quiet("2;", 0.3)  # neither is answered


# A stream of good and bad lines with what must remain of it.
STREAM = b"".join(
    [
        b"garbage\n",
        b"11;1;1;0;0;1234567890123456789012345.0\n",  # 28 bytes: only invalid lines of node 11
        b"11;1;1;0;0;2\x010\n",  # a control character
        b"12;255;3;0;0;abc\n",  # node 12: only an invalid battery level
        b"12;1;1;0;0;hot\n",  # and a temperature that is no number
        b"13;255;0;0;6;\n",  # node 13: a sensor type for the node itself
        b"14;1;0;0;6;Air\n",  # node 14: a good presentation
        b"14;1;1;0;0;21.25\n",
        b"14;1;1;0;0;" + b"9" * 26 + b"\n",  # too long
        b"14;1;1;0;1;\x7f\n",  # DEL
        b"0;255;3;0;9;" + b"gateway log line longer than a radio payload" + b"\n",  # allowed
        b"14;255;3;0;0;77\n",
        b"x" * 300 + b"\n",
        b"14;1;1;0;0;22.5\n",
    ]
)
STREAM_DROPS = {
    "mysensors_invalid_line": 1,
    "mysensors_invalid_payload": 7,
    "mysensors_line_too_long": 1,
}


async def _feed(tmp_path: Path, sim: PtySimulator, chunks: list[bytes]) -> dict[str, Any]:
    config = _config(tmp_path, transport="serial", device=sim.path)
    gateway = await start_gateway(config)
    try:
        await sim.expect("0;255;3;0;2;")
        for chunk in chunks:
            sim.write(chunk)
            if len(chunk) == 1:
                await asyncio.sleep(0.0005)
        nodes = gateway.processor.nodes
        await wait_for(
            lambda: "ms-14" in nodes and nodes["ms-14"].field("child-1", "temp").value == 22.5,  # type: ignore[union-attr]
            what="the last line",
        )
        assert nodes["ms-14"].battery == 77
        assert set(nodes) == {"ms-14"}
        drops = dict(gateway.drops.counts)
    finally:
        await gateway.stop()
    state = json.loads((tmp_path / "mysensors.json").read_text())
    return {"drops": drops, "state_nodes": sorted(state["nodes"])}


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "byte-by-byte"])
async def test_malformed_stream_leaves_exact_state(
    tmp_path: Path, sim: PtySimulator, bytewise: bool
) -> None:
    """Fed whole or byte by byte: the same drops, and no node whose lines were all rejected."""
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))] if bytewise else [STREAM]
    result = await _feed(tmp_path, sim, chunks)
    # Node 0 is the gateway (its log line is accepted); 11, 12 and 13 sent only rejected lines.
    assert result == {"drops": STREAM_DROPS, "state_nodes": ["0", "14"]}
