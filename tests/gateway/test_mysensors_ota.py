"""MySensors OTA against a real gateway: library firmware served to a simulated node on a pty.

The node behaves as MYSBootloader does (MySensorsBootloader.h; the sketch-side
core/MyOTAFirmwareUpdate.cpp of the MySensors library does the same on the wire): at start it
sends ST_FIRMWARE_CONFIG_REQUEST with the type, version, blocks and CRC it runs; a response that
differs starts an update, blocks asked for from the last to the first, each answer checked to be
the block it asked for; then CRC-16/MODBUS over the blocks (computed here with the `crc`
package, independently of the gateway), and on success it restarts and asks again.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from crc import Calculator, Crc16

from edgeiot_gateway.commands import CommandError
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.providers.mysensors import protocol as ms
from edgeiot_gateway.providers.mysensors.ota import (
    crc16_modbus,
    image_from_hex,
    load_image,
    make_image,
)

from .firmware_files import esp_image, intel_hex
from .harness import ApiClient, start_gateway, wait_for
from .test_firmware_library import upload
from .test_mysensors import PtySimulator, _config, _provider, present

S = ms.Presentation
MODBUS = Calculator(Crc16.MODBUS)  # the crc package's own implementation
NODE = 5
STREAM = f"{NODE};255;4;0;"
REBOOT = f"{NODE};255;3;0;13;"
OLD = (10, 3)  # the firmware type and version the node runs at first
NEW_BINARY = bytes(random.Random(13).randrange(256) for _ in range(1000))  # 62.5 blocks


def padded(binary: bytes) -> bytes:
    """What the node must end up with: whole 16-byte blocks, the rest erased flash (0xFF)."""
    return binary + b"\xff" * (-len(binary) % 16)


class BootloaderNode:
    """A MySensors node running MYSBootloader behind the simulated serial gateway."""

    def __init__(self, sim: PtySimulator, firmware: bytes, ftype: int, version: int) -> None:
        self.sim = sim
        self.flash = firmware
        self.config = (ftype, version, len(firmware) // 16, MODBUS.checksum(firmware))
        self.lose: set[int] = set()  # blocks whose first answer gets lost on the radio
        self.corrupt = 0  # transfers whose data gets corrupted in flash
        self.stop_after: int | None = None  # blocks after which it stops asking (power lost)
        self.bad_request: int | None = None  # a block number it asks for first
        self.reboots = True  # False: it hangs after the last block instead of restarting
        self.requested: list[int] = []
        self.transfers = 0

    async def _ask(self, kind: int, payload: str, answer: int, tries: int = 3) -> str | None:
        for _ in range(tries):
            self.sim.send(f"{STREAM}{kind};{payload}")
            try:
                line = await self.sim.expect(f"{STREAM}{answer};", 0.5)
            except TimeoutError:
                continue
            return line.rsplit(";", 1)[1]
        return None

    async def run(self) -> None:
        """Start as the bootloader does: update while the controller offers other firmware."""
        while await self._boot():
            pass

    async def _boot(self) -> bool:
        """One start; True: it took (or failed to take) new firmware and starts again."""
        ftype, version, blocks, _ = self.config
        rom_crc = MODBUS.checksum(self.flash[: blocks * 16])  # recomputed, as MYSBootloader does
        request = struct.pack("<5H", ftype, version, blocks, rom_crc, 0x0200).hex()
        answer = await self._ask(0, request, 1)
        if answer is None:
            return False  # no controller answer: runs what it has
        offered = struct.unpack("<4H", bytes.fromhex(answer))
        if offered == (ftype, version, blocks, rom_crc):
            return False  # the same firmware: it starts it
        self.transfers += 1
        data = bytearray(offered[2] * 16)
        if self.bad_request is not None:
            self.sim.send(f"{STREAM}2;{struct.pack('<3H', *offered[:2], self.bad_request).hex()}")
            self.bad_request = None
        for block in range(offered[2] - 1, -1, -1):
            if self.stop_after is not None and len(self.requested) >= self.stop_after:
                return False  # silent from now on
            want = struct.pack("<3H", offered[0], offered[1], block)
            if block in self.lose:
                self.lose.discard(block)
                self.sim.send(f"{STREAM}2;{want.hex()}")
                await self.sim.expect(f"{STREAM}3;")  # the answer the radio loses
            self.requested.append(block)
            answer = await self._ask(2, want.hex(), 3, tries=8)
            assert answer is not None, f"block {block} was not answered"
            raw = bytes.fromhex(answer)
            assert raw[:6] == want, "an answer for another block"
            data[block * 16 : (block + 1) * 16] = raw[6:]
        if not self.reboots:
            return False
        if self.corrupt:
            self.corrupt -= 1
            data[0] ^= 0xFF
        if MODBUS.checksum(bytes(data)) != offered[3]:
            self.config = (offered[0], offered[1], 0, 0)  # invalidated: back to the bootloader
            self.flash = b""
            return True
        self.flash = bytes(data)
        self.config = offered
        return True


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncIterator[PtySimulator]:
    simulator = PtySimulator()
    yield simulator
    simulator.close()


@pytest.fixture
async def gateway(tmp_path: Path, sim: PtySimulator) -> AsyncIterator[Gateway]:
    config = _config(tmp_path, transport="serial", device=sim.path, ota_timeout=5,
                     ota_idle_timeout=0.6)  # fmt: skip
    gateway = await start_gateway(config)
    await sim.expect("0;255;3;0;2;")
    await present(sim, NODE, "Thermostat", "1.0", (1, S.S_TEMP, ""))
    await wait_for(lambda: f"ms-{NODE}" in gateway.processor.nodes, what="node")
    yield gateway
    await gateway.stop()


async def _entry(api: ApiClient, binary: bytes, version: int = 4, **meta: Any) -> dict[str, Any]:
    data = intel_hex(binary)
    args = {"target": "mysensors", "mysensors": {"type": 10, "version": version}} | meta
    result = await upload(api, data, version=f"1.{version}", **args)
    assert result["success"], result
    entry: dict[str, Any] = result["result"]
    return entry


class Job:
    """An install_firmware call running in the background, its progress collected."""

    def __init__(self, gateway: Gateway, entry: dict[str, Any]) -> None:
        self.progress: list[tuple[str, int, str | None]] = []
        node = gateway.processor.nodes[f"ms-{NODE}"]
        path = gateway.firmware.path(entry)
        coro = _provider(gateway).install_firmware(node, entry, path, self._report)
        self.task = asyncio.create_task(coro)

    def _report(self, stage: str, percent: int, error: str | None) -> None:
        self.progress.append((stage, percent, error))

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(stage for stage, _, _ in self.progress))

    async def failure(self) -> CommandError:
        with pytest.raises(CommandError) as caught:
            await asyncio.wait_for(self.task, 10)
        return caught.value


def _old_firmware() -> bytes:
    return padded(bytes(range(256)) * 3)


async def test_update_end_to_end(gateway: Gateway, api: ApiClient, sim: PtySimulator) -> None:
    """Assign, reboot, every block from the last to the first (one lost answer re-asked for),
    CRC checked by the node, restart with the new firmware: done, and the node says so."""
    entry = await _entry(api, NEW_BINARY)
    node = BootloaderNode(sim, _old_firmware(), *OLD)
    node.lose = {40}
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    await node.run()
    await asyncio.wait_for(job.task, 10)

    assert node.flash == padded(NEW_BINARY)  # byte for byte, padded with 0xFF
    assert node.config == (10, 4, 63, MODBUS.checksum(padded(NEW_BINARY)))
    assert node.requested == list(range(62, -1, -1))  # from the last block down
    assert node.transfers == 1
    assert job.stages == ["connecting", "writing", "rebooting", "done"]
    writing = [percent for stage, percent, _ in job.progress if stage == "writing"]
    assert writing == sorted(writing)
    assert writing[-1] == 62 * 100 // 63  # 62 of 63 blocks before block 0
    assert job.progress[-1] == ("done", 100, None)
    provider = _provider(gateway)
    assert provider.diagnostics()["ota_jobs"] == 0  # nothing kept after the job
    # The node's firmware is the type.version of its config request, saved with the node.
    await wait_for(lambda: gateway.processor.nodes[f"ms-{NODE}"].firmware == "10.4",
                   what="new firmware version")  # fmt: skip
    await provider._state.save()
    assert '"running":[10,4]' in provider.state_path.read_text()

    # Without an assignment the next config request is not answered: the node runs its firmware.
    before = provider.stats["firmware_unanswered"]
    await node.run()
    assert provider.stats["firmware_unanswered"] == before + 3  # three tries, no answer
    assert node.transfers == 1


async def test_corrupted_transfer_is_sent_again_then_rejected(
    gateway: Gateway, api: ApiClient, sim: PtySimulator
) -> None:
    """A failed CRC check makes the node ask again: the gateway sends the image again, and
    gives up (firmware_rejected) after three transfers."""
    entry = await _entry(api, NEW_BINARY[:200])
    node = BootloaderNode(sim, _old_firmware(), *OLD)
    node.corrupt = 1
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    await node.run()
    await asyncio.wait_for(job.task, 10)
    assert (node.transfers, node.flash) == (2, padded(NEW_BINARY[:200]))

    node = BootloaderNode(sim, _old_firmware(), *OLD)
    node.corrupt = 5
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    await node.run()
    error = await job.failure()
    assert (error.code, node.transfers) == ("firmware_rejected", 3)
    assert "CRC check failed" in error.message
    assert job.progress[-1][0] == "failed"


async def test_node_that_stops_requesting(
    gateway: Gateway, api: ApiClient, sim: PtySimulator
) -> None:
    """A node that goes silent mid-transfer fails the job after the idle timeout; nothing is
    left behind (its requests go unanswered again, a new job can start)."""
    entry = await _entry(api, NEW_BINARY)
    node = BootloaderNode(sim, _old_firmware(), *OLD)
    node.stop_after = 10
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    await node.run()
    error = await job.failure()
    assert error.code == "timeout"
    assert error.message == (
        "ms-5 stopped asking for firmware blocks (10 of 63 blocks served, none for 0.6 s)"
    )
    stage, percent, message = job.progress[-1]
    assert (stage, percent, message) == ("failed", 15, error.message)
    provider = _provider(gateway)
    assert provider.diagnostics()["ota_jobs"] == 0
    unanswered = provider.stats["firmware_unanswered"]
    sim.send(f"{STREAM}2;{struct.pack('<3H', 10, 4, 52).hex()}")
    await sim.quiet(f"{STREAM}3;", 0.2)
    assert provider.stats["firmware_unanswered"] == unanswered + 1

    hung = BootloaderNode(sim, _old_firmware(), *OLD)
    hung.reboots = False
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    await hung.run()
    error = await job.failure()
    assert (
        error.message == "ms-5 did not come back with firmware 10 v4 within 0.6 s of the last block"
    )
    assert job.stages == ["connecting", "writing", "rebooting", "failed"]

    again = Job(gateway, entry)  # the node is free for a new job
    await sim.expect(REBOOT)
    await BootloaderNode(sim, _old_firmware(), *OLD).run()
    await asyncio.wait_for(again.task, 10)


async def test_node_that_never_asks(gateway: Gateway, api: ApiClient, sim: PtySimulator) -> None:
    """A node without an OTA bootloader never asks: the job times out with a hint; a second job
    for the node while one runs is refused (busy)."""
    entry = await _entry(api, NEW_BINARY[:64])
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    second = Job(gateway, entry)
    assert (await second.failure()).code == "busy"
    error = await job.failure()
    assert error.code == "timeout"
    assert "did not ask for firmware within 5 s" in error.message
    assert "MYSBootloader" in error.message
    assert job.stages == ["connecting", "failed"]


async def test_bad_requests_and_wrong_firmware(
    gateway: Gateway, api: ApiClient, sim: PtySimulator
) -> None:
    """A block past the end of the image is a counted drop; firmware that is not MySensors Intel
    HEX is refused before the node is touched."""
    esp = await upload(api, esp_image())
    assert esp["success"], esp
    wrong = Job(gateway, esp["result"])
    error = await wrong.failure()
    assert error.code == "invalid_firmware"
    assert "a MySensors node takes intel-hex firmware of target mysensors" in error.message
    await sim.quiet(REBOOT, 0.1)

    entry = await _entry(api, NEW_BINARY[:160])
    node = BootloaderNode(sim, _old_firmware(), *OLD)
    node.bad_request = 10  # the image has blocks 0-9
    job = Job(gateway, entry)
    await sim.expect(REBOOT)
    sim.send(f"{STREAM}2;{struct.pack('<3H', 10, 9, 3).hex()}")  # a version not assigned
    await sim.quiet(f"{STREAM}3;", 0.1)
    await node.run()
    await asyncio.wait_for(job.task, 10)
    dropped = gateway.commands.diagnostics()["dropped"]
    assert dropped["mysensors_invalid_block"] == 1
    assert node.flash == NEW_BINARY[:160]


async def test_config_request_without_assignment(gateway: Gateway, sim: PtySimulator) -> None:
    """Without an assignment nothing is answered; the node's firmware becomes the type.version
    it reports."""
    sim.send(f"{STREAM}0;{struct.pack('<5H', 7, 2, 10, 0x1234, 0x0200).hex()}")
    await sim.quiet(f"{STREAM}1;", 0.2)
    await wait_for(lambda: gateway.processor.nodes[f"ms-{NODE}"].firmware == "7.2",
                   what="firmware from the config request")  # fmt: skip


async def test_stopping_the_gateway_cancels_a_job(
    gateway: Gateway, api: ApiClient, sim: PtySimulator
) -> None:
    """A gateway stop fails a running job at once (assignments are not kept across restarts)."""
    job = Job(gateway, await _entry(api, NEW_BINARY[:64]))
    await sim.expect(REBOOT)
    await gateway.stop()
    error = await job.failure()
    assert (error.code, error.message) == (
        "provider_unavailable",
        "ms-5: the gateway stopped, which cancels the update",
    )


def test_crc_matches_an_independent_implementation() -> None:
    """CRC-16/MODBUS: the catalogue check value, and the crc package on random data."""
    assert crc16_modbus(b"123456789") == 0x4B37
    generator = random.Random(7)
    for size in (0, 1, 15, 16, 17, 1000, 30 * 1024):
        data = bytes(generator.randrange(256) for _ in range(size))
        assert crc16_modbus(data) == MODBUS.checksum(data)


def test_images_from_intel_hex(tmp_path: Path) -> None:
    """From address 0, gaps and padding 0xFF, whole blocks; the entry must be MySensors HEX."""
    image = image_from_hex(intel_hex(b"\x01\x02\x03", address=0x20), 9, 1)
    assert image.data == b"\xff" * 0x20 + b"\x01\x02\x03" + b"\xff" * 13
    assert (image.blocks, image.crc) == (3, MODBUS.checksum(image.data))
    assert image.block(2) == b"\x01\x02\x03" + b"\xff" * 13
    assert make_image(1, 1, bytes(32)).data == bytes(32)  # already whole blocks: no padding

    for text, message in (
        (b":00000001FF\n", "no data records"),
        (b":0100000000FE\n", "Intel HEX:"),  # a bad checksum
        (b":020000040100F9\n:0100000000FF\n", "MySensors OTA carries at most 1048560 bytes"),
    ):
        with pytest.raises(CommandError, match=message) as caught:
            image_from_hex(text, 1, 1)
        assert caught.value.code == "invalid_firmware"

    path = tmp_path / "fw.hex"
    path.write_bytes(intel_hex(b"\x00" * 16))
    entry = {"id": "x", "target": "mysensors", "format": "intel-hex",
             "mysensors": {"type": 2, "version": 5}}  # fmt: skip
    assert load_image(entry, path).config == ms.FirmwareConfig(2, 5, 1, MODBUS.checksum(bytes(16)))
    for bad in ({"mysensors": None}, {"format": "esp-image"}, {"target": "esp32"}):
        with pytest.raises(CommandError, match="takes intel-hex"):
            load_image(entry | bad, path)
    with pytest.raises(CommandError) as missing:
        load_image(entry, tmp_path / "gone.hex")
    assert missing.value.code == "not_found"


async def test_firmware_install_command(
    gateway: Gateway, api: ApiClient, sim: PtySimulator
) -> None:
    """Through the API: `firmware_install` refuses non-MySensors firmware at once, runs a job
    with one `connecting` … `done` sequence of `firmware progress` events, lists it in
    `firmware_jobs`, and the node then reports the new firmware."""
    esp = await upload(api, esp_image())
    refused = await api.command("firmware_install", node_id=f"ms-{NODE}",
                                firmware_id=esp["result"]["id"])  # fmt: skip
    assert (refused["success"], refused["error_code"]) == (False, "invalid_firmware")
    await sim.quiet(REBOOT, 0.1)

    entry = await _entry(api, NEW_BINARY)
    await api.command("start_listening")
    started = await api.command("firmware_install", node_id=f"ms-{NODE}", firmware_id=entry["id"])
    job_id = started["result"]["job_id"]
    await sim.expect(REBOOT)
    await BootloaderNode(sim, _old_firmware(), *OLD).run()
    events = await api.job_events(job_id)
    assert {(e["kind"], e["node_id"]) for e in events} == {("mysensors", f"ms-{NODE}")}
    stages = [e["stage"] for e in events]
    assert list(dict.fromkeys(stages)) == ["connecting", "writing", "rebooting", "done"]
    assert stages.count("done") == 1
    jobs = (await api.command("firmware_jobs"))["result"]["jobs"]
    assert [(j["job_id"], j["stage"]) for j in jobs] == [(job_id, "done")]
    await wait_for(lambda: gateway.processor.nodes[f"ms-{NODE}"].firmware == "10.4",
                   what="new firmware version")  # fmt: skip
