"""Update entities against a real gateway process: versions from the library, install over MQTT
to a simulated node (real download from the gateway), progress, failures, reconnects."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.update import (
    ATTR_IN_PROGRESS,
    ATTR_INSTALLED_VERSION,
    ATTR_LATEST_VERSION,
    ATTR_TITLE,
    ATTR_UPDATE_PERCENTAGE,
)
from homeassistant.const import ATTR_ENTITY_ID, STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.edgeiot.const import DOMAIN

from ..gateway.firmware_files import esp_image
from ..gateway.harness import ANNOUNCE, NodeSimulator
from .helpers import poll_until, state_of, wait_until

UPDATE = "update.greenhouse_firmware"


@pytest.fixture
def firmware_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    folder = (tmp_path / "firmware").resolve()
    folder.mkdir()
    hass.config.allowlist_external_dirs = {str(folder)}
    return folder


async def _upload(
    hass: HomeAssistant, folder: Path, image: bytes, version: str, target: str, **meta: Any
) -> dict[str, Any]:
    path = folder / f"{target}-{version}.bin"
    path.write_bytes(image)
    entry: dict[str, Any] = await hass.services.async_call(
        DOMAIN, "upload_firmware",
        {"path": str(path), "name": "climate", "version": version, "target": target, **meta},
        blocking=True, return_response=True,
    )  # fmt: skip
    return entry


def _attrs(hass: HomeAssistant) -> dict[str, Any]:
    state = hass.states.get(UPDATE)
    assert state is not None
    return dict(state.attributes)


async def _ota_command(node: NodeSimulator) -> dict[str, Any]:
    """The node's next `ota` message (other commands are skipped)."""
    while True:
        topic, payload = await node.next_command()
        if topic.endswith("/ota"):
            return payload


async def _download(url: str) -> bytes:
    """What the node downloads from the gateway (HTTP, no other authentication)."""

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=10) as response:
            data: bytes = response.read()
            return data

    return await asyncio.to_thread(get)


def _install(hass: HomeAssistant, **data: Any) -> asyncio.Task[Any]:
    """update.install, running until its job ends."""
    return asyncio.create_task(
        hass.services.async_call(
            "update", "install", {ATTR_ENTITY_ID: UPDATE, **data}, blocking=True
        )
    )


async def test_versions_follow_the_library(
    hass: HomeAssistant,
    integration: MockConfigEntry,
    firmware_dir: Path,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """latest_version is the newest entry that fits the node's ota block (target and format);
    its release notes and name come with it; deleting it through HA falls back."""
    await wait_until(hass, lambda: state_of(hass, UPDATE) == STATE_OFF)
    assert _attrs(hass)[ATTR_INSTALLED_VERSION] == "1.2.0"
    assert _attrs(hass)[ATTR_LATEST_VERSION] == "1.2.0"  # nothing in the library

    newest = await _upload(hass, firmware_dir, esp_image("esp32c3", 2, 64), "1.3.0", "esp32c3",
                           release_notes="Faster reconnects")  # fmt: skip
    await _upload(hass, firmware_dir, esp_image("esp32c3", 1, 64), "1.2.5", "esp32c3")
    await _upload(hass, firmware_dir, esp_image("esp32", 1, 64), "9.0.0", "esp32")  # other chip
    assert state_of(hass, UPDATE) == STATE_ON
    assert (_attrs(hass)[ATTR_LATEST_VERSION], _attrs(hass)[ATTR_TITLE]) == ("1.3.0", "climate")
    client = await hass_ws_client(hass)
    await client.send_json({"id": 1, "type": "update/release_notes", "entity_id": UPDATE})
    assert (await client.receive_json())["result"] == "Faster reconnects"

    await hass.services.async_call(DOMAIN, "delete_firmware", {"id": newest["id"]}, blocking=True)
    assert _attrs(hass)[ATTR_LATEST_VERSION] == "1.2.5"
    with pytest.raises(ServiceValidationError, match=r"no version 9\.0\.0 that fits"):
        await hass.services.async_call(
            "update", "install", {ATTR_ENTITY_ID: UPDATE, "version": "9.0.0"}, blocking=True
        )


async def test_install_over_mqtt_with_progress(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator, firmware_dir: Path
) -> None:
    """update.install sends firmware_install; the node downloads the file from the gateway,
    reports progress (update_percentage while downloading) and reboots into the new version,
    which ends the install. A failed install raises the node's error and changes nothing."""
    image = esp_image("esp32c3", 3, 4096)
    await _upload(hass, firmware_dir, image, "1.3.0", "esp32c3")
    await _upload(hass, firmware_dir, esp_image("esp32c3", 1, 64), "1.2.5", "esp32c3")
    await wait_until(hass, lambda: state_of(hass, UPDATE) == STATE_ON)

    install = _install(hass)
    ota = await _ota_command(node)
    assert (ota["version"], ota["size"], ota["format"]) == ("1.3.0", len(image), "esp-image")
    assert hashlib.sha256(await _download(ota["url"])).hexdigest() == ota["sha256"]
    node.publish("ota_status", {"v": 1, "job": ota["job"], "state": "downloading", "progress": 40})
    await poll_until(lambda: _attrs(hass)[ATTR_UPDATE_PERCENTAGE] == 40)
    assert _attrs(hass)[ATTR_IN_PROGRESS] is True
    node.publish("ota_status", {"v": 1, "job": ota["job"], "state": "applying"})
    await poll_until(lambda: _attrs(hass)[ATTR_UPDATE_PERCENTAGE] is None)
    assert _attrs(hass)[ATTR_IN_PROGRESS] is True
    node.announce_payload = {**ANNOUNCE, "firmware": "1.3.0"}  # rebooted into the new version
    node.announce()
    await asyncio.wait_for(install, 15)
    await wait_until(hass, lambda: _attrs(hass)[ATTR_INSTALLED_VERSION] == "1.3.0")
    assert (state_of(hass, UPDATE), _attrs(hass)[ATTR_IN_PROGRESS]) == (STATE_OFF, False)

    install = _install(hass, version="1.2.5")  # a specific (older) version
    ota = await _ota_command(node)
    assert ota["version"] == "1.2.5"
    node.publish("ota_status", {"v": 1, "job": ota["job"], "state": "failed",
                                "error": "flash write failed"})  # fmt: skip
    with pytest.raises(HomeAssistantError, match=r"1\.2\.5 failed: .*flash write failed"):
        await asyncio.wait_for(install, 15)
    assert _attrs(hass)[ATTR_INSTALLED_VERSION] == "1.3.0"
    assert (state_of(hass, UPDATE), _attrs(hass)[ATTR_IN_PROGRESS]) == (STATE_OFF, False)


async def test_job_survives_a_reconnect(
    hass: HomeAssistant, integration: MockConfigEntry, node: NodeSimulator, firmware_dir: Path
) -> None:
    """The connection drops during an install: the install action fails with a clear error, the
    gateway carries on, and after the reconnect firmware_jobs shows the job in progress again
    until it ends."""
    await _upload(hass, firmware_dir, esp_image("esp32c3", 2, 64), "1.3.0", "esp32c3")
    await wait_until(hass, lambda: state_of(hass, UPDATE) == STATE_ON)
    install = _install(hass)
    ota = await _ota_command(node)
    hub = integration.runtime_data
    await hub.client.disconnect()  # the socket drops; the hub reconnects
    with pytest.raises(HomeAssistantError, match="connection to the gateway dropped"):
        await asyncio.wait_for(install, 15)
    node.publish("ota_status", {"v": 1, "job": ota["job"], "state": "downloading", "progress": 70})
    await wait_until(hass, lambda: hub.connected and _attrs(hass)[ATTR_UPDATE_PERCENTAGE] == 70)
    assert _attrs(hass)[ATTR_IN_PROGRESS] is True
    node.publish("ota_status", {"v": 1, "job": ota["job"], "state": "done", "version": "1.3.0"})
    await wait_until(hass, lambda: _attrs(hass)[ATTR_IN_PROGRESS] is False)
