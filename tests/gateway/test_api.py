"""The gateway API: token, limits, bad calls, node management, backup and restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeiot_gateway import __version__
from edgeiot_gateway.api import page
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.store import Store

from ..servers import Mosquitto
from .harness import ApiClient, NodeSimulator, gateway_config, start_gateway, wait_for


def _port(gateway: Gateway) -> int:
    assert gateway.api is not None
    assert gateway.api.port is not None
    return gateway.api.port


@pytest.mark.parametrize("token", [None, "wrong-token-" * 4, ""])
async def test_missing_or_wrong_token_is_refused(gateway: Gateway, token: str | None) -> None:
    """Every endpoint but /health answers 401, and the WebSocket never opens."""
    client = ApiClient(_port(gateway), token)
    try:
        for method, path in [("GET", "/api/v1/nodes"), ("GET", "/api/v1/backup"),
                             ("POST", "/api/v1/restore"), ("GET", "/api/v1/info")]:  # fmt: skip
            status, body = await client.rest(method, path)
            assert (status, body["error_code"]) == (401, "invalid_auth")
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await client.connect()
        assert err.value.status == 401
        status, body = await client.rest("GET", "/health")
        assert (status, body["status"]) == (200, "ok")
    finally:
        await client.close()
    assert gateway.api is not None
    assert gateway.api.errors == {"invalid_auth": 5}


async def test_token_is_long_random_and_private(gateway: Gateway) -> None:
    """The token is generated on first start and stored readable by the owner only."""
    path = gateway.config.data_dir / "api_token"
    assert path.read_text().strip() == gateway.token
    assert len(gateway.token) >= 40
    assert path.stat().st_mode & 0o077 == 0


async def test_bad_websocket_messages_get_structured_errors(api: ApiClient) -> None:
    """Garbage, unknown commands and bad arguments are answered; the socket stays usable."""
    assert (await api.send_raw("{nope"))["error_code"] == "invalid_message"
    assert (await api.send_raw("[1, 2]"))["error_code"] == "invalid_message"
    no_command = await api.send_raw('{"message_id": "x"}')
    assert (no_command["message_id"], no_command["error_code"]) == ("x", "invalid_message")
    assert (await api.command("fly"))["error_code"] == "unknown_command"
    assert (await api.command("rename_node", node_id="bad id", name="x"))[
        "error_code"
    ] == "invalid_message"
    assert (await api.command("rename_node", node_id="ghost", name="x"))[
        "error_code"
    ] == "not_found"
    assert (await api.command("set_api_schema", schema_version=99))[
        "error_code"
    ] == "schema_incompatible"
    assert (await api.command("remove_node", node_id="ghost"))["error_code"] == "not_found"
    assert (await api.command("get_state"))["success"]
    diagnostics = (await api.command("get_diagnostics"))["result"]
    assert diagnostics["api_errors"] == {
        "invalid_message": 4, "unknown_command": 1, "not_found": 2, "schema_incompatible": 1,
    }  # fmt: skip


async def test_message_size_and_connection_limits(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Oversized frames close the socket; connections beyond the limit get 503."""
    config = gateway_config(
        tmp_path / "gw", mosquitto, api={"max_connections": 2, "max_message_bytes": 4096}
    )
    gateway = await start_gateway(config)
    clients = [ApiClient(_port(gateway), gateway.token) for _ in range(3)]
    try:
        await clients[0].connect()
        await clients[1].connect()
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await clients[2].connect()
        assert err.value.status == 503

        assert clients[0].ws is not None
        await clients[0].ws.send_str('{"message_id": 1, "command": "get_state", "pad": "'
                                     + "x" * 8192 + '"}')  # fmt: skip
        closing = await clients[0].ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                aiohttp.WSMsgType.ERROR)  # fmt: skip
        await wait_for(lambda: gateway.api is not None and gateway.api.client_count == 1)
        status, body = await clients[1].rest("POST", "/api/v1/restore", {"pad": "x" * 8192})
        assert (status, body["error_code"]) == (413, "message_too_large")
    finally:
        for client in clients:
            await client.close()
        await gateway.stop()


async def test_rename_and_remove_node(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """Rename and remove over both APIs emit events; a removed node returns when it announces."""
    await api.command("start_listening")
    node.announce()
    await api.wait_event(lambda e: e["event"] == "node added")

    renamed = await api.command("rename_node", node_id="greenhouse-1", name="Glasshouse")
    assert renamed["result"]["node"]["name_by_user"] == "Glasshouse"
    updated = await api.wait_event(lambda e: e["event"] == "node updated")
    assert updated["node"]["name_by_user"] == "Glasshouse"
    status, body = await api.rest("PATCH", "/api/v1/nodes/greenhouse-1", {"name": None})
    assert (status, body["name_by_user"], body["name"]) == (200, None, "Greenhouse")
    status, body = await api.rest("PATCH", "/api/v1/nodes/greenhouse-1", {"name": 5})
    assert (status, body["error_code"]) == (400, "invalid_message")

    status, _ = await api.rest("DELETE", "/api/v1/nodes/greenhouse-1")
    assert status == 200
    removed = await api.wait_event(lambda e: e["event"] == "node removed")
    assert removed["node_id"] == "greenhouse-1"
    status, body = await api.rest("GET", "/api/v1/nodes/greenhouse-1")
    assert (status, body["error_code"]) == (404, "not_found")
    assert gateway.api is not None
    assert gateway.api.errors == {"invalid_message": 1, "not_found": 1}  # REST counts too

    node.announce()
    assert (await api.wait_event(lambda e: e["event"] == "node added"))["node"][
        "name"
    ] == "Greenhouse"


async def test_backup_and_restore(gateway: Gateway, api: ApiClient, node: NodeSimulator) -> None:
    """A backup restores nodes, names and values; a bad backup is refused untouched."""
    node.announce()
    node.state("climate", temperature=18.5)
    await wait_for(
        lambda: (
            (n := gateway.processor.nodes.get("greenhouse-1"))
            and n.field("climate", "temperature").value == 18.5
        )
    )
    await api.command("rename_node", node_id="greenhouse-1", name="Glasshouse")
    backup = (await api.command("backup"))["result"]["backup"]
    assert backup["format"] == "edgeiot-backup"
    status, rest_backup = await api.rest("GET", "/api/v1/backup")
    assert status == 200
    assert rest_backup["nodes"] == backup["nodes"]

    await api.command("remove_node", node_id="greenhouse-1")
    assert gateway.processor.nodes == {}

    bad = await api.command("restore", backup={"format": "edgeiot-backup", "version": 7})
    assert bad["error_code"] == "invalid_backup"
    status, body = await api.rest("POST", "/api/v1/restore", {"nodes": "x"})
    assert (status, body["error_code"]) == (400, "invalid_backup")
    wet = {"node_id": "greenhouse-1", "source_id": "climate", "field_id": "humidity",
           "value": "wet", "updated": 1.0}  # fmt: skip
    wrong_value = backup | {"values": [wet]}
    assert (await api.command("restore", backup=wrong_value))["error_code"] == "invalid_backup"
    assert gateway.processor.nodes == {}

    await api.command("start_listening")
    result = await api.command("restore", backup=backup)
    assert result["result"] == {"nodes": 1, "automations": 0}
    added = await api.wait_event(lambda e: e["event"] == "node added")
    assert added["node"]["name_by_user"] == "Glasshouse"
    restored = gateway.processor.nodes["greenhouse-1"]
    assert restored.field("climate", "temperature").value == 18.5

    # The restore is in the store too: a restart would show the same.
    await gateway.store.flush()
    reopened = Store(gateway.store.path)
    try:
        assert [n.display_name for n in await reopened.open()] == ["Glasshouse"]
    finally:
        await reopened.close()


async def test_overlong_name_is_refused(
    gateway: Gateway, api: ApiClient, node: NodeSimulator
) -> None:
    """A name the store and backups could not hold is refused up front."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes)
    result = await api.command("rename_node", node_id="greenhouse-1", name="n" * 129)
    assert result["error_code"] == "invalid_value"
    assert (await api.command("rename_node", node_id="greenhouse-1", name="n" * 128))["success"]


def _backup_of(nodes: list[dict[str, Any]], values: list[dict[str, Any]]) -> dict[str, Any]:
    return {"format": "edgeiot-backup", "version": 1, "gateway_id": "gw", "nodes": nodes,
            "values": values}  # fmt: skip


def _node(node_id: str) -> dict[str, Any]:
    fields = [{"id": "temperature", "type": "float"}]
    return {"id": node_id, "provider": "mqtt", "sources": [{"id": "climate", "fields": fields}]}


def _value(node_id: str, field_id: str = "temperature", value: float = 20.5) -> dict[str, Any]:
    return {"node_id": node_id, "source_id": "climate", "field_id": field_id, "value": value,
            "updated": 1.0}  # fmt: skip


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        (_backup_of([_node("a"), _node("b"), _node("a")], []),
         "nodes[2]: duplicate node id 'a'"),
        (_backup_of([_node("a")], [_value("a"), _value("a", value=21.0)]),
         "values[1]: a/climate/temperature given twice"),
        (_backup_of([_node("a")], [_value("a", field_id="humidity")]),
         "values[0]: no field a/climate/humidity"),
        (_backup_of([_node("a")], [_value("ghost")]),
         "values[0]: no field ghost/climate/temperature"),
    ],
)  # fmt: skip
async def test_ambiguous_backups_are_refused(
    gateway: Gateway, api: ApiClient, backup: dict[str, Any], message: str
) -> None:
    """A restore replaces the state exactly: duplicates and values without a field are refused."""
    result = await api.command("restore", backup=backup)
    assert (result["error_code"], result["message"]) == ("invalid_backup", message)
    assert gateway.processor.nodes == {}
    assert (await api.command("restore", backup=_backup_of([_node("a")], [_value("a")])))["success"]


async def test_public_page(gateway: Gateway, node: NodeSimulator) -> None:
    """`/` needs no token: a static HTML page about the gateway and its API."""
    node.announce()
    await wait_for(lambda: "greenhouse-1" in gateway.processor.nodes)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{_port(gateway)}/") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
        html = await response.text()
    for text in ["test-gw", __version__, "1 nodes", "/api/v1/ws", page.DOCS_URL, "api_token"]:
        assert text in html


def test_public_page_escapes_what_it_shows() -> None:
    html = page.render('<script>alert("x")</script>', 3)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
