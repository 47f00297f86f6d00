"""A provider's connection state reaches API clients at once, in a `gateway status` event."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..servers import Mosquitto
from .harness import ApiClient, gateway_config, start_gateway


def _mqtt(event: dict[str, Any]) -> dict[str, Any]:
    providers: list[dict[str, Any]] = event["status"]["providers"]
    assert [p["name"] for p in providers] == ["mqtt"]
    return providers[0]


async def test_provider_state_is_pushed_without_waiting_for_the_tick(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Broker stopped → `connected` false with an error within seconds; started → true again.

    The status tick is an hour here, so only the change itself can send these events.
    """
    config = gateway_config(tmp_path / "gw", mosquitto)
    config["api"]["status_interval"] = 3600
    gateway = await start_gateway(config)
    assert gateway.api is not None
    assert gateway.api.port is not None
    client = await ApiClient(gateway.api.port, gateway.token).connect()
    try:
        await client.command("set_api_schema", schema_version=1)
        state = (await client.command("start_listening"))["result"]["state"]
        provider = {"name": "mqtt", "type": "mqtt", "connected": True, "error": None}
        assert state["gateway"]["providers"] == [provider]
        assert state["status"]["providers"] == [provider]

        started = time.monotonic()
        mosquitto.stop()
        down = await client.wait_event(
            lambda e: e["event"] == "gateway status" and not _mqtt(e)["connected"]
        )
        assert time.monotonic() - started < 5
        assert _mqtt(down)["error"]  # what the provider saw: a lost connection
        mosquitto.start()
        up = await client.wait_event(
            lambda e: e["event"] == "gateway status" and _mqtt(e)["connected"], timeout=20
        )
        assert _mqtt(up) == provider
        info = (await client.command("get_state"))["result"]["gateway"]["providers"]
        assert info == [provider]
    finally:
        await client.close()
        await gateway.stop()
