"""MySensors OTA bench: time to update a node with a 30 KiB image over a serial gateway on a pty.

Runs a real gateway in-process (temporary data dir, API on loopback, no zeroconf) whose MySensors
provider opens the slave side of a pty. The master side plays the serial gateway and a node that
updates as MYSBootloader does: config request, then one ST_FIRMWARE_REQUEST per 16-byte block
from the last to the first, each sent only after the answer to the previous one arrived.

Two runs of `install_firmware` with the same `--kib` image:

1. paced: each line takes its time on the wire at `--baud` 8N1 (10 bits a byte) before the other
   side sees it. The protocol limit is the wire time of every line of the update (the request
   and answer of the config, twice, and of each block); `ratio_to_protocol_limit` is that limit
   over the measured time (1.0: nothing is added to the wire time). The node runs in a worker
   thread and sleeps each line's wire time; those sleeps overshoot by a fraction of a
   millisecond each, which the measured time includes;
2. unthrottled: lines as fast as the pty carries them: the gateway's own time per block.

A real node is slower still (radio hops, flash writes); this measures the gateway's part. The
last line is one JSON object. Exits 0 when it ran. Run: `.venv/bin/python bench/mysensors_ota.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import select
import struct
import tempfile
import time
import tty
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from edgeiot_gateway.config import parse_config
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.providers import mysensors

NODE = 5
STREAM = f"{NODE};255;4;0;"
DEADLINE = 110.0  # the whole bench never runs longer
LINE_TIMEOUT = 5.0
GOAL = 0.8  # ratio_to_protocol_limit


class Link:
    """(A worker thread) the master side of the pty: each line arrives after its wire time."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.baud: int | None = None
        self.wire_seconds = 0.0  # of the lines this node exchanged, at `baud`
        self._lines: list[str] = []
        self._rest = b""

    def _wire(self, size: int) -> None:
        if self.baud:
            self.wire_seconds += size * 10 / self.baud
            time.sleep(size * 10 / self.baud)  # a thread's sleep: ~0.1 ms precise

    def send(self, line: str) -> None:
        data = f"{line}\n".encode()
        self._wire(len(data))
        os.write(self.master, data)

    def receive(self, prefix: str) -> str:
        deadline = time.monotonic() + LINE_TIMEOUT
        while True:
            while self._lines:
                line = self._lines.pop(0)
                if line.startswith(prefix):
                    self._wire(len(line) + 1)
                    return line.rsplit(";", 1)[1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line {prefix!r}")
            if select.select([self.master], [], [], remaining)[0]:
                *lines, self._rest = (self._rest + os.read(self.master, 65536)).split(b"\n")
                self._lines.extend(line.decode() for line in lines)


def node_update(link: Link, config: tuple[int, int, int, int]) -> int:
    """(Worker thread) the node: config request, all blocks, config again; returns blocks."""
    link.receive(f"{NODE};255;3;0;13;")  # I_REBOOT
    link.send(f"{STREAM}0;{struct.pack('<5H', *config, 0x0200).hex()}")
    offered = struct.unpack("<4H", bytes.fromhex(link.receive(f"{STREAM}1;")))
    for block in range(offered[2] - 1, -1, -1):
        link.send(f"{STREAM}2;{struct.pack('<3H', offered[0], offered[1], block).hex()}")
        link.receive(f"{STREAM}3;")
    link.send(f"{STREAM}0;{struct.pack('<5H', *offered, 0x0200).hex()}")
    link.receive(f"{STREAM}1;")
    return int(offered[2])


def intel_hex(data: bytes) -> bytes:
    lines = []
    for start in range(0, len(data), 16):
        record = struct.pack(">BHB", len(data[start : start + 16]), start, 0)
        record += data[start : start + 16]
        lines.append(":" + (record + bytes([-sum(record) & 0xFF])).hex().upper())
    return ("\n".join([*lines, ":00000001FF"]) + "\n").encode()


async def one_run(gateway: Gateway, link: Link, baud: int | None,
                  entry: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    provider = gateway.providers["mysensors"]
    assert isinstance(provider, mysensors.MySensorsProvider)
    link.baud, link.wire_seconds = baud, 0.0
    stages: list[str] = []
    node = gateway.processor.nodes[f"ms-{NODE}"]
    path = gateway.firmware.path(entry)
    started = time.monotonic()
    install = asyncio.create_task(provider.install_firmware(
        node, entry, path, lambda stage, _p, _e: stages.append(stage)))  # fmt: skip
    blocks = await asyncio.to_thread(node_update, link, (10, 1, 0, 0xFFFF))
    await asyncio.wait_for(install, LINE_TIMEOUT)
    seconds = time.monotonic() - started
    return {
        "blocks": blocks,
        "seconds": round(seconds, 3),
        "protocol_limit_s": round(link.wire_seconds, 3),
        "ms_per_block": round(seconds * 1000 / blocks, 3),
        "done": stages[-1] == "done",
    }


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def run(args: argparse.Namespace) -> dict[str, Any]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    with tempfile.TemporaryDirectory(prefix="bench-mysensors-ota-") as tmp:
        config = {
            "gateway_id": "bench-gw",
            "data_dir": str(Path(tmp) / "gw"),
            "api": {"host": "127.0.0.1", "port": 0, "advertise": False},
            "providers": [{"type": "mysensors", "transport": "serial",
                           "device": os.ttyname(slave), "announce_delay": 0.05}],
        }  # fmt: skip
        gateway = Gateway(parse_config(config, Path(tmp)))
        link = Link(master)
        await gateway.start()
        try:
            await asyncio.to_thread(link.receive, "0;255;3;0;2;")  # the provider opened it
            await asyncio.to_thread(link.send, f"{NODE};255;0;0;17;2.3.2")
            for _ in range(250):
                if f"ms-{NODE}" in gateway.processor.nodes:
                    break
                await asyncio.sleep(0.02)
            binary = random.Random(1).randbytes(args.kib * 1024)
            meta = {"name": "bench", "version": "1", "target": "mysensors",
                    "mysensors": {"type": 10, "version": 2}}  # fmt: skip
            entry = await gateway.firmware.add(meta, chunks(intel_hex(binary)))
            paced = await one_run(gateway, link, args.baud, entry)
            unthrottled = await one_run(gateway, link, None, entry)
            return {"paced": paced, "unthrottled": unthrottled}
        finally:
            await gateway.stop()
            os.close(master)
            os.close(slave)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kib", type=int, default=30, help="image size in KiB")
    parser.add_argument("--baud", type=int, default=115_200, help="serial line rate")
    return parser.parse_args(argv)


def summary(args: argparse.Namespace) -> dict[str, Any]:
    """Run the bench, print its figures, and return them (the JSON line)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = asyncio.run(asyncio.wait_for(run(args), DEADLINE))
    paced, unthrottled = result["paced"], result["unthrottled"]
    ratio = paced["protocol_limit_s"] / paced["seconds"]
    print(f"MySensors OTA of a {args.kib} KiB image ({paced['blocks']} blocks) over a pty")
    print(f"  paced at {args.baud} baud: {paced['seconds']:.2f} s, protocol limit "
          f"{paced['protocol_limit_s']:.2f} s, ratio {ratio:.3f} (goal >= {GOAL}: "
          f"{'met' if ratio >= GOAL else 'MISSED'})")  # fmt: skip
    print(f"  unthrottled: {unthrottled['seconds']:.2f} s, "
          f"{unthrottled['ms_per_block']:.2f} ms per block")  # fmt: skip
    return {
        "image_kib": args.kib,
        "blocks": paced["blocks"],
        "baud": args.baud,
        "ota_s_115200": paced["seconds"],
        "protocol_limit_s_115200": paced["protocol_limit_s"],
        "ratio_to_protocol_limit": round(ratio, 4),
        "ota_s_unthrottled": unthrottled["seconds"],
        "ms_per_block_unthrottled": unthrottled["ms_per_block"],
        "done": paced["done"] and unthrottled["done"],
    }


def main() -> int:
    print(json.dumps(summary(parse_args())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
