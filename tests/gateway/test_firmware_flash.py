"""flash_serial over the WebSocket API: real gateway, real esptool, simulated ROM bootloader."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.gateway import Gateway

from .esp_rom_sim import EspRomSimulator
from .firmware_files import esp_image
from .harness import ApiClient, gateway_config, start_gateway
from .test_firmware_library import upload


@pytest.fixture
async def client(tmp_path: Path, socket_enabled: None) -> AsyncIterator[ApiClient]:
    gw = await start_gateway(gateway_config(tmp_path / "gw", None))
    api = await ApiClient.of(gw)
    assert (await api.command("start_listening"))["success"]
    api.gateway = gw  # type: ignore[attr-defined]
    yield api
    await api.close()
    await gw.stop()


def _sim(chip: str, **options: Any) -> Iterator[EspRomSimulator]:
    sim = EspRomSimulator(chip, **options).start()
    yield sim
    sim.stop()


async def test_flash_serial_end_to_end(client: ApiClient) -> None:
    gateway: Gateway = client.gateway  # type: ignore[attr-defined]
    image = esp_image("esp32c3", 4, 8000)
    entry = (await upload(client, image, 10000, target="esp32c3"))["result"]
    for sim in _sim("esp32c3", block_delay=0.01):
        started = await client.command("flash_serial", port=sim.device, firmware_id=entry["id"])
        assert started["success"], started
        job_id = started["result"]["job_id"]
        busy = await client.command("flash_serial", port=sim.device, firmware_id=entry["id"])
        assert (busy["error_code"], busy["message"]) == (
            "busy",
            f"{sim.device} is already being flashed",
        )
        in_use = await client.command("firmware_delete", id=entry["id"])
        assert in_use["error_code"] == "in_use"
        events = await client.job_events(job_id)
        assert bytes(sim.flash[0x10000 : 0x10000 + len(image)]) == image
    stages = [e["stage"] for e in events]
    assert stages[0] == "connecting"
    assert stages[-3:] == ["verifying", "rebooting", "done"]
    assert "writing" in stages
    done = {"event": "firmware progress", "job_id": job_id, "kind": "serial", "port": sim.device,
            "stage": "done", "percent": 100, "error": None}  # fmt: skip
    assert events[-1] == done
    percents = [e["percent"] for e in events if e["stage"] == "writing"]
    assert percents == sorted(percents)
    assert len(percents) > 5
    assert (await client.command("firmware_delete", id=entry["id"]))["success"]
    assert gateway.flasher._ports == set()


async def test_flash_serial_failures(client: ApiClient) -> None:
    s3 = (await upload(client, esp_image("esp32s3"), target="esp32s3"))["result"]
    for sim in _sim("esp32c3"):
        job_id = (await client.command("flash_serial", port=sim.device, firmware_id=s3["id"]))[
            "result"
        ]["job_id"]
        failed = (await client.job_events(job_id))[-1]
        assert failed["error"] == "image is for esp32s3, chip is ESP32-C3"
        assert 0x02 not in sim.commands
    for sim in _sim("esp32s3", corrupt_block=0):
        job_id = (await client.command("flash_serial", port=sim.device, firmware_id=s3["id"]))[
            "result"
        ]["job_id"]
        failed = (await client.job_events(job_id))[-1]
        assert failed["stage"] == "failed"
        assert "MD5 of file does not match data in flash" in failed["error"]
    hexfile = (await upload(client, b":0100000000FF\n:00000001FF\n", target="mysensors",
                            mysensors={"type": 1, "version": 1}))["result"]  # fmt: skip
    for firmware_id, baud, message in [(hexfile["id"], 460800, "not an ESP image"),
                                       (s3["id"], 1234, "baud: one of"),
                                       ("nope", 460800, "no firmware 'nope'")]:  # fmt: skip
        refused = await client.command("flash_serial", port="/dev/null", firmware_id=firmware_id,
                                       baud=baud)  # fmt: skip
        assert message in refused["message"]


async def test_serial_ports(client: ApiClient) -> None:
    result = await client.command("serial_ports")
    assert result["success"]
    for port in result["result"]["ports"]:
        assert set(port) == {"device", "description", "vid", "pid", "serial_number",
                             "manufacturer"}  # fmt: skip
