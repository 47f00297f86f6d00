"""Tasks and schedules as switches and sensors of the gateway device, against a real gateway
process: live as they are set, run and deleted, and after a time HA could not reach it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.const import CONF_PORT, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import hub as hub_module
from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import ApiClient
from ..servers import LOOPBACK
from .conftest import GATEWAY_ID, GatewayProcess
from .helpers import state_of, wait_until

NOTIFY = [{"handler": "notify", "params": {"message": "ran"}}]
VENT: dict[str, Any] = {
    "id": "vent", "kind": "task", "name": "Vent",
    "trigger": {"type": "field", "node": "greenhouse-1", "source": "climate",
                "field": "temperature"},
    "actions": NOTIFY,
}  # fmt: skip
HOURLY: dict[str, Any] = {
    "id": "hourly", "kind": "schedule", "name": "Hourly", "schedule": {"every": 3600},
    "actions": NOTIFY,
}  # fmt: skip


def _entity(hass: HomeAssistant, automation_id: str, key: str) -> str | None:
    platform = "switch" if key == "enabled" else "sensor"
    uid = f"{GATEWAY_ID}.gateway.automation:{automation_id}:{key}"
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, uid)


async def _set(hass: HomeAssistant, definition: dict[str, Any]) -> None:
    """Create or replace, also with another kind, as any client of the gateway may."""
    [entry] = hass.config_entries.async_loaded_entries(DOMAIN)
    await entry.runtime_data.async_command("automation_set", definition=definition)


def _time(hass: HomeAssistant, entity_id: str) -> datetime | None:
    return dt_util.parse_datetime(state_of(hass, entity_id) or "")


async def test_entities_follow_the_automations(
    hass: HomeAssistant, integration: MockConfigEntry
) -> None:
    """A task and a schedule get a switch and sensors; runs, toggles, a change of kind and
    deletion reach them live; forwards get none."""
    await _set(hass, VENT)
    await _set(hass, HOURLY)
    await _set(hass, {"id": "copy", "kind": "forward", "from": "greenhouse-1.climate.temperature",
                      "to": ["greenhouse-1.climate.humidity"]})  # fmt: skip
    switch = await wait_until(hass, lambda: _entity(hass, "vent", "enabled"))
    hourly_next = await wait_until(hass, lambda: _entity(hass, "hourly", "next_run"))
    assert _entity(hass, "vent", "next_run") is None  # tasks have no next run
    assert _entity(hass, "copy", "enabled") is None
    registry = er.async_get(hass)
    assert registry.async_get(hourly_next).entity_category is EntityCategory.DIAGNOSTIC
    assert registry.async_get(switch).entity_category is None

    state = hass.states.get(switch)
    assert state.state == "on"
    assert state.attributes["friendly_name"].endswith("Vent")
    assert state.attributes["kind"] == "task"
    planned = _time(hass, hourly_next)
    assert planned is not None
    assert planned.timestamp() % 3600 == 0
    assert planned > dt_util.utcnow()
    last_run = _entity(hass, "vent", "last_run")
    result = _entity(hass, "vent", "last_result")
    assert state_of(hass, last_run) == "unknown"
    assert state_of(hass, result) == "unknown"

    before = dt_util.utcnow()
    await hass.services.async_call(DOMAIN, "run_task", {"id": "vent"}, blocking=True)
    await wait_until(hass, lambda: state_of(hass, result) == "ok")
    assert _time(hass, last_run) >= before - timedelta(seconds=1)
    attributes = hass.states.get(result).attributes
    assert attributes["error"] is None
    assert attributes["trigger"] == "manual"

    await hass.services.async_call("switch", "turn_off", {"entity_id": switch}, blocking=True)
    assert state_of(hass, switch) == "off"  # from the command's answer, at once
    listing = await hass.services.async_call(
        DOMAIN, "list_automations", {}, blocking=True, return_response=True
    )
    assert {a["id"]: a["enabled"] for a in listing["automations"]}["vent"] is False
    await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
    assert state_of(hass, switch) == "on"
    await _set(hass, {**VENT, "name": "Window"})
    await wait_until(hass, lambda: hass.states.get(switch).attributes["friendly_name"]
                     .endswith("Window"))  # fmt: skip

    # A schedule that becomes a task loses its next-run sensor; a forward loses them all.
    await _set(hass, {**VENT, "id": "hourly"})
    await wait_until(hass, lambda: _entity(hass, "hourly", "next_run") is None)
    assert _entity(hass, "hourly", "enabled") is not None
    await _set(hass, {"id": "hourly", "kind": "forward", "from": "greenhouse-1.climate.humidity",
                      "to": ["greenhouse-1.climate.temperature"]})  # fmt: skip
    await wait_until(hass, lambda: _entity(hass, "hourly", "enabled") is None)

    await hass.services.async_call(DOMAIN, "delete_task", {"id": "vent"}, blocking=True)
    await wait_until(hass, lambda: _entity(hass, "vent", "enabled") is None)
    assert _entity(hass, "vent", "last_run") is None
    assert hass.states.get(switch) is None


class CuttableProxy:
    """A TCP proxy to the gateway's API that can be cut (connections closed and refused)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open = True
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)

    def cut(self) -> None:
        self.open = False
        for writer in list(self._writers):
            writer.close()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()


@pytest.fixture
async def proxy(gateway_process: GatewayProcess) -> AsyncIterator[CuttableProxy]:
    server = CuttableProxy(gateway_process.port)
    await server.start()
    yield server
    await server.stop()


async def test_a_run_while_disconnected_shows_after_reconnecting(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    gateway_process: GatewayProcess,
    proxy: CuttableProxy,
) -> None:
    """A schedule fires while HA cannot reach the gateway; the state dump of the reconnect
    brings its run (last run, result, no next run) to the sensors."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id=GATEWAY_ID,
        data={**gateway_process.entry_data, CONF_PORT: proxy.port},
    )  # fmt: skip
    entry.add_to_hass(hass)
    with patch.object(hub_module, "RECONNECT_MIN", 0.05):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        hub = entry.runtime_data
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
        once = {"id": "once", "kind": "schedule", "name": "Once",
                "schedule": {"once": when.isoformat()}, "actions": NOTIFY}  # fmt: skip
        await _set(hass, once)
        next_run = await wait_until(hass, lambda: _entity(hass, "once", "next_run"))
        last_run = _entity(hass, "once", "last_run")
        result = _entity(hass, "once", "last_result")
        assert _time(hass, next_run) == when
        assert state_of(hass, last_run) == "unknown"

        await _set(hass, VENT)
        vent = await wait_until(hass, lambda: _entity(hass, "vent", "enabled"))

        proxy.cut()
        assert time.time() < when.timestamp(), "cut too late: the schedule ran already"
        await wait_until(hass, lambda: not hub.connected)
        assert state_of(hass, last_run) == "unavailable"
        api = await ApiClient(gateway_process.port, gateway_process.token).connect()
        try:
            await api.command("automation_delete", id="vent")  # gone while HA is away
            deadline = time.monotonic() + 15
            while not (await api.command("automation_history", id="once"))["result"]["runs"]:
                assert time.monotonic() < deadline, "the schedule never ran"
                await asyncio.sleep(0.1)
            assert not hub.connected  # the run happened while HA was cut off
            proxy.open = True
            await wait_until(hass, lambda: hub.connected)
            await hass.async_block_till_done()
            assert _time(hass, last_run) == when
            assert state_of(hass, result) == "ok"
            assert state_of(hass, next_run) == "unknown"  # a `once` schedule has ended
            assert er.async_get(hass).async_get(vent) is None

            # Deleted while the entry is unloaded: its registry entries go at the next setup.
            assert await hass.config_entries.async_unload(entry.entry_id)
            await api.command("automation_delete", id="once")
        finally:
            await api.close()
        assert er.async_get(hass).async_get(last_run) is not None
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert er.async_get(hass).async_get(last_run) is None
        assert _entity(hass, "once", "enabled") is None
        assert await hass.config_entries.async_unload(entry.entry_id)
