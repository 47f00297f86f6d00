"""A built image through the real gateway: library upload, listing, flash_serial to the simulated
ROM bootloader with the real esptool, and the simulated flash compared with the build."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ..gateway.esp_rom_sim import EspRomSimulator
from ..gateway.harness import ApiClient, gateway_config, start_gateway
from .conftest import SECRETS, SOURCE, Built, run_cli


@pytest.fixture
async def client(tmp_path: Path, socket_enabled: None) -> AsyncIterator[ApiClient]:
    gw = await start_gateway(gateway_config(tmp_path / "gw", None))
    api = await ApiClient.of(gw)
    assert (await api.command("start_listening"))["success"]
    yield api
    await api.close()
    await gw.stop()


async def test_flash_built_image_through_the_gateway(built: Built, client: ApiClient) -> None:
    merged = built.read("flash.bin")
    manifest = built.manifest
    query = (f"name=kitchen-1&version={manifest['firmware']['version']}&target={built.target}"
             "&format=esp-merged&offset=0")  # fmt: skip
    async with client.session.post(f"{client.base}/api/v1/firmware?{query}", data=merged) as resp:
        assert resp.status == 200, await resp.text()
        entry = await resp.json()
    assert (entry["format"], entry["offset"], entry["size"], entry["sha256"]) == (
        "esp-merged", 0, len(merged), manifest["merged"]["sha256"]
    )  # fmt: skip
    listing = await client.command("firmware_list")
    assert listing["result"]["firmware"] == [entry]
    for secret in SECRETS:
        assert secret not in json.dumps(listing)
    sim = EspRomSimulator(built.target)
    # A used board: erase=True must clear it. esptool asks the ESP8266 ROM to erase 64 KiB less
    # than the flash (its ROM over-erases; the simulator does not), so that end stays erased.
    used = len(sim.flash) - (0x10000 if built.target == "esp8266" else 0)
    sim.flash[:used] = b"\0" * used
    sim.start()
    try:
        started = await client.command(
            "flash_serial", port=sim.device, firmware_id=entry["id"], baud=115200, erase=True
        )
        assert started["success"], started
        job_id = started["result"]["job_id"]
        while True:
            event = await client.wait_event(
                lambda e: e["event"] == "firmware progress" and e["job_id"] == job_id, timeout=60
            )
            if event["stage"] in ("done", "failed"):
                break
        assert (event["stage"], event["error"]) == ("done", None)
        assert bytes(sim.flash[: len(merged)]) == merged  # all of it, erased sectors included
        assert sim.flash[len(merged) :] == b"\xff" * (len(sim.flash) - len(merged))
    finally:
        sim.stop()


async def test_bundle_into_the_library(built: Built, client: ApiClient, tmp_path: Path) -> None:
    result = run_cli("bundle", "--target", built.target, "--src", SOURCE, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    data = (tmp_path / f"edgeiot-0.3.1-{built.target}.bundle").read_bytes()
    for target in (built.target, "edgeiot"):
        query = f"name=kitchen-app&version=0.3.1&target={target}"
        async with client.session.post(f"{client.base}/api/v1/firmware?{query}", data=data) as resp:
            assert resp.status == 200, await resp.text()
            entry = await resp.json()
        assert (entry["format"], entry["target"], entry["size"]) == (
            "edgeiot-bundle", target, len(data)
        )  # fmt: skip
        assert (await client.command("firmware_delete", id=entry["id"]))["success"]
    other = "esp8266" if built.target == "esp32" else "esp32"
    async with client.session.post(
        f"{client.base}/api/v1/firmware?name=a&version=1&target={other}", data=data
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["message"] == f"bundle is for {built.target}, not {other}"
