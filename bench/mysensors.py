"""MySensors bench: lines/s through the MySensors provider, serial side on a pseudo-terminal.

Runs a real gateway in-process (temporary data dir, API on loopback, no zeroconf) whose MySensors
provider opens the slave side of a pty through serialx, exactly as it opens a USB serial gateway.
A writer thread plays the serial gateway on the master side:

1. presentation: `--nodes` nodes with 4 children each present themselves; wait until all are
   announced;
2. throttled: set lines (temperature, humidity, switch, energy: ~20 bytes) paced at the byte
   rate of `--baud` 8N1 (10 bits a byte: 11,520 bytes/s at 115,200 baud) for `--seconds` s.
   The ceiling is that byte rate over the mean line length; the provider should keep up with it;
3. unthrottled: `--lines` lines written as fast as the pty takes them.

`processed` counts lines the provider took from the link, `dropped` the gateway's drops (the
`--noise` fraction of lines is malformed on purpose: dropped should equal `noise_lines`),
`submitted` the messages handed to the processor and `lost` lines written but never processed.
Figures are printed for people, then the last line is one JSON object for tools. Exits 0 when
it ran. Run: `.venv/bin/python bench/mysensors.py [--nodes N] [--seconds S] [--lines N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import select
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

from edgeiot_gateway.config import parse_config
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.providers import mysensors

CHILDREN = ((10, 6, "Temperature"), (11, 7, "Humidity"), (12, 3, "Relay"), (13, 13, "Meter"))
FIRST_NODE = 100  # three-digit node ids, as in a grown network
DEADLINE = 55.0  # the whole bench never runs longer
IDLE_TIMEOUT = 5.0  # no progress for this long: stop waiting for the rest


def set_line(rng: random.Random, nodes: int) -> bytes:
    """One typical set line of a random node (about 20 bytes with its newline)."""
    node = FIRST_NODE + rng.randrange(nodes)
    match rng.randrange(4):
        case 0:
            return f"{node};10;1;0;0;{rng.uniform(-10, 35):.2f}\n".encode()
        case 1:
            return f"{node};11;1;0;1;{rng.uniform(20, 90):.1f}\n".encode()
        case 2:
            return f"{node};12;1;0;2;{rng.randint(0, 1)}\n".encode()
    return f"{node};13;1;0;18;{rng.uniform(0, 99999):.3f}\n".encode()


def write_all(fd: int, data: bytes, stop: threading.Event | None = None) -> None:
    """Write everything to the non-blocking pty master, waiting while its buffer is full."""
    view, offset = memoryview(data), 0
    while offset < len(view) and not (stop is not None and stop.is_set()):
        try:
            offset += os.write(fd, view[offset : offset + 65536])
        except BlockingIOError:
            select.select([], [fd], [], 0.1)


NOISE = (b"garbage\n", b"1;2;3\n", b"999;1;1;0;0;1\n", b"\xff\xfe;1;1;0;0;1\n")


def make_lines(rng: random.Random, nodes: int, count: int, noise: float) -> tuple[list[bytes], int]:
    """`count` lines, a `noise` fraction of them malformed; returns them and the noise count."""
    lines, bad = [], 0
    for _ in range(count):
        if rng.random() < noise:
            lines.append(rng.choice(NOISE))
            bad += 1
        else:
            lines.append(set_line(rng, nodes))
    return lines, bad


class Writer(threading.Thread):
    """Writes lines to the pty master, paced to `rate` bytes/s (None: as fast as it takes)."""

    def __init__(self, fd: int, lines: list[bytes], rate: float | None, seconds: float) -> None:
        super().__init__(name="bench-mysensors-writer", daemon=True)
        self.fd, self.lines, self.rate, self.seconds = fd, lines, rate, seconds
        self.sent = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        if self.rate is None:
            self._burst()
        else:
            self._paced(self.rate)

    def _burst(self) -> None:
        write_all(self.fd, b"".join(self.lines), self.stop_event)
        self.sent = len(self.lines)

    def _paced(self, rate: float) -> None:
        start = time.monotonic()
        written = 0
        index = 0
        while not self.stop_event.is_set():
            elapsed = time.monotonic() - start
            if elapsed >= self.seconds:
                break
            budget = rate * elapsed - written
            chunk = []
            while index < len(self.lines) and budget >= len(self.lines[index]):
                budget -= len(self.lines[index])
                written += len(self.lines[index])
                chunk.append(self.lines[index])
                index += 1
            if chunk:
                write_all(self.fd, b"".join(chunk), self.stop_event)
                self.sent = index
            time.sleep(0.002)


def drain_master(fd: int) -> None:
    """Read what the provider wrote (its version request) so the pty never fills up."""
    try:
        while os.read(fd, 65536):
            pass
    except (BlockingIOError, OSError):
        pass


async def wait_until(predicate: Any, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return bool(predicate())


async def wait_processed(provider: mysensors.MySensorsProvider, target: int) -> bool:
    """Until the provider has taken `target` lines; False when it stalls for IDLE_TIMEOUT."""
    last, last_change = provider.stats["received"], time.monotonic()
    while provider.stats["received"] < target:
        await asyncio.sleep(0.005)
        if provider.stats["received"] != last:
            last, last_change = provider.stats["received"], time.monotonic()
        elif time.monotonic() - last_change > IDLE_TIMEOUT:
            return False
    return True


async def phase(
    provider: mysensors.MySensorsProvider,
    gateway: Gateway,
    master: int,
    lines: list[bytes],
    *,
    rate: float | None,
    seconds: float,
) -> dict[str, Any]:
    """Write lines (paced or not) and measure how fast the provider takes them."""
    received0, dropped0 = provider.stats["received"], gateway.drops.total
    submitted0 = gateway.processor.processed
    writer = Writer(master, lines, rate, seconds)
    start = time.monotonic()
    writer.start()
    try:
        while writer.is_alive():
            await asyncio.sleep(0.01)
            drain_master(master)
        complete = await wait_processed(provider, received0 + writer.sent)
    finally:
        writer.stop_event.set()
        await asyncio.to_thread(writer.join, 5)
    elapsed = time.monotonic() - start
    processed = provider.stats["received"] - received0
    return {
        "sent": writer.sent,
        "processed": processed,
        "dropped": gateway.drops.total - dropped0,
        "lost": writer.sent - processed,
        "submitted": gateway.processor.processed - submitted0,  # messages to the processor
        "seconds": elapsed,
        "lines_per_s": processed / elapsed if elapsed else 0.0,
        "complete": complete,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    os.set_blocking(master, False)
    with tempfile.TemporaryDirectory(prefix="bench-mysensors-") as tmp:
        config = {
            "gateway_id": "bench-gw",
            "data_dir": str(Path(tmp) / "gw"),
            "api": {"host": "127.0.0.1", "port": 0, "advertise": False},
            "providers": [
                {
                    "type": "mysensors",
                    "transport": "serial",
                    "device": path,
                    "baud_rate": args.baud,
                    "state_file": str(Path(tmp) / "mysensors.json"),
                    "announce_delay": 0.2,
                }
            ],
        }
        gateway = Gateway(parse_config(config, Path(tmp)))
        await gateway.start()
        try:
            provider = gateway.providers["mysensors"]
            assert isinstance(provider, mysensors.MySensorsProvider)
            if not await wait_until(lambda: provider.connected, 10):
                raise RuntimeError(f"the provider did not open {path}")
            drain_master(master)

            # 1. presentation
            for node in range(FIRST_NODE, FIRST_NODE + args.nodes):
                lines = [f"{node};255;0;0;17;2.3.2", f"{node};255;3;0;11;Bench node"]
                lines += [f"{node};{c};0;0;{s};{text}" for c, s, text in CHILDREN]
                await asyncio.to_thread(
                    write_all, master, "".join(f"{line}\n" for line in lines).encode()
                )
            wanted = {f"ms-{n}" for n in range(FIRST_NODE, FIRST_NODE + args.nodes)}
            if not await wait_until(lambda: wanted <= gateway.processor.nodes.keys(), 20):
                raise RuntimeError("not every node was announced")

            rng = random.Random(1)
            bytes_per_s = args.baud / 10  # 8N1: a start bit, 8 data bits, a stop bit
            sample = [set_line(rng, args.nodes) for _ in range(20_000)]
            bytes_per_line = sum(map(len, sample)) / len(sample)
            ceiling = bytes_per_s / bytes_per_line

            # 2. throttled to the serial line rate
            count = int(ceiling * args.seconds) + 1000
            paced, _ = make_lines(rng, args.nodes, count, args.noise)
            throttled = await phase(
                provider, gateway, master, paced, rate=bytes_per_s, seconds=args.seconds
            )
            throttled["noise"] = sum(1 for line in paced[: throttled["sent"]] if line in NOISE)
            # 3. unthrottled through the pty
            burst, noise = make_lines(rng, args.nodes, args.lines, args.noise)
            unthrottled = await phase(provider, gateway, master, burst, rate=None, seconds=0)
            unthrottled["noise"] = noise
            drain_master(master)
            return {
                "nodes": args.nodes,
                "baud": args.baud,
                "bytes_per_line": bytes_per_line,
                "ceiling_lines_per_s": ceiling,
                "throttled": throttled,
                "unthrottled": unthrottled,
                "field_values": sum(
                    1
                    for node in gateway.processor.nodes.values()
                    for source in node.sources.values()
                    for field in source.fields.values()
                    if field.value is not None
                ),
                "drops": dict(gateway.drops.counts),
            }
        finally:
            await gateway.stop()
            os.close(master)
            os.close(slave)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=50, help="simulated nodes (1-155)")
    parser.add_argument("--seconds", type=float, default=5.0, help="throttled phase length")
    parser.add_argument("--lines", type=int, default=200_000, help="unthrottled lines")
    parser.add_argument("--baud", type=int, default=115_200, help="serial line rate")
    parser.add_argument(
        "--noise", type=float, default=0.01, help="fraction of malformed lines (dropped)"
    )
    args = parser.parse_args()
    args.nodes = max(1, min(args.nodes, 255 - FIRST_NODE))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.monotonic()
    result = asyncio.run(asyncio.wait_for(run(args), DEADLINE))
    throttled, unthrottled = result["throttled"], result["unthrottled"]
    print(f"MySensors provider over a pty, {result['nodes']} nodes x {len(CHILDREN)} children")
    print(f"  lines: {result['bytes_per_line']:.1f} bytes on average")
    print(f"  throttled to {args.baud} baud (8N1, {args.baud / 10:.0f} bytes/s): "
          f"ceiling {result['ceiling_lines_per_s']:.0f} lines/s, "
          f"handled {throttled['lines_per_s']:.0f} lines/s over {throttled['seconds']:.1f} s "
          f"({throttled['processed']} of {throttled['sent']})")  # fmt: skip
    print(f"  unthrottled: {unthrottled['lines_per_s']:.0f} lines/s "
          f"({unthrottled['processed']} of {unthrottled['sent']} in "
          f"{unthrottled['seconds']:.2f} s, "
          f"{unthrottled['lines_per_s'] / result['ceiling_lines_per_s']:.0f}x the serial "
          "ceiling)")  # fmt: skip
    dropped = throttled["dropped"] + unthrottled["dropped"]
    lost = throttled["lost"] + unthrottled["lost"]
    noise = throttled["noise"] + unthrottled["noise"]
    print(f"  dropped {dropped} (of {noise} malformed lines sent), lost {lost}; "
          f"drops by reason: {result['drops'] or 'none'}")  # fmt: skip
    submitted = throttled["submitted"] + unthrottled["submitted"]
    print(f"  {submitted} field updates reached the processor")
    summary = {
        "bench": "mysensors",
        "nodes": result["nodes"],
        "baud": args.baud,
        "bytes_per_line": round(result["bytes_per_line"], 2),
        "ceiling_lines_per_s": round(result["ceiling_lines_per_s"], 1),
        "throttled_lines_per_s": round(throttled["lines_per_s"], 1),
        "throttled_processed": throttled["processed"],
        "lines_per_s": round(unthrottled["lines_per_s"], 1),
        "unthrottled_processed": unthrottled["processed"],
        "processed": throttled["processed"] + unthrottled["processed"],
        "submitted": submitted,
        "noise_lines": noise,
        "dropped": dropped,
        "lost": lost,
        "elapsed_s": round(time.monotonic() - started, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
