"""Entry setup failures, unload, diagnostics and translations."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

import pytest
import yaml
from aiohttp import web
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
    get_diagnostics_for_device,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.edgeiot import hub as hub_module
from custom_components.edgeiot import limit as limit_module
from custom_components.edgeiot.const import DOMAIN

from ..servers import free_port
from .conftest import GatewayProcess
from .helpers import state_of, wait_until

COMPONENT = Path(__file__).parents[2] / "custom_components" / "edgeiot"


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def test_unreachable_gateway_retries(
    hass: HomeAssistant, enable_custom_integrations: None, config_entry: MockConfigEntry
) -> None:
    """No gateway at the address: setup is retried later (not ready)."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, data=config_entry.data | {CONF_PORT: free_port()}
    )
    await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.SETUP_RETRY


async def test_wrong_token_starts_reauth(
    hass: HomeAssistant, enable_custom_integrations: None, config_entry: MockConfigEntry
) -> None:
    """A refused token fails setup with a reauth flow."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(config_entry, data=config_entry.data | {CONF_TOKEN: "x"})
    await hass.config_entries.async_setup(config_entry.entry_id)
    assert config_entry.state is ConfigEntryState.SETUP_ERROR
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert [f["context"]["source"] for f in flows] == ["reauth"]


async def test_other_gateway_at_address_is_an_error(
    hass: HomeAssistant, enable_custom_integrations: None, gateway_process: GatewayProcess
) -> None:
    """An entry for gateway A never binds to gateway B found at A's old address: retried later,
    with a repair issue saying what answers there, and no device of B is created."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id="someone-else", data=gateway_process.entry_data
    )
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"wrong_gateway_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["found"] == "ha-test-gw"
    assert dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id) == []


async def test_unload(hass: HomeAssistant, integration: MockConfigEntry) -> None:
    """Unloading stops the listener and closes the connection."""
    hub = integration.runtime_data
    assert hub.client.connected
    assert await hass.config_entries.async_unload(integration.entry_id)
    await hass.async_block_till_done()
    assert integration.state is ConfigEntryState.NOT_LOADED
    assert not hub.client.connected


async def test_diagnostics(
    hass: HomeAssistant, integration: MockConfigEntry, hass_client: ClientSessionGenerator
) -> None:
    """Entry and device diagnostics carry the gateway state, never the token."""
    await wait_until(hass, lambda: state_of(hass, "sensor.lab_probe_ph") == "7.2")
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, integration)
    assert diagnostics["entry"]["data"][CONF_TOKEN] == "**REDACTED**"
    assert integration.data[CONF_TOKEN] not in json.dumps(diagnostics)
    assert diagnostics["connected"] is True
    assert {n["id"] for n in diagnostics["nodes"]} == {"greenhouse-1", "lab-3"}
    assert diagnostics["gateway_diagnostics"]["processed"] > 0

    devices = dr.async_get(hass)
    lab = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw.lab-3"), integration.entry_id
    )
    gateway = devices.async_get_device_by_identifier(
        ("edgeiot", "ha-test-gw"), integration.entry_id
    )
    assert lab is not None
    assert gateway is not None
    node = await get_diagnostics_for_device(hass, hass_client, integration, lab)
    assert node["node"]["name"] == "Lab"
    gw = await get_diagnostics_for_device(hass, hass_client, integration, gateway)
    assert gw["gateway"]["gateway_id"] == "ha-test-gw"


def test_translations_are_generated_from_strings() -> None:
    """translations/en.json is script/translations' output for the current strings.json."""
    strings = json.loads((COMPONENT / "strings.json").read_text())
    english = json.loads((COMPONENT / "translations" / "en.json").read_text())

    def same_shape(a: object, b: object, path: str) -> None:
        if isinstance(a, dict):
            assert isinstance(b, dict), path
            assert a.keys() == b.keys(), path
            for key in a:
                same_shape(a[key], b[key], f"{path}.{key}")
        elif isinstance(a, str) and not a.startswith("[%key:"):
            assert a == b, path

    same_shape(strings, english, "")
    services = (COMPONENT / "services.yaml").read_text()
    for service in strings["services"]:
        assert f"\n{service}:" in f"\n{services}"


async def test_entity_limit_raises_a_repair_issue(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    config_entry: MockConfigEntry,
    node: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past HA's limit, entities are created disabled and a repair issue counts them."""
    monkeypatch.setattr(limit_module, "ENTITY_LIMIT", limit_module.GATEWAY_RESERVE + 5)
    await _setup(hass, config_entry)
    issue_id = f"entity_limit_{config_entry.entry_id}"
    # The node's entities (and the issue) come once the node's announce has arrived.
    await wait_until(hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id))
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders is not None
    limited = [
        e
        for e in er.async_entries_for_config_entry(er.async_get(hass), config_entry.entry_id)
        if e.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        and not e.unique_id.endswith((".rssi", ".last_seen"))
    ]
    assert int(issue.translation_placeholders["count"]) == len(limited) > 0
    assert issue.translation_placeholders["limit"] == str(limit_module.GATEWAY_RESERVE + 5)


async def test_malformed_event_does_not_end_the_listener(
    hass: HomeAssistant, enable_custom_integrations: None, socket_enabled: None
) -> None:
    """An event the integration cannot apply is logged; the hub reconnects and goes on."""
    connections: list[int] = []

    async def gateway(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connections.append(1)
        await ws.send_json({"type": "version", "gateway_id": "fake", "server_version": "0",
                            "min_schema_version": 1, "max_schema_version": 1})  # fmt: skip
        state = {"gateway": {"gateway_id": "fake"}, "status": {}, "nodes": []}
        async for message in ws:
            command = json.loads(message.data)
            result = {"state": state} if command["command"] == "start_listening" else {}
            await ws.send_json({"type": "result", "message_id": command["message_id"],
                                "success": True, "result": result})  # fmt: skip
            if command["command"] == "start_listening" and len(connections) == 1:
                await ws.send_json({"type": "event", "event": {"event": "node added"}})
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/ws", gateway)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    data = {CONF_HOST: "127.0.0.1", CONF_PORT: port, CONF_TOKEN: "t"}
    entry = MockConfigEntry(domain=DOMAIN, unique_id="fake", data=data)
    try:
        with patch.object(hub_module, "RECONNECT_MIN", 0.05):
            await _setup(hass, entry)
            await wait_until(hass, lambda: len(connections) == 2 and entry.runtime_data.connected)
        assert entry.state is ConfigEntryState.LOADED
    finally:
        await hass.config_entries.async_unload(entry.entry_id)
        await runner.cleanup()


async def test_registry_ids_of_older_versions_are_migrated(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    gateway_process: GatewayProcess,
    node: object,
) -> None:
    """1.1 entries: `gw-node` device identifiers and `.events`/`action.` unique ids move to the
    collision-free forms, keeping the device, its entities' ids and the user's names."""
    entry = MockConfigEntry(
        domain=DOMAIN, unique_id="ha-test-gw", data=gateway_process.entry_data, minor_version=1
    )
    entry.add_to_hass(hass)
    devices, entities = dr.async_get(hass), er.async_get(hass)
    old = devices.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, "ha-test-gw-greenhouse-1")}
    )
    devices.async_update_device(old.id, name_by_user="My greenhouse")
    event = entities.async_get_or_create(
        "event", DOMAIN, "ha-test-gw.greenhouse-1.button.events",
        config_entry=entry, device_id=old.id, suggested_object_id="old_button",
    )  # fmt: skip
    button = entities.async_get_or_create(
        "button", DOMAIN, "ha-test-gw.greenhouse-1.action.reboot",
        config_entry=entry, device_id=old.id, suggested_object_id="old_reboot",
    )  # fmt: skip
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.minor_version == 2
    device = devices.async_get(old.id)
    assert device is not None
    assert device.identifiers == {(DOMAIN, "ha-test-gw.greenhouse-1")}
    assert device.name_by_user == "My greenhouse"
    moved_event = entities.async_get(event.entity_id)
    moved_button = entities.async_get(button.entity_id)
    assert moved_event is not None
    assert moved_button is not None
    assert moved_event.unique_id == "ha-test-gw.greenhouse-1.events:button"
    assert moved_button.unique_id == "ha-test-gw.greenhouse-1.action:reboot"
    await wait_until(hass, lambda: state_of(hass, "event.old_button") is not None)
    await hass.config_entries.async_unload(entry.entry_id)


# The rules of HA 2026.10's quality scale (script/hassfest/quality_scale.py ALL_RULES).
QUALITY_RULES = {
    "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
    "config-flow-test-coverage", "dependency-transparency", "docs-actions", "docs-conditions",
    "docs-high-level-description", "docs-installation-instructions", "docs-removal-instructions",
    "docs-triggers", "entity-event-setup", "entity-unique-id", "has-entity-name", "runtime-data",
    "test-before-configure", "test-before-setup", "unique-config-entry", "action-exceptions",
    "config-entry-unloading", "docs-configuration-parameters", "docs-installation-parameters",
    "entity-unavailable", "integration-owner", "log-when-unavailable", "parallel-updates",
    "reauthentication-flow", "test-coverage", "devices", "diagnostics", "discovery",
    "discovery-update-info", "docs-data-update", "docs-examples", "docs-known-limitations",
    "docs-supported-devices", "docs-supported-functions", "docs-troubleshooting",
    "docs-use-cases", "dynamic-devices", "entity-category", "entity-device-class",
    "entity-disabled-by-default", "entity-translations", "exception-translations",
    "icon-translations", "reconfiguration-flow", "repair-issues", "stale-devices",
    "async-dependency", "inject-websession", "strict-typing",
}  # fmt: skip


def test_quality_scale_lists_every_rule() -> None:
    """quality_scale.yaml rates every rule of HA's list; exempt ones say why."""
    rules = yaml.safe_load((COMPONENT / "quality_scale.yaml").read_text())["rules"]
    assert set(rules) == QUALITY_RULES
    for name, rule in rules.items():
        status = rule["status"] if isinstance(rule, dict) else rule
        assert status in ("done", "exempt", "todo"), name
        if status == "exempt":
            assert rule["comment"], name
