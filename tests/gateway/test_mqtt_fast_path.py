"""The MQTT provider's PUBLISH fast path delivers exactly what paho's own reader delivers.

The same byte stream (QoS 0/1/2 publishes with 1- to 3-byte lengths, retained ones, a topic
that is not UTF-8, acknowledgements and pings in between), cut into random chunks, goes through
a socket pair to a client with the fast path and to one without it (paho's reader, the
reference): the messages, their order and the PUBACKs sent must be the same.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgeiot_gateway.providers.mqtt import _LoopClient

type Delivered = tuple[bytes, bytes, int, int, bool]

BAD_TOPIC_AT, BAD_TOPIC = 1234, b"edgeiot/v1/\xff\xfe/state/s"


def _length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def publish(topic: bytes, payload: bytes, qos: int, mid: int, retain: bool = False) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + (mid.to_bytes(2, "big") if qos else b"")
    body += payload
    return bytes([0x30 | qos << 1 | int(retain)]) + _length(len(body)) + body


def stream(rng: random.Random) -> tuple[bytes, int]:
    """Packets as a broker sends them, and how many are PUBLISH packets."""
    packets, publishes = [], 0
    for index in range(3000):
        qos = 1 if index == BAD_TOPIC_AT else rng.choice((0, 1, 1, 1, 2))
        size = rng.choice((0, 5, 126, 127, 128, 300, 16383, 16384, 20000))
        topic = f"edgeiot/v1/node-{index % 37}/state/s".encode()
        if index == BAD_TOPIC_AT:
            topic = BAD_TOPIC  # not UTF-8: delivered as is, judged by the provider
        packets.append(publish(topic, rng.randbytes(size), qos, 1 + index % 65535, index % 7 == 0))
        publishes += 1
        if index % 50 == 0:
            packets.append(b"\xd0\x00")  # PINGRESP
        if index % 77 == 0:
            packets.append(b"\x40\x02" + (60000 + index).to_bytes(2, "big"))  # PUBACK, unknown
    return b"".join(packets), publishes


@contextmanager
def client_on_socket(fast: bool, manual_ack: bool) -> Iterator[tuple[Any, socket.socket, list]]:
    """A _LoopClient reading one end of a socket pair; yields (client, other end, delivered)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client = _LoopClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv311)
    client.manual_ack_set(manual_ack)
    client.on_socket_register_write = lambda *_args: None  # PUBACKs stay queued: inspected
    delivered: list[Delivered] = []
    if fast:

        def sink(*message: Any) -> None:
            delivered.append(message)
            client.fast_count = getattr(client, "fast_count", 0) + 1

        client.publish_sink = sink
    client.on_message = lambda _c, _u, m: delivered.append(
        (m._topic, m.payload, m.mid, m.qos, m.retain)
    )
    client._sock = ours
    try:
        yield client, theirs, delivered
    finally:
        ours.close()
        theirs.close()


FAST_COUNTS: list[int] = []


def run(data: bytes, chunks: list[int], fast: bool, manual_ack: bool) -> tuple[list, list, bool]:
    with client_on_socket(fast, manual_ack) as (client, peer, delivered):
        position, open_ = 0, True
        for size in chunks:
            peer.sendall(data[position : position + size])
            position += size
            while client.read_packets(100):
                pass
            if client._sock is None:
                open_ = False
                break
        pubacks = [p["packet"] for p in client._out_packet if p["command"] == 0x40]
        FAST_COUNTS.append(getattr(client, "fast_count", 0))
        return delivered, pubacks, open_


def _chunks(rng: random.Random, total: int) -> list[int]:
    sizes, left = [], total
    while left > 0:
        size = min(left, rng.choice((1, 2, 3, 7, 100, 4096, 65536, 70000)))
        sizes.append(size)
        left -= size
    return sizes


@pytest.mark.parametrize("manual_ack", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_fast_path_matches_paho(seed: int, manual_ack: bool) -> None:
    rng = random.Random(seed)
    data, publishes = stream(rng)
    chunks = _chunks(rng, len(data))
    reference = run(data, chunks, fast=False, manual_ack=manual_ack)
    fast = run(data, chunks, fast=True, manual_ack=manual_ack)
    assert fast == reference
    delivered, pubacks, still_open = fast
    assert still_open
    qos2 = sum(1 for _t, _p, _m, qos, _r in delivered if qos == 2)
    assert qos2 == 0  # QoS 2 waits for PUBREL in both
    assert 0 < len(delivered) < publishes
    assert FAST_COUNTS[-1] > len(delivered) * 0.75  # most went the fast way
    assert BAD_TOPIC in (topic for topic, *_ in delivered)
    qos1 = sum(1 for message in delivered if message[3] == 1)
    assert len(pubacks) == (0 if manual_ack else qos1)


def test_bad_packets_are_left_to_paho() -> None:
    """An empty topic and a 5-byte length are protocol errors: paho closes in both paths."""
    good = publish(b"a/b", b"x", 1, 7)
    for bad in (publish(b"", b"x", 1, 8), b"\x32\xff\xff\xff\xff\x01" + b"\x00" * 8):
        data = good + bad + good
        reference = run(data, [len(data)], fast=False, manual_ack=True)
        fast = run(data, [len(data)], fast=True, manual_ack=True)
        assert fast == reference
        assert fast[0] == [(b"a/b", b"x", 7, 1, False)]
        assert not fast[2]
