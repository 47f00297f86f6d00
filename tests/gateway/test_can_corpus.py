"""CAN fidelity against the reference: thousands of generated frames of real DBCs (opendbc, MIT,
tests/can/opendbc/LICENSE) go through python-can virtual buses into a running gateway; every
signal of every frame the gateway publishes must equal cantools' own decode of the same bytes,
and every frame cantools cannot decode (or whose id the DBC lacks) is counted, nothing of it
published."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import can
import cantools
import pytest
from cantools.database.can import Database
from cantools.database.can import Message as DbcMessage
from cantools.database.can import Signal as DbcSignal
from cantools.database.errors import DecodeError, EncodeError
from cantools.database.namedsignalvalue import NamedSignalValue

from .harness import ApiClient, gateway_config, start_gateway, wait_for

CAN_DIR = Path(__file__).parent.parent / "can"
# Shapes: big-endian signed/scaled with sparse and duplicate labels (prius); little-endian
# multiplexed (tesla); 64-bit signals and boolean-pair tables (ct6); extended ids, overlapping
# signals, multiplexing (mqb); 1-bit tables and duplicate labels (mg); IEEE floats (sample).
DBCS = {
    "prius": CAN_DIR / "opendbc" / "toyota_prius_2010_pt.dbc",
    "tesla": CAN_DIR / "opendbc" / "tesla_model3_vehicle.dbc",
    "ct6": CAN_DIR / "opendbc" / "cadillac_ct6_powertrain.dbc",
    "mqb": CAN_DIR / "opendbc" / "vw_mqb.dbc",
    "mg": CAN_DIR / "opendbc" / "mg.dbc",
    "sample": CAN_DIR / "sample.dbc",
}
FRAMES = 700  # per DBC


def _raw(rng: random.Random, signal: DbcSignal) -> float | int:
    """A raw value for a signal: extremes, zero, a label's value, anything its bits hold."""
    if signal.is_float:
        return rng.choice(
            [0.0, -0.0, rng.uniform(-1e9, 1e9), math.nan, math.inf, -math.inf, rng.random()]
        )
    if signal.is_signed:
        low, high = -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    else:
        low, high = 0, (1 << signal.length) - 1
    choices = [int(raw) for raw in signal.choices or ()]
    options = [low, high, 0, rng.randint(low, high), rng.randint(low, high)]
    if choices:
        options += [rng.choice(choices)] * 3
    return rng.choice(options)


def _raw_values(rng: random.Random, message: DbcMessage) -> dict[str, float | int]:
    """Raw values of one of the message's signal sets (a random page of a multiplexed one)."""
    chosen: dict[str, float | int] = {}

    def walk(tree: list[Any]) -> None:
        for item in tree:
            if isinstance(item, str):
                chosen[item] = _raw(rng, message.get_signal_by_name(item))
                continue
            for multiplexer, pages in item.items():
                page = rng.choice(sorted(pages))
                chosen[multiplexer] = page
                walk(pages[page])

    walk(message.signal_tree)
    return chosen


def _frames(rng: random.Random, database: Database) -> list[can.Message]:
    """Good frames (encoded by cantools, garbage in unused bits) and bad ones."""
    messages = database.messages
    known = {(m.frame_id, m.is_extended_frame) for m in messages}
    frames: list[can.Message] = []
    for _ in range(FRAMES):
        message = rng.choice(messages)
        frame_id, extended = message.frame_id, message.is_extended_frame
        message.unused_bit_pattern = rng.getrandbits(8)
        try:
            data = bytearray(
                message.encode(_raw_values(rng, message), scaling=False, padding=True, strict=False)
            )
        except (EncodeError, ValueError, KeyError, OverflowError):  # cantools refuses some
            data = bytearray(rng.randbytes(message.length))
        roll = rng.random()
        if roll < 0.1:  # random bytes: on a multiplexed message often an unknown page
            data = bytearray(rng.randbytes(message.length))
        elif roll < 0.15 and len(data) < 8:  # longer than the message
            data += rng.randbytes(rng.randint(1, 8 - len(data)))
        elif roll < 0.22 and data:  # short
            data = data[: rng.randrange(len(data))]
        elif roll < 0.26:  # an id the DBC lacks
            while (frame_id := rng.randrange(0x800)) in {k for k, e in known if not e}:
                pass
            extended = False
        elif roll < 0.3 and frame_id < 0x800:  # 11/29-bit mismatch
            extended = not extended
        frames.append(
            can.Message(
                arbitration_id=frame_id,
                is_extended_id=extended,
                is_fd=len(data) > 8,
                data=bytes(data),
            )
        )
    return frames


class Expected:
    """What the gateway must publish for the frames, per the reference (cantools)."""

    def __init__(self, database: Database, nodes: list[dict[str, Any]]) -> None:
        self.messages = {(m.frame_id, m.is_extended_frame): m for m in database.messages}
        # (message name, signal name) → (node, source, field, type, label field or None)
        self.fields: dict[tuple[str, str], tuple[str, str, str, str, str | None]] = {}
        for node in nodes:
            for source in node["sources"]:
                names = {f["name"]: f for f in source["fields"]}
                for field in source["fields"]:
                    label = names.get(f"{field['name']} label")
                    if field["name"].endswith(" label") and field["type"] == "string":
                        continue
                    self.fields[(source["name"], field["name"])] = (
                        node["id"],
                        source["id"],
                        field["id"],
                        field["type"],
                        label["id"] if label else None,
                    )
        self.values: defaultdict[tuple[str, str, str], list[Any]] = defaultdict(list)
        self.drops: Counter[str] = Counter()

    def frame(self, frame: can.Message) -> None:
        message = self.messages.get((frame.arbitration_id, frame.is_extended_id))
        if message is None:
            self.drops["unknown_can_id"] += 1
            return
        data = bytes(frame.data)
        try:
            named = message.decode(data, decode_choices=True, scaling=True, allow_truncated=False)
            numbers = message.decode(data, decode_choices=False, allow_truncated=False)
        except DecodeError:
            self.drops["can_decode_error"] += 1
            return
        assert isinstance(named, dict)
        assert isinstance(numbers, dict)
        for name, value in named.items():
            node, source, field, kind, label = self.fields[(message.name, name)]
            number = numbers[name]
            label_of = value.name if isinstance(value, NamedSignalValue) else None
            raw_of = value.value if isinstance(value, NamedSignalValue) else None
            if kind == "float" and not math.isfinite(number):
                self.drops["can_signal_invalid"] += 1
                continue
            if kind == "enum":
                shown: Any = value if label_of is None else label_of
            elif kind == "bool":
                shown = number == 1 if raw_of is None else raw_of == 1
            elif kind == "string":
                shown = str(number)
            else:
                shown = number
            self.values[(node, source, field)].append(shown)
            if label is not None:
                self.values[(node, source, label)].append(label_of or "")


@pytest.fixture
def corpus_gateway_config(tmp_path: Path) -> dict[str, Any]:
    providers = [
        {
            "type": "can",
            "name": name,
            "interface": "virtual",
            "channel": f"corpus-{name}-{uuid.uuid4().hex[:8]}",
            "dbc": str(path),
            "node_prefix": f"{name}-",
            "changes_only": False,  # every signal of every frame
        }
        for name, path in DBCS.items()
    ]
    return gateway_config(tmp_path / "gw", None, providers=providers)


async def _published(api: ApiClient, count: int, nodes: set[str]) -> list[dict[str, Any]]:
    """Read field value events of `nodes` until `count` arrived (and a moment more)."""
    assert api.ws is not None
    events = [e for e in api.events if e["event"] == "field value" and e["node_id"] in nodes]
    api.events.clear()
    while True:
        try:
            message = await api.ws.receive_json(timeout=10 if len(events) < count else 0.3)
        except TimeoutError:
            return events
        event = message["event"] if message["type"] == "event" else {}
        if event.get("event") == "field value" and event["node_id"] in nodes:
            events.append(event)


async def test_gateway_publishes_what_cantools_decodes(
    corpus_gateway_config: dict[str, Any], socket_enabled: None
) -> None:
    """Every signal of every frame equals cantools' decode; bad frames are counted, not shown."""
    gateway = await start_gateway(corpus_gateway_config)
    assert gateway.api is not None
    assert gateway.api.port is not None
    api = await ApiClient(gateway.api.port, gateway.token).connect()
    rng = random.Random(20261202)
    expected_drops: Counter[str] = Counter()
    try:
        assert (await api.command("set_api_schema", schema_version=1))["success"]
        state = (await api.command("start_listening"))["result"]["state"]
        total = 0
        for name, path in DBCS.items():
            database = cantools.database.load_file(path, strict=False)
            assert isinstance(database, Database)
            nodes = [n for n in state["nodes"] if n["provider"] == name]
            expected = Expected(database, nodes)
            assert {key[0] for key in expected.fields} == {
                m.name for m in database.messages if m.signals
            }
            frames = _frames(rng, database)
            for frame in frames:
                expected.frame(frame)
            provider = gateway.providers[name]
            channel = provider.options["channel"]
            peer = can.interface.Bus(interface="virtual", channel=channel)
            try:
                for frame in frames:
                    peer.send(frame)
                sent = len(frames)

                def drained(provider: Any = provider, sent: int = sent) -> bool:
                    figures = provider.diagnostics()
                    return bool(figures["frames_received"] == sent and not figures["queued"])

                await wait_for(drained, timeout=60, what=f"{name} frames")
            finally:
                peer.shutdown()
            count = sum(len(v) for v in expected.values.values())
            events = await _published(api, count, {n["id"] for n in nodes})
            published: defaultdict[tuple[str, str, str], list[Any]] = defaultdict(list)
            for event in events:
                key = (event["node_id"], event["source_id"], event["field_id"])
                published[key].append(event["value"])
            for key, values in expected.values.items():
                assert published[key] == values, (name, key)
            assert set(published) == set(expected.values), name  # nothing else
            expected_drops += expected.drops
            total += len(frames)
            assert expected.drops["can_decode_error"] > 10, name  # the corpus has bad frames
        drops = dict(gateway.drops.counts)
        assert drops == {k: v for k, v in expected_drops.items() if v}, drops
        assert expected_drops["unknown_can_id"] > 100
        assert expected_drops["can_signal_invalid"] > 10  # NaN/infinite IEEE floats
        assert total == FRAMES * len(DBCS)
    finally:
        await api.close()
        await gateway.stop()
