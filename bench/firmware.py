"""Firmware updates: serial flash throughput, MySensors OTA time, HTTP OTA serving rate.

Serial: the simulated ESP32-C3 ROM bootloader (tests/gateway/esp_rom_sim.py) on a pty takes and
sends bytes no faster than a UART at the current baud rate (10 bits a byte), so the figure is what
esptool's ROM protocol (SLIP framing, 1 KiB FLASH_DATA blocks each waiting for its answer, no
compression) makes of the line: written bytes/s ÷ (baud / 10). The time runs from the first
`writing` report to `verifying` (connecting and the MD5 check are not in it). The simulator runs
in a process of its own, as a chip is a device of its own (in esptool's process the two would
share one interpreter lock).
MySensors OTA (bench/mysensors_ota.py) and HTTP OTA serving (bench/ota_http.py) run after it with
their defaults, and their figures join the last line. Each also runs on its own.
Run: `.venv/bin/python bench/firmware.py [--seconds S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mysensors_ota
import ota_http

from edgeiot_gateway.updates.serial_flash import FlashJob, flash
from tests.gateway.esp_rom_sim import EspRomSimulator
from tests.gateway.firmware_files import esp_image

GOAL = 0.8
BAUDS = (115200, 921600)


def _simulator(conn: Connection, image_size: int) -> None:
    """(Child process) the ROM on its own CPU time, as a real chip is: not sharing esptool's GIL.
    Sends the pty's path, then, when told to stop, whether the image arrived (sha256)."""
    sim = EspRomSimulator("esp32c3", line_rate=True).start()
    conn.send(sim.device)
    conn.recv()
    written = bytes(sim.flash[0x10000 : 0x10000 + image_size])
    sim.stop()
    conn.send(hashlib.sha256(written).hexdigest())


def measure(baud: int, seconds: float) -> float:
    """The ratio of flash throughput to the line rate at `baud` for about `seconds` of writing."""
    size = int(baud / 10 * seconds) // 4096 * 4096
    image = esp_image("esp32c3", 1, size - 64)
    ours, theirs = mp.Pipe()
    child = mp.get_context("fork").Process(target=_simulator, args=(theirs, len(image)))
    child.start()
    marks: dict[str, float] = {}

    def report(stage: str, _percent: int) -> None:
        marks.setdefault(stage, time.monotonic())

    try:
        if not ours.poll(10):
            raise RuntimeError("the ROM simulator did not start")
        device = ours.recv()
        flash(FlashJob(device, image, 0x10000, "esp32c3", baud=baud,
                       connect_mode="no-reset", connect_attempts=1), report)  # fmt: skip
        ours.send("stop")
        if not ours.poll(10) or ours.recv() != hashlib.sha256(image).hexdigest():
            raise RuntimeError("the simulated flash does not hold the image")
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    rate = len(image) / (marks["verifying"] - marks["writing"])
    ratio = rate / (baud / 10)
    print(f"{baud} baud: {len(image)} bytes at {rate:,.0f} B/s = {ratio:.3f} of the line rate "
          f"({'met' if ratio >= GOAL else 'MISSED'}: goal >= {GOAL})")  # fmt: skip
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="writing time per baud rate")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    figures: dict[str, object] = {
        f"ratio_to_line_rate_{baud}": round(measure(baud, args.seconds), 4) for baud in BAUDS
    }
    figures |= mysensors_ota.summary(mysensors_ota.parse_args([]))
    figures |= asyncio.run(ota_http.bench(ota_http.NODES, ota_http.SEGMENTS))
    print(json.dumps(figures))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
