"""A gateway loop that keeps failing raises a repair issue after the grace period; it goes
when the loop works again (a real gateway whose MySensors link has no gateway to reach)."""

from __future__ import annotations

from pathlib import Path

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import problems
from custom_components.edgeiot.const import DOMAIN

from ..gateway.test_mysensors import TcpSimulator
from ..servers import Mosquitto, free_port
from .conftest import GATEWAY_ID, GatewayProcess
from .helpers import wait_until

LOOP = "mysensors mysensors link"


@pytest.mark.usefixtures("enable_custom_integrations", "socket_enabled")
async def test_failing_loop_raises_and_clears_a_repair_issue(
    hass: HomeAssistant,
    tmp_path: Path,
    mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Failing past the grace: an issue naming the loop and its error; working: no issue."""
    monkeypatch.setattr(problems, "PROBLEM_GRACE", 1.5)
    port = free_port()
    gateway = GatewayProcess(
        tmp_path / "gw", mosquitto,
        extra=f'[[providers]]\ntype = "mysensors"\ntransport = "tcp"\nhost = "127.0.0.1"\n'
        f'port = {port}\nstate_file = "{tmp_path / "ms.json"}"\n'
        "reconnect_interval = 0.05\nreconnect_max_interval = 0.2\n",
    )  # fmt: skip
    gateway.start(wait_connected=False)
    entry = MockConfigEntry(domain=DOMAIN, unique_id=GATEWAY_ID, data=gateway.entry_data)
    entry.add_to_hass(hass)
    sim = TcpSimulator()
    issues = ir.async_get(hass)
    issue_id = f"loop_failing_{entry.entry_id}_{LOOP}"
    try:
        assert await hass.config_entries.async_setup(entry.entry_id)
        hub = entry.runtime_data
        await wait_until(hass, lambda: [p["loop"] for p in hub.status["problems"]] == [LOOP])
        assert issues.async_get_issue(DOMAIN, issue_id) is None  # within the grace period
        issue = await wait_until(hass, lambda: issues.async_get_issue(DOMAIN, issue_id))
        assert issue.translation_key == "loop_failing"
        assert issue.severity is ir.IssueSeverity.ERROR
        placeholders = issue.translation_placeholders or {}
        assert placeholders["loop"] == LOOP
        assert placeholders["gateway"] == GATEWAY_ID
        assert "ConnectionRefusedError" in placeholders["error"]

        assert await hass.config_entries.async_unload(entry.entry_id)
        assert issues.async_get_issue(DOMAIN, issue_id) is None  # raised again if still true
        assert await hass.config_entries.async_setup(entry.entry_id)
        hub = entry.runtime_data
        await wait_until(hass, lambda: issues.async_get_issue(DOMAIN, issue_id))

        await sim.start(port)  # the link's gateway is reachable now: the loop recovers
        await wait_until(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is None)
        assert hub.status["problems"] == []
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await sim.close()
        gateway.stop()
