"""The integration's WebSocket client against misbehaving servers and a real gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from unittest.mock import patch

import aiohttp
import pytest
from aiohttp import web

from custom_components.edgeiot import client as client_module
from custom_components.edgeiot.client import (
    CannotConnect,
    ConnectionClosed,
    EdgeIoTClient,
    FailedCommand,
    InvalidAuth,
)

from ..servers import LOOPBACK, free_port
from .conftest import GatewayProcess

type Behaviour = Callable[[web.WebSocketResponse], Awaitable[None]]


async def _serve(behaviour: Behaviour | int) -> tuple[web.AppRunner, int]:
    async def handler(request: web.Request) -> web.StreamResponse:
        if isinstance(behaviour, int):
            return web.Response(status=behaviour)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await behaviour(ws)
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    return runner, port


VERSION = {"type": "version", "gateway_id": "fake", "server_version": "0",
           "min_schema_version": 1, "max_schema_version": 1}  # fmt: skip


async def _hold(ws: web.WebSocketResponse) -> None:
    await ws.send_json(VERSION)
    async for _ in ws:
        pass


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        (500, "handshake failed: 500"),
        (401, None),
        ("not-version", "unsupported gateway API"),
        ("future-schema", "unsupported gateway API"),
        ("garbage", "bad handshake"),
        ("silent", "bad handshake"),
    ],
)
async def test_handshake_failures(
    socket_enabled: None, behaviour: str | int, error: str | None
) -> None:
    """Every broken handshake is CannotConnect (InvalidAuth for 401), never a crash."""

    async def respond(ws: web.WebSocketResponse) -> None:
        match behaviour:
            case "not-version":
                await ws.send_json({"type": "result"})
            case "future-schema":
                await ws.send_json(VERSION | {"min_schema_version": 5, "max_schema_version": 6})
            case "garbage":
                await ws.send_str("{not json")
            case "silent":
                async for _ in ws:
                    pass

    runner, port = await _serve(behaviour if isinstance(behaviour, int) else respond)
    async with aiohttp.ClientSession() as session:
        client = EdgeIoTClient(session, LOOPBACK, port, "token")
        with patch.object(client_module, "CONNECT_TIMEOUT", 0.3):
            if error is None:
                with pytest.raises(InvalidAuth):
                    await client.connect()
            else:
                with pytest.raises(CannotConnect, match=error):
                    await client.connect()
        assert not client.connected
    await runner.cleanup()


async def test_unreachable(socket_enabled: None) -> None:
    """Nothing listening: CannotConnect."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(CannotConnect):
            await EdgeIoTClient(session, LOOPBACK, free_port(), "t").connect()


async def test_silent_gateway_is_declared_dead(socket_enabled: None) -> None:
    """A connection with no traffic (not even pings) for IDLE_TIMEOUT ends listen()."""
    runner, port = await _serve(_hold)
    async with aiohttp.ClientSession() as session:
        client = EdgeIoTClient(session, LOOPBACK, port, "token")
        await client.connect()
        with (
            patch.object(client_module, "IDLE_TIMEOUT", 0.3),
            pytest.raises(ConnectionClosed, match="silent"),
        ):
            await client.listen(lambda _event: None)
        await client.disconnect()
    await runner.cleanup()


async def test_not_connected(socket_enabled: None) -> None:
    """Commands and listen without a connection raise ConnectionClosed."""
    async with aiohttp.ClientSession() as session:
        client = EdgeIoTClient(session, LOOPBACK, free_port(), "t")
        with pytest.raises(ConnectionClosed):
            await client.command("get_state")
        with pytest.raises(ConnectionClosed):
            await client.call("get_state")
        with pytest.raises(ConnectionClosed):
            await client.listen(lambda _event: None)


async def test_pending_command_fails_when_connection_drops(
    gateway_process: GatewayProcess,
) -> None:
    """A command waiting for its result gets ConnectionClosed when the socket drops."""
    async with aiohttp.ClientSession() as session:
        client = EdgeIoTClient(
            session, gateway_process.host, gateway_process.port, gateway_process.token
        )
        await client.connect()
        with pytest.raises(FailedCommand) as err:
            await client.call("no_such_command")
        assert err.value.code == "unknown_command"
        listener = asyncio.create_task(client.listen(lambda _event: None))
        command = asyncio.create_task(client.command("backup"))
        await asyncio.sleep(0)
        gateway_process.stop()
        results = await asyncio.gather(listener, command, return_exceptions=True)
        assert all(isinstance(r, (ConnectionClosed, dict)) for r in results), results
        assert isinstance(results[0], ConnectionClosed)
        await client.disconnect()
