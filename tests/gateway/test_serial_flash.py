"""Serial flashing with the real esptool against the simulated ESP ROM bootloader on a pty."""

from __future__ import annotations

import os
import pty
from collections.abc import Iterator

import pytest

from edgeiot_gateway.updates.serial_flash import FlashError, FlashJob, flash, regions

from .esp_rom_sim import EspRomSimulator
from .firmware_files import esp_image, merged_image


@pytest.fixture
def progress() -> list[tuple[str, int]]:
    return []


def _sim(chip: str, **options: int) -> Iterator[EspRomSimulator]:
    sim = EspRomSimulator(chip, **options).start()
    yield sim
    sim.stop()


def _job(port: str, data: bytes, target: str, **extra: object) -> FlashJob:
    return FlashJob(port, data, 0x10000, target, connect_mode="no-reset", connect_attempts=1,
                    **extra)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize("chip", ["esp32", "esp8266", "esp32c3", "esp32s3"])
def test_flash_reads_back_byte_for_byte(chip: str, progress: list[tuple[str, int]]) -> None:
    image = esp_image(chip, 3, 6000)
    for sim in _sim(chip):
        flash(_job(sim.device, image, chip), lambda s, p: progress.append((s, p)))
        assert bytes(sim.flash[0x10000 : 0x10000 + len(image)]) == image
        assert sim.flash[0x10000 + len(image) :] == b"\xff" * (
            len(sim.flash) - 0x10000 - len(image)
        )
        if chip == "esp8266":  # esptool cannot change its ROM's rate: the flash stays at 115200
            assert sim.bauds == []
        elif chip == "esp32":  # its ROM is sent a crystal-corrected rate
            assert len(sim.bauds) == 1
        else:
            assert sim.bauds == [460800]
    stages = [stage for stage, _ in progress]
    assert stages[0] == "connecting"
    assert stages[-2:] == ["verifying", "rebooting"]
    writing = [p for s, p in progress if s == "writing"]
    assert writing == sorted(writing)
    assert writing[0] == 0
    assert len(writing) > 3


def test_erase_and_merged_skip_erased_sectors() -> None:
    data = merged_image("esp32")
    assert [address for address, _ in regions(data, 0)] == [0x1000, 0x10000]
    for sim in _sim("esp32"):
        sim.flash[0x200000:0x200010] = b"\0" * 16  # erased by erase=True
        job = FlashJob(sim.device, data, 0, "esp32", merged=True, erase=True, baud=115200,
                       connect_mode="no-reset", connect_attempts=1)  # fmt: skip
        flash(job, lambda _s, _p: None)
        assert bytes(sim.flash[: len(data)]) == data
        assert sim.flash[0x200000:0x200010] == b"\xff" * 16
        assert sim.bauds == []


def test_corrupted_block_fails_verification(progress: list[tuple[str, int]]) -> None:
    for sim in _sim("esp32", corrupt_block=2):
        with pytest.raises(FlashError, match="MD5 of file does not match data in flash"):
            flash(_job(sim.device, esp_image("esp32", 2, 4000), "esp32"),
                  lambda s, p: progress.append((s, p)))  # fmt: skip
    assert ("verifying", 100) in progress


def test_wrong_chip_is_refused_before_writing() -> None:
    for sim in _sim("esp32c3"):
        with pytest.raises(FlashError, match="image is for esp32s3, chip is ESP32-C3"):
            flash(_job(sim.device, esp_image("esp32s3"), "esp32s3"), lambda _s, _p: None)
        assert 0x02 not in sim.commands  # no FLASH_BEGIN
        assert sim.flash == b"\xff" * len(sim.flash)


def test_no_answer_is_a_clear_timeout() -> None:
    master, slave = pty.openpty()
    try:
        port = os.ttyname(slave)
        with pytest.raises(
            FlashError, match=f"no ESP ROM bootloader answered on {port}: hold BOOT"
        ):
            flash(_job(port, esp_image(), "esp32"), lambda _s, _p: None)
    finally:
        os.close(master)
        os.close(slave)
