"""Hostile input to the API: clear errors, never internal_error, a 500 or a dropped WebSocket."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeiot_gateway.diagnostics import LOG_FIRST
from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import ApiClient, NodeSimulator, gateway_config, start_gateway, wait_for

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = 10**400
NUMBERS_NODE = {
    "v": 1,
    "name": "Numbers",
    "sources": [
        {
            "id": "s",
            "fields": [
                {"id": "count", "type": "int", "writable": True},
                {"id": "level", "type": "float", "writable": True},
            ],
        }
    ],
}


def _port(gateway: Gateway) -> int:
    assert gateway.api is not None
    assert gateway.api.port is not None
    return gateway.api.port


@pytest.fixture
def numbers(mosquitto: Mosquitto) -> Iterator[NodeSimulator]:
    """A node with an unbounded writable int and float field."""
    sim = NodeSimulator(mosquitto, "numbers-1", NUMBERS_NODE).start()
    yield sim
    sim.stop()


@pytest.fixture
async def announced(gateway: Gateway, numbers: NodeSimulator) -> NodeSimulator:
    numbers.announce()
    await wait_for(lambda: "numbers-1" in gateway.processor.nodes, what="announce")
    return numbers


async def _raw_http(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send bytes on a fresh TCP connection; everything the gateway answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


async def test_hostile_frames_are_invalid_messages(gateway: Gateway, api: ApiClient) -> None:
    """Deep nesting, NaN, floats beyond range and 5000-digit integers: invalid_message."""
    frames = [
        DEEP,
        '{"message_id": 1, "command": "get_state", "x": ' + DEEP + "}",
        '{"message_id": 2, "command": "set_api_schema", "schema_version": NaN}',
        '{"message_id": 3, "command": "set_api_schema", "schema_version": 1e400}',
        '{"message_id": 4, "command": "set_api_schema", "schema_version": ' + "9" * 5000 + "}",
    ]
    for frame in frames:
        result = await api.send_raw(frame)
        assert (result["success"], result["error_code"]) == (False, "invalid_message"), frame[:60]
    assert (await api.command("get_state"))["success"]  # the connection is still open
    assert gateway.api is not None
    assert gateway.api.errors == {"invalid_message": len(frames)}


async def test_huge_numbers_are_invalid_values(
    gateway: Gateway, api: ApiClient, announced: NodeSimulator
) -> None:
    """Integers beyond 64 bits and numbers beyond the float range never reach a node."""
    target = {"node_id": "numbers-1", "source_id": "s"}
    for field_id, value in [("count", 2**63), ("count", -(2**63) - 1), ("level", HUGE)]:
        result = await api.command("set_field", **target, field_id=field_id, value=value)
        assert result["error_code"] == "invalid_value", (field_id, value)
    status, body = await api.rest("PUT", "/api/v1/nodes/numbers-1/fields/s/level", {"value": HUGE})
    assert (status, body["error_code"]) == (400, "invalid_value")
    assert announced.commands.empty()

    result = await api.command("set_field", **target, field_id="count", value=2**63 - 1)
    assert result["result"] == {"value": 2**63 - 1}
    assert (await announced.next_command())[1]["value"] == 2**63 - 1


async def test_hostile_rest_bodies_are_400(gateway: Gateway, api: ApiClient) -> None:
    """A deep or non-standard JSON body is invalid_message, also for restore."""
    url = f"{api.base}/api/v1/restore"
    for body in [DEEP, '{"format": NaN}', '{"format": -Infinity}', "\xff\xfe{"]:
        data = body.encode("latin-1") if body.startswith("\xff") else body.encode()
        async with api.session.post(url, data=data) as response:
            answer = await response.json()
            assert (response.status, answer["error_code"]) == (400, "invalid_message"), body[:20]
    assert gateway.api is not None
    assert gateway.api.errors == {"invalid_message": 4}


def _backup(**field: Any) -> dict[str, Any]:
    value = field.pop("value", None)
    node = {"id": "n1", "provider": "mqtt",
            "sources": [{"id": "s", "fields": [{"id": "f", "type": "int"} | field]}]}  # fmt: skip
    values = [] if value is None else [
        {"node_id": "n1", "source_id": "s", "field_id": "f", "value": value, "updated": 1.0}
    ]  # fmt: skip
    return {"format": "edgeiot-backup", "version": 1, "gateway_id": "gw", "nodes": [node],
            "values": values}  # fmt: skip


@pytest.mark.parametrize(
    "backup",
    [
        _backup(min=HUGE),
        _backup(type="float", max=-HUGE),
        _backup(value=2**64),
        _backup(type="float", value=HUGE),
        _backup() | {"created": HUGE},
        _backup() | {"settings": {"x": HUGE}},
    ],
)
async def test_huge_numbers_in_a_backup_are_invalid_backup(
    gateway: Gateway, api: ApiClient, backup: dict[str, Any]
) -> None:
    """Over the WebSocket and REST; nothing is restored."""
    assert (await api.command("restore", backup=backup))["error_code"] == "invalid_backup"
    status, body = await api.rest("POST", "/api/v1/restore", backup)
    assert (status, body["error_code"]) == (400, "invalid_backup")
    assert gateway.processor.nodes == {}


async def test_non_utf8_authorization_is_401(gateway: Gateway) -> None:
    """Header bytes that are not UTF-8 are a wrong token, not a server error."""
    answer = await _raw_http(
        _port(gateway),
        b"GET /api/v1/info HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer \xff\xfe\x80\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert gateway.api is not None
    assert gateway.api.errors == {"invalid_auth": 1}


async def test_rejections_are_logged_at_a_bounded_rate(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Each rejection is counted; only the first LOG_FIRST of a code are logged, then 1/1000."""
    client = ApiClient(_port(gateway), "wrong-token-" * 4)
    try:
        with caplog.at_level(logging.INFO, "edgeiot_gateway.api"):
            for _ in range(LOG_FIRST + 40):
                status, _ = await client.rest("GET", "/api/v1/info")
                assert status == 401
    finally:
        await client.close()
    assert gateway.api is not None
    assert gateway.api.errors == {"invalid_auth": LOG_FIRST + 40}
    logged = [r for r in caplog.records if "missing or wrong token" in r.getMessage()]
    assert len(logged) == LOG_FIRST


async def test_malformed_http_is_logged_at_a_bounded_rate(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests aiohttp cannot parse are answered 400 and counted; few are logged."""
    with caplog.at_level(logging.INFO):
        for _ in range(LOG_FIRST + 40):
            answer = await _raw_http(_port(gateway), b"GET / HTTP/1.1\r\nBad header\r\n\r\n")
            assert answer.startswith(b"HTTP/1.0 400"), answer[:100]
    assert gateway.api is not None
    assert gateway.api.errors == {"http_error": LOG_FIRST + 40}
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) == LOG_FIRST


async def test_slow_request_head_is_cut_off(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A client sending its request head byte by byte (slowloris) is disconnected."""
    config = gateway_config(tmp_path / "gw", mosquitto, api={"header_timeout": 1})
    gateway = await start_gateway(config)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", _port(gateway))
        writer.write(b"GET /health HTTP/1.1\r\nHost: gw\r\n")
        deadline = time.monotonic() + 10
        closed = False
        while not closed and time.monotonic() < deadline:
            writer.write(b"X-Slow: a\r\n")
            try:
                await writer.drain()
                closed = await asyncio.wait_for(reader.read(1), 0.2) == b""
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
        writer.close()
        assert closed, "the gateway kept a connection whose request head never ended"
        answer = await _raw_http(_port(gateway), b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]  # a normal request still works
    finally:
        await gateway.stop()


def _sized(size: int, prefix: str, suffix: str) -> str:
    text = prefix + "x" * (size - len(prefix) - len(suffix)) + suffix
    assert len(text) == size
    return text


async def test_size_limit_is_on_larger_messages(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """`api.max_message_bytes` refuses what is larger; a message of exactly that size is taken."""
    config = gateway_config(tmp_path / "gw", mosquitto, api={"max_message_bytes": 4096})
    gateway = await start_gateway(config)
    api = await ApiClient(_port(gateway), gateway.token).connect()
    try:
        for size, status in [(4096, 404), (4097, 413)]:
            body = _sized(size, '{"name": "', '"}')
            async with api.session.patch(f"{api.base}/api/v1/nodes/x", data=body) as response:
                assert response.status == status
        exact = _sized(4096, '{"message_id": 1, "command": "get_state", "pad": "', '"}')
        assert (await api.send_raw(exact))["error_code"] == "invalid_message"  # read, answered
        assert api.ws is not None
        await api.ws.send_str(exact + " ")
        closing = await api.ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1009)
    finally:
        await api.close()
        await gateway.stop()
