"""The firmware actions against a real gateway process: upload, list, delete, serial ports and a
serial flash (real esptool in the gateway, simulated ROM bootloader on a pty)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN, EVENT_NODE

from ..gateway.esp_rom_sim import EspRomSimulator
from ..gateway.firmware_files import esp_image, intel_hex
from .helpers import wait_until

RESPONDS = {"upload_firmware", "list_firmware", "list_serial_ports", "flash_serial"}


async def _call(hass: HomeAssistant, action: str, **data: Any) -> Any:
    return await hass.services.async_call(
        DOMAIN, action, data, blocking=True, return_response=action in RESPONDS
    )


@pytest.fixture
def firmware_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A folder HA may read files from (allowlist_external_dirs)."""
    folder = (tmp_path / "firmware").resolve()
    folder.mkdir()
    hass.config.allowlist_external_dirs = {str(folder)}
    return folder


async def test_upload_list_delete(
    hass: HomeAssistant, integration: MockConfigEntry, firmware_dir: Path
) -> None:
    """A file larger than one chunk goes up in pieces and comes back byte for byte the same
    (same sha256); list and delete follow."""
    image = esp_image("esp32c3", 2, 200_000)  # 400 kB: two 256 KiB chunks
    (firmware_dir / "app.bin").write_bytes(image)
    entry = await _call(
        hass, "upload_firmware", path=str(firmware_dir / "app.bin"), name="climate",
        version="1.3.0", target="esp32c3", release_notes="Faster reconnects",
    )  # fmt: skip
    digest = hashlib.sha256(image).hexdigest()
    assert entry | {"uploaded_at": 0} == {
        "id": digest[:16], "name": "climate", "version": "1.3.0", "target": "esp32c3",
        "format": "esp-image", "sha256": digest, "size": len(image), "offset": 0x10000,
        "mysensors": None, "release_notes": "Faster reconnects", "uploaded_at": 0,
    }  # fmt: skip
    (firmware_dir / "node.hex").write_bytes(intel_hex(bytes(range(64))))
    hexentry = await _call(
        hass, "upload_firmware", path=str(firmware_dir / "node.hex"), name="sketch",
        version="3", target="mysensors", format="intel-hex", mysensors_type=7,
        mysensors_version=3,
    )  # fmt: skip
    assert (hexentry["format"], hexentry["mysensors"]) == ("intel-hex", {"type": 7, "version": 3})
    hub = integration.runtime_data
    assert [e["id"] for e in hub.firmware.entries] == [hexentry["id"], entry["id"]]

    listing = await _call(hass, "list_firmware")
    assert [e["id"] for e in listing["firmware"]] == [hexentry["id"], entry["id"]]
    await _call(hass, "delete_firmware", id=entry["id"])
    assert [e["id"] for e in hub.firmware.entries] == [hexentry["id"]]
    assert [e["id"] for e in (await _call(hass, "list_firmware"))["firmware"]] == [hexentry["id"]]
    with pytest.raises(HomeAssistantError, match=r"refused the command \(not_found\)"):
        await _call(hass, "delete_firmware", id=entry["id"])


async def test_upload_from_a_media_folder(
    hass: HomeAssistant, integration: MockConfigEntry, tmp_path: Path
) -> None:
    """A media-source address of a file in one of HA's media folders is uploaded; one that
    leaves the folder, or names no media folder, is refused."""
    media = tmp_path / "media"
    (media / "firmware").mkdir(parents=True)
    (media / "firmware" / "app.bin").write_bytes(esp_image())
    (tmp_path / "outside.bin").write_bytes(esp_image())
    hass.config.media_dirs = {"local": str(media)}
    meta = {"name": "app", "version": "1", "target": "esp32"}
    uri = "media-source://media_source/local/firmware/app.bin"  # as the media browser gives it
    entry = await _call(hass, "upload_firmware", path=uri, **meta)
    assert entry["sha256"] == hashlib.sha256(esp_image()).hexdigest()
    for path in ("media-source://media_source/local/../outside.bin",
                 "media-source://media_source/recordings/app.bin"):  # fmt: skip
        with pytest.raises(ServiceValidationError) as info:
            await _call(hass, "upload_firmware", path=path, **meta)
        assert info.value.translation_key == "path_not_allowed"


async def test_upload_refusals(
    hass: HomeAssistant, integration: MockConfigEntry, firmware_dir: Path, tmp_path: Path
) -> None:
    """Files HA may not read, unreadable files and bad firmware: clear, translated errors."""
    outside = tmp_path / "secret.bin"
    outside.write_bytes(esp_image())
    meta = {"name": "app", "version": "1", "target": "esp32"}
    with pytest.raises(ServiceValidationError, match=r"may not read .*secret\.bin") as info:
        await _call(hass, "upload_firmware", path=str(outside), **meta)
    assert info.value.translation_key == "path_not_allowed"
    with pytest.raises(ServiceValidationError, match=r"Cannot read .*missing\.bin") as info:
        await _call(hass, "upload_firmware", path=str(firmware_dir / "missing.bin"), **meta)
    with pytest.raises(ServiceValidationError, match=r"Cannot read .*: Is a directory"):
        await _call(hass, "upload_firmware", path=str(firmware_dir), **meta)
    (firmware_dir / "elf.bin").write_bytes(b"\x7fELF" + bytes(60))
    with pytest.raises(HomeAssistantError, match="refused the firmware: unknown firmware format"):
        await _call(hass, "upload_firmware", path=str(firmware_dir / "elf.bin"), **meta)
    (firmware_dir / "c3.bin").write_bytes(esp_image("esp32c3"))
    with pytest.raises(HomeAssistantError, match="image is for esp32c3, not esp32"):
        await _call(hass, "upload_firmware", path=str(firmware_dir / "c3.bin"), **meta)
    with pytest.raises(HomeAssistantError, match=r"mysensors \{type, version\} is required"):
        await _call(hass, "upload_firmware", path=str(firmware_dir / "c3.bin"), name="x",
                    version="1", target="mysensors")  # fmt: skip
    assert (await _call(hass, "list_firmware"))["firmware"] == []


async def test_flash_serial_with_progress_events(
    hass: HomeAssistant, integration: MockConfigEntry, firmware_dir: Path
) -> None:
    """flash_serial returns the job id; the gateway's progress reaches HA's bus as
    edgeiot_event firmware_progress events, ending in done; the simulated flash holds the
    image. The firmware is in use while it flashes; a second flash of the port is refused."""
    image = esp_image("esp32", 4, 8000)
    (firmware_dir / "app.bin").write_bytes(image)
    entry = await _call(hass, "upload_firmware", path=str(firmware_dir / "app.bin"),
                        name="app", version="2.0", target="esp32")  # fmt: skip
    events: list[Event] = []

    @callback
    def record(event: Event) -> None:  # a callback: in the loop, in order
        events.append(event)

    hass.bus.async_listen(EVENT_NODE, record)
    ports = await _call(hass, "list_serial_ports")
    assert isinstance(ports["ports"], list)
    sim = EspRomSimulator("esp32", block_delay=0.02).start()
    try:
        started = await _call(hass, "flash_serial", port=sim.device, firmware_id=entry["id"],
                              baud="115200")  # fmt: skip
        job_id = started["job_id"]
        with pytest.raises(HomeAssistantError, match="Busy with another firmware job") as info:
            await _call(hass, "flash_serial", port=sim.device, firmware_id=entry["id"])
        assert info.value.translation_key == "firmware_busy"
        with pytest.raises(HomeAssistantError, match="in use by a running job") as info:
            await _call(hass, "delete_firmware", id=entry["id"])
        assert info.value.translation_key == "firmware_in_use"

        def ended() -> bool:
            return any(e.data["stage"] in ("done", "failed") for e in events)

        await wait_until(hass, ended, timeout=60)
        assert bytes(sim.flash[0x10000 : 0x10000 + len(image)]) == image
    finally:
        sim.stop()
    progress = [e.data for e in events if e.data["event_type"] == "firmware_progress"]
    assert progress[-1] == {
        "event_type": "firmware_progress", "job_id": job_id, "kind": "serial",
        "port": sim.device, "stage": "done", "percent": 100, "error": None,
    }  # fmt: skip
    assert "writing" in [p["stage"] for p in progress]
    assert integration.runtime_data.firmware.jobs == {}  # serial jobs never linger
    await _call(hass, "delete_firmware", id=entry["id"])
