"""docs/protocol.md stays true: its JSON examples are the test vectors, and it names everything.

Every ```json block in the document is preceded by a `<!-- vector: FILE#NAME -->` line and equals
that vector (the `payload` of an MQTT vector, the `message` of a WebSocket vector). The vectors
themselves are checked against the code: tests/gateway/test_protocol.py (MQTT codec) and
tests/gateway/test_ws_vectors.py (a real gateway).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway import bus, commands
from edgeiot_gateway.api.ws import COMMAND_SCHEMAS, MESSAGE_SCHEMA
from edgeiot_gateway.providers import can as can_provider
from edgeiot_gateway.providers.mysensors import protocol as mysensors_protocol

ROOT = Path(__file__).parent.parent
DOC_PATH = ROOT / "docs" / "protocol.md"
VECTORS = ROOT / "tests" / "vectors"
MARKER = re.compile(r"<!-- vector: (?P<file>mqtt|websocket)#(?P<name>[^ ]+) -->")

MQTT = json.loads((VECTORS / "mqtt.json").read_text())
WEBSOCKET = json.loads((VECTORS / "websocket.json").read_text())["messages"]
MQTT_SHOWN = MQTT["decode"] + MQTT["encode"]

# Drop reasons of the node protocol (counted in diagnostics): codec, processor and provider.
DROP_REASONS = (
    {case["reason"] for case in MQTT["reject"]}
    | {
        "unknown_node",
        "unknown_field",
        "invalid_value",
        "unknown_event",
        "internal_error",
    }
    | {
        value
        for key, value in vars(mysensors_protocol).items()
        if key.isupper() and isinstance(value, str) and value.startswith("mysensors_")
    }
    | set(can_provider.DROP_REASONS)
)


def _vector(file: str, name: str) -> Any:
    """What the docs show for a vector: an MQTT payload or a WebSocket message."""
    if file == "mqtt":
        cases = [c for c in MQTT_SHOWN + MQTT["reject"] if c["name"] == name and "payload" in c]
        assert len(cases) == 1, f"no (single) mqtt vector with a payload named {name!r}"
        return cases[0]["payload"]
    messages = [m for m in WEBSOCKET if m["name"] == name]
    assert len(messages) == 1, f"no (single) websocket vector named {name!r}"
    return messages[0]["message"]


def _examples() -> list[tuple[int, str, str, Any]]:
    """(line, file, name, parsed JSON) of every ```json block, checking each has its marker."""
    lines = DOC_PATH.read_text().splitlines()
    examples = []
    for number, line in enumerate(lines):
        marker = MARKER.fullmatch(line.strip())
        if line.strip().startswith("<!-- vector:"):
            assert marker, f"line {number + 1}: malformed marker {line!r}"
            assert lines[number + 1].strip() == "```json", (
                f"line {number + 1}: a vector marker must be followed by a ```json block"
            )
        if line.strip() != "```json":
            continue
        previous = MARKER.fullmatch(lines[number - 1].strip()) if number else None
        assert previous, f"line {number + 1}: a JSON example without a vector marker"
        end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == "```")
        try:
            parsed = json.loads("\n".join(lines[number + 1 : end]))
        except ValueError as err:
            pytest.fail(f"line {number + 1}: {previous.group('name')}: invalid JSON: {err}")
        examples.append((number + 1, previous.group("file"), previous.group("name"), parsed))
    return examples


def _doc() -> str:
    return DOC_PATH.read_text()


def test_every_json_example_is_its_vector() -> None:
    """Each marked JSON block equals (as JSON) the vector it names."""
    examples = _examples()
    assert examples
    for line, file, name, shown in examples:
        # Canonical text, so that 1, 1.0 and true are not taken for one another.
        assert _canonical(shown) == _canonical(_vector(file, name)), (
            f"line {line}: {file}#{name} differs from the vector"
        )


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def test_every_vector_is_shown() -> None:
    """Every MQTT decode/encode vector and every WebSocket vector appears in the docs."""
    shown = {(file, name) for _, file, name, _ in _examples()}
    wanted = {("mqtt", c["name"]) for c in MQTT_SHOWN}
    wanted |= {("websocket", m["name"]) for m in WEBSOCKET}
    assert wanted - shown == set()


def test_websocket_vectors_are_well_formed() -> None:
    """Unique names; client vectors are valid commands; every command and event has a vector."""
    names = [m["name"] for m in WEBSOCKET]
    assert len(names) == len(set(names))
    assert {m["direction"] for m in WEBSOCKET} <= {"client", "server"}
    client = [m["message"] for m in WEBSOCKET if m["direction"] == "client"]
    frames = [m["message"] for m in WEBSOCKET if m["direction"] == "server"]
    server = [m for frame in frames for m in (frame if isinstance(frame, list) else [frame])]
    assert any(isinstance(frame, list) for frame in frames), "a coalesced frame"
    for message in client:
        arguments = MESSAGE_SCHEMA(dict(message))
        del arguments["message_id"]
        COMMAND_SCHEMAS[arguments.pop("command")](arguments)
    assert {m["command"] for m in client} == set(COMMAND_SCHEMAS)
    assert {m["type"] for m in server} == {"version", "result", "event"}
    results = sorted(str(m["message_id"]) for m in server if m["type"] == "result")
    assert results == sorted(str(m["message_id"]) for m in client), "one result per command"
    assert any(m["type"] == "result" and not m["success"] for m in server), "an error result"
    events = {m["event"]["event"] for m in server if m["type"] == "event"}
    assert events == _bus_events(), "every event needs a vector"


def _bus_events() -> set[str]:
    return {value for name, value in vars(bus).items() if name.isupper() and isinstance(value, str)}


def _error_codes() -> set[str]:
    return {
        value for name, value in vars(commands).items() if name.isupper() and isinstance(value, str)
    }


def test_commands_error_codes_events_and_drop_reasons_are_documented() -> None:
    """Every WebSocket command, error code, event and drop reason is named in the docs."""
    doc = _doc()
    assert len(_error_codes()) >= 10
    for name in [*COMMAND_SCHEMAS, *_error_codes(), *_bus_events(), *DROP_REASONS]:
        assert f"`{name}`" in doc, f"docs/protocol.md does not mention `{name}`"
