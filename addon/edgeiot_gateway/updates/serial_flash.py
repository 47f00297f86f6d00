"""Serial flashing of ESP chips with esptool's Python API, one job per port, in worker threads.

esptool (GPL-2.0-or-later, docs/firmware.md) runs in ROM mode (no flasher stub): detect the chip,
refuse an image for another chip, attach the flash, optionally erase it, write without
compression and verify by MD5, then hard-reset. Progress goes to a callback per job.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from esptool.cmds import attach_flash, detect_chip, detect_flash_size, reset_chip, write_flash
from esptool.loader import ESPLoader
from esptool.logger import TemplateLogger, log
from esptool.util import FatalError, flash_size_bytes
from serial import SerialException

_LOGGER = logging.getLogger(__name__)

DEFAULT_BAUD = 460800
ROM_BAUD = 115200  # what every ROM bootloader speaks first, and the fallback
SECTOR = 4096
type Report = Callable[[str, int], None]  # (stage, percent)


class FlashError(Exception):
    """A flash that failed, with a message for the user."""


@dataclass(frozen=True, slots=True)
class FlashJob:
    """What to write where: `data` starts at flash address `offset`."""

    port: str
    data: bytes
    offset: int
    target: str
    merged: bool = False  # raw flash content: all-0xFF sectors are skipped
    baud: int = DEFAULT_BAUD
    erase: bool = False
    connect_mode: str = "default-reset"
    connect_attempts: int = 3


_current = threading.local()  # the running job's Report, per worker thread


class _Logger(TemplateLogger):  # type: ignore[misc]  # esptool is untyped
    """esptool's output: progress to the job's callback, text to the gateway's debug log."""

    def print(self, *args: Any, **_kwargs: Any) -> None:
        text = " ".join(str(a) for a in args).strip()
        if text.startswith("Verifying"):
            _report("verifying", 100)
        if text:
            _LOGGER.debug("esptool: %s", text)

    def note(self, message: str) -> None:
        _LOGGER.debug("esptool note: %s", message)

    def warning(self, message: str) -> None:
        _LOGGER.info("esptool warning: %s", message)

    def error(self, message: str) -> None:
        _LOGGER.info("esptool error: %s", message)

    def stage(self, finish: bool = False) -> None:
        pass

    def progress_bar(self, cur_iter: int, total_iters: int, prefix: str = "", suffix: str = "",
                     bar_length: int = 30) -> None:  # fmt: skip
        if prefix.startswith("Writing") and total_iters:
            _report("writing", min(99, cur_iter * 100 // total_iters))

    def set_verbosity(self, verbosity: str) -> None:
        pass


def _report(stage: str, percent: int) -> None:
    report: Report | None = getattr(_current, "report", None)
    if report is not None:
        report(stage, percent)


log.set_logger(_Logger())


def chip_target(esp: ESPLoader) -> str:
    """esptool's chip name as a firmware target: "ESP32-C3" → "esp32c3"."""
    return str(esp.CHIP_NAME).lower().replace("-", "")


def regions(data: bytes, offset: int) -> list[tuple[int, bytes]]:
    """Merged flash content as (address, bytes) runs without its all-0xFF 4 KiB sectors."""
    runs: list[tuple[int, bytes]] = []
    start: int | None = None
    erased = b"\xff" * SECTOR
    for position in range(0, len(data), SECTOR):
        sector = data[position : position + SECTOR]
        if sector == erased[: len(sector)]:
            if start is not None:
                runs.append((offset + start, data[start:position]))
                start = None
        elif start is None:
            start = position
    if start is not None:
        runs.append((offset + start, data[start:]))
    return runs


def _erase_all(esp: ESPLoader, job: FlashJob, report: Report) -> None:
    """Erase the whole flash. The ROM has no erase command: FLASH_BEGIN over all of it erases."""
    size = detect_flash_size(esp)
    if size is None:
        raise FlashError(f"{job.port}: the flash size is unknown, so it cannot be erased whole")
    report("erasing", 0)
    esp.flash_begin(flash_size_bytes(size), 0)
    report("erasing", 100)


def flash(job: FlashJob, report: Report) -> None:
    """(Worker thread) run one flash; raises FlashError with a clear message."""
    _current.report = report
    try:
        report("connecting", 0)
        try:
            esp = detect_chip(job.port, ROM_BAUD, job.connect_mode, False, job.connect_attempts)
        except (FatalError, SerialException, OSError) as err:
            raise FlashError(
                f"no ESP ROM bootloader answered on {job.port}: hold BOOT and retry ({err})"
            ) from None
        try:
            _write(esp, job, report)
        except (FatalError, SerialException, OSError) as err:
            raise FlashError(f"{job.port}: {err}") from None
        finally:
            esp._port.close()  # esptool's API has no close
    finally:
        _current.report = None


def _write(esp: ESPLoader, job: FlashJob, report: Report) -> None:
    if (chip := chip_target(esp)) != job.target:
        raise FlashError(f"image is for {job.target}, chip is {esp.CHIP_NAME}")
    if job.baud != ROM_BAUD:
        try:
            esp.change_baud(job.baud)
        except (FatalError, SerialException, OSError) as err:
            _LOGGER.info("%s (%s): %d baud refused (%s); staying at %d",
                         job.port, chip, job.baud, err, ROM_BAUD)  # fmt: skip
    attach_flash(esp)
    if job.erase:
        _erase_all(esp, job, report)
    report("writing", 0)
    parts = regions(job.data, job.offset) if job.merged else [(job.offset, job.data)]
    write_flash(esp, parts, no_compress=True)  # verifies each part by MD5
    report("rebooting", 100)
    try:
        reset_chip(esp, "hard-reset")
    except (SerialException, OSError) as err:  # e.g. a port without RTS
        _LOGGER.info("%s: hard reset failed (%s); reset the board by hand", job.port, err)
