"""CAN ingest bench: a saturated 1 Mbit/s classical CAN bus → CAN provider → gateway.

A generated DBC describes `NODES` nodes of `MESSAGES` 8-byte messages each (5 signals: a rolling
counter, a scaled signed temperature, a scaled voltage, an enum and a flag), every message cyclic
at 10 ms: 80 ids x 100 Hz = 8,000 frames/s, what a 1 Mbit/s bus carries when saturated with
8-byte standard frames (~125 bits each with stuffing). The gateway runs in this process (real
processor, store and API) with its CAN provider on python-can's `virtual` interface; python-can's
virtual bus only connects buses of one process, so the sender is a thread that puts the frames
into the provider's receive queue the way VirtualBus.send does (without its per-frame deepcopy,
so the sender stays cheap; --real-send uses VirtualBus.send). Its own CPU time is subtracted.

Phases:
1. saturated: `--rate` frames/s (default 8000) for `--seconds` s (default 30), paced per ms;
   frames in must equal frames decoded, nothing dropped; CPU share of the gateway (process CPU
   time minus the sender thread's, over wall time) and event-loop lag are reported;
2. ceiling: `--ceiling-frames` frames (default 200,000) as fast as the gateway takes them (full
   gateway; the sender keeps at most 20,000 frames outstanding, as a bus cannot run ahead);
3. decode ceiling: the provider's decode path alone on one thread (frames pushed into its inbox
   and drained in batches; submit is a no-op), in frames per CPU second.

Every phase is bounded: the saturated phase by --seconds, the others by a 60 s sender limit and
a 15 s settle timeout; a watchdog ends the process after --seconds + 120 s.

Figures are printed for people, then the last line is one JSON object for tools.
Run: `.venv/bin/python bench/can_bus.py [--seconds 30] [--rate 8000] [--changing counter|all]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
import cantools
from can.interfaces import virtual

from edgeiot_gateway.config import parse_config
from edgeiot_gateway.diagnostics import DropCounter
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.providers import ProviderContext
from edgeiot_gateway.providers.can import CanProvider

NODES = 10
MESSAGES = 8  # per node
CYCLE_MS = 10
BASE_ID = 0x100
STATES = ("Off", "Idle", "Run", "Fault")

SATURATED_RATE = 8000  # frames/s on a 1 Mbit/s bus, 8-byte standard frames
GOAL_HEADROOM = 2  # the full gateway's ceiling, in saturated buses
MAX_QUEUE = 20_000  # unthrottled sender: keep at most this many frames waiting
SETTLE_TIMEOUT = 15.0  # after the sender stopped: all frames handled within this
MAX_SENDER_SECONDS = 60.0  # an unthrottled sender stops after this
HARD_LIMIT_EXTRA = 120.0  # the whole bench never runs longer than its phases plus this


def write_dbc(path: Path) -> None:
    """The bench DBC: NODES x MESSAGES cyclic 8-byte messages."""
    lines = ['VERSION ""', "", "NS_ :", "", "BS_:", ""]
    nodes = [f"ECU{n:02d}" for n in range(NODES)]
    lines += ["BU_: GW " + " ".join(nodes), ""]
    attributes, choices = [], []
    for n, node in enumerate(nodes):
        for m in range(MESSAGES):
            frame_id = BASE_ID + n * MESSAGES + m
            lines += [
                f"BO_ {frame_id} {node}_M{m}: 8 {node}",
                ' SG_ Counter : 0|8@1+ (1,0) [0|255] "" GW',
                ' SG_ Temperature : 8|16@1- (0.1,0) [-40|125] "degC" GW',
                ' SG_ Voltage : 24|16@1+ (0.01,0) [0|60] "V" GW',
                ' SG_ State : 40|2@1+ (1,0) [0|3] "" GW',
                ' SG_ Flag : 42|1@1+ (1,0) [0|1] "" GW',
                "",
            ]
            attributes.append(f'BA_ "GenMsgCycleTime" BO_ {frame_id} {CYCLE_MS};')
            names = " ".join(f'{i} "{s}"' for i, s in enumerate(STATES))
            choices.append(f"VAL_ {frame_id} State {names} ;")
    lines += ['BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;', 'BA_DEF_DEF_ "GenMsgCycleTime" 0;']
    lines += attributes + choices
    path.write_text("\n".join(lines) + "\n")


def make_frames(dbc: Path, changing: str) -> list[list[bytes]]:
    """Per id, 256 payloads (one per counter value) to cycle through."""
    database = cantools.database.load_file(dbc)
    frames = []
    for message in sorted(database.messages, key=lambda m: m.frame_id):
        payloads = []
        for counter in range(256):
            everything = changing == "all"
            payloads.append(
                message.encode(
                    {
                        "Counter": counter,
                        "Temperature": 20 + (counter if everything else counter // 64) * 0.1,
                        "Voltage": 12 + (counter % 100) * 0.01 if everything else 12.5,
                        "State": counter % 4 if everything else 2,
                        "Flag": counter % 2 if everything else 1,
                    }
                )
            )
        frames.append(payloads)
    return frames


@dataclass
class SenderResult:
    sent: int = 0
    cpu_s: float = 0.0
    wall_s: float = 0.0


class Sender(threading.Thread):
    """Puts frames on the virtual channel: paced at `rate` frames/s, or unthrottled (rate 0)."""

    def __init__(
        self,
        channel: str,
        frames: list[list[bytes]],
        *,
        rate: float,
        seconds: float,
        count: int,
        real_send: bool,
        inbox: Sized,
    ) -> None:
        super().__init__(name="bench-can-sender", daemon=True)
        self.channel, self.frames, self.rate = channel, frames, rate
        self.seconds, self.count, self.real_send = seconds, count, real_send
        self.inbox = inbox  # the provider's: frames read but not yet decoded
        self.result = SenderResult()
        self.stop_event = threading.Event()

    def run(self) -> None:
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        peer = can.Bus(interface="virtual", channel=self.channel) if self.real_send else None
        queues = [q for q in virtual.channels[self.channel] if peer is None or q is not peer.queue]
        ids = [BASE_ID + i for i in range(len(self.frames))]
        per_id = len(self.frames)
        sent = 0
        deadline = wall0 + self.seconds
        try:
            while not self.stop_event.is_set():
                now = time.perf_counter()
                if self.rate:
                    if now >= deadline:
                        break
                    due = int((now - wall0) * self.rate) - sent  # frames owed by now
                    if due <= 0:
                        time.sleep(0.0005)
                        continue
                else:
                    if sent >= self.count:
                        break
                    if queues[0].qsize() + len(self.inbox) > MAX_QUEUE:  # as a bus would
                        time.sleep(0.0005)
                        continue
                    due = min(1000, self.count - sent)
                for _ in range(due):
                    index = sent % per_id
                    data = self.frames[index][(sent // per_id) & 0xFF]
                    msg = can.Message(
                        timestamp=time.time(),
                        arbitration_id=ids[index],
                        is_extended_id=False,
                        data=data,
                    )
                    if peer is not None:
                        peer.send(msg)
                    else:
                        for queue in queues:
                            queue.put_nowait(msg)
                    sent += 1
        finally:
            if peer is not None:
                peer.shutdown()
            self.result = SenderResult(sent, time.thread_time() - cpu0, time.perf_counter() - wall0)


class LoopLag:
    """Samples how late a 10 ms sleep wakes up: the event loop's responsiveness."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append((time.perf_counter() - before - 0.01) * 1000)

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        ordered = sorted(self.samples) or [0.0]
        return {
            "loop_lag_p50_ms": round(statistics.median(ordered), 2),
            "loop_lag_p99_ms": round(
                ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0], 2
            ),
            "loop_lag_max_ms": round(ordered[-1], 2),
        }


async def wait_until(predicate: Callable[[], bool], limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.005)
    return predicate()


async def run_sender(sender: Sender) -> SenderResult:
    sender.start()
    await wait_until(lambda: not sender.is_alive(), sender.seconds + MAX_SENDER_SECONDS)
    sender.stop_event.set()
    sender.join(timeout=5)
    return sender.result


def provider_options(args: argparse.Namespace, channel: str, dbc: Path) -> dict[str, Any]:
    return {
        "interface": "virtual",
        "channel": channel,
        "dbc": str(dbc),
        "gateway_node": "GW",
        "batch_delay": args.batch_delay,
    }


async def gateway_phase(
    args: argparse.Namespace,
    dbc: Path,
    frames: list[list[bytes]],
    data_dir: Path,
    *,
    rate: float,
    seconds: float,
    count: int,
    name: str,
) -> dict[str, Any]:
    """Run a gateway with the CAN provider and push frames at it."""
    channel = f"bench-{name}-{os.getpid()}"
    config = parse_config(
        {
            "gateway_id": "bench-gw",
            "data_dir": str(data_dir / name),
            "log_level": "warning",
            "api": {"host": "127.0.0.1", "port": 0, "advertise": False},
            "store": {"flush_interval": 1.0},
            "providers": [{"type": "can", "name": "can"} | provider_options(args, channel, dbc)],
        },
        Path.cwd(),
    )
    gateway = Gateway(config)
    await gateway.start()
    try:
        provider = gateway.providers["can"]
        assert isinstance(provider, CanProvider)
        if not await wait_until(lambda: provider.connected, 10):
            raise RuntimeError("the CAN provider did not connect")
        lag = LoopLag()
        lag.start()
        sender = Sender(
            channel,
            frames,
            rate=rate,
            seconds=seconds,
            count=count,
            real_send=args.real_send,
            inbox=provider.inbox,
        )
        cpu0, wall0 = time.process_time(), time.perf_counter()
        processed0 = gateway.processor.processed
        result = await run_sender(sender)
        settled = await wait_until(
            lambda: provider.frames_received >= result.sent and not provider.inbox,
            SETTLE_TIMEOUT,
        )
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0 - result.cpu_s
        figures = await lag.stop()
        diagnostics = provider.diagnostics()
        return {
            "sent": result.sent,
            "settled": settled,
            "sender_wall_s": result.wall_s,
            "wall_s": wall,
            "gateway_cpu_s": cpu,
            "sender_cpu_s": result.cpu_s,
            "received": diagnostics["frames_received"],
            "decoded": diagnostics["frames_decoded"],
            "unchanged": diagnostics["frames_unchanged"],
            "drops": dict(gateway.drops.counts),
            "messages": gateway.processor.processed - processed0,
            "nodes_online": diagnostics["nodes_online"],
            **figures,
        }
    finally:
        await gateway.stop()


async def decode_phase(
    args: argparse.Namespace, dbc: Path, frames: list[list[bytes]], count: int
) -> dict[str, Any]:
    """The provider's decode path alone, on one thread: frames go straight into its inbox and
    are drained in batches, as the reader thread and the event loop would; submit is a no-op."""
    submitted = [0]

    def submit(_message: object, _origin: str) -> None:
        submitted[0] += 1

    context = ProviderContext("bench", submit, DropCounter(), lambda _n, _c: None, dbc.parent)
    channel = f"bench-decode-{os.getpid()}"
    provider = CanProvider("can", context, provider_options(args, channel, dbc))
    await provider.start()
    try:
        per_id = len(frames)
        messages = [
            can.Message(
                arbitration_id=BASE_ID + i % per_id,
                is_extended_id=False,
                data=frames[i % per_id][(i // per_id) & 0xFF],
            )
            for i in range(count)
        ]
        inbox, drain = provider.inbox, provider._drain
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for start in range(0, count, 1000):
            inbox.extend(messages[start : start + 1000])
            while inbox:
                drain()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        return {
            "decoded": provider.frames_decoded,
            "wall_s": wall,
            "cpu_s": cpu,
            "submitted": submitted[0],
        }
    finally:
        await provider.stop()


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def progress(text: str) -> None:
    print(f"can: {text}", file=sys.stderr, flush=True)


def lost(phase: dict[str, Any]) -> int:
    """Frames sent but neither decoded nor found unchanged, plus values dropped downstream."""
    frames = max(0, phase["sent"] - phase["decoded"] - phase["unchanged"])
    return frames + sum(n for reason, n in phase["drops"].items() if reason != "can_overflow")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgeiot-can-bench-") as tmp:
        data_dir = Path(tmp)
        dbc = data_dir / "bench.dbc"
        write_dbc(dbc)
        frames = make_frames(dbc, args.changing)
        ids = len(frames)
        print(
            f"DBC: {NODES} nodes, {ids} messages of 8 bytes, cycle {CYCLE_MS} ms "
            f"({ids * 1000 // CYCLE_MS} frames/s nominal); payload changes: {args.changing}"
        )

        print(f"\n1. saturated bus: {args.rate:.0f} frames/s for {args.seconds:.0f} s")
        progress(f"saturated phase, {args.seconds:.0f} s")
        sat = await gateway_phase(
            args,
            dbc,
            frames,
            data_dir,
            rate=args.rate,
            seconds=args.seconds,
            count=0,
            name="saturated",
        )
        dropped = lost(sat)
        rate_in = sat["sent"] / sat["sender_wall_s"]
        cpu_share = sat["gateway_cpu_s"] / sat["wall_s"]
        zero_drops = dropped == 0 and sat["decoded"] + sat["unchanged"] == sat["sent"]
        print(
            f"   frames in {sat['sent']:,} ({rate_in:,.0f}/s), received {sat['received']:,}, "
            f"decoded {sat['decoded']:,}, unchanged {sat['unchanged']:,}, dropped {dropped}"
            f"{' ' + str(sat['drops']) if sat['drops'] else ''}"
            f"  [goal: every frame decoded, none dropped: {verdict(zero_drops)}]"
        )
        print(f"   processor messages {sat['messages']:,}; nodes online {sat['nodes_online']}")
        print(
            f"   gateway CPU {sat['gateway_cpu_s']:.2f} s over {sat['wall_s']:.2f} s = "
            f"{cpu_share:.1%} of one core (sender thread {sat['sender_cpu_s']:.2f} s excluded)"
        )
        print(
            f"   event-loop lag p50 {sat['loop_lag_p50_ms']} ms, p99 {sat['loop_lag_p99_ms']} ms, "
            f"max {sat['loop_lag_max_ms']} ms"
        )

        count = args.ceiling_frames
        print(f"\n2. ceiling, full gateway: {count:,} frames unthrottled")
        progress("ceiling phase")
        top = await gateway_phase(
            args,
            dbc,
            frames,
            data_dir,
            rate=0,
            seconds=0,
            count=count,
            name="ceiling",
        )
        ceiling = (top["decoded"] + top["unchanged"]) / top["wall_s"]
        top_dropped = lost(top)
        headroom = ceiling >= GOAL_HEADROOM * args.rate and top_dropped == 0
        print(
            f"   {top['decoded']:,} decoded in {top['wall_s']:.2f} s = {ceiling:,.0f} frames/s "
            f"({ceiling / args.rate:.1f}x the saturated bus); dropped {top_dropped}; "
            f"CPU {top['gateway_cpu_s'] / top['wall_s']:.0%}"
            f"  [goal: >= {GOAL_HEADROOM}x the saturated bus: {verdict(headroom)}]"
        )

        print(f"\n3. ceiling, decode path alone (no threads, no processor): {count:,} frames")
        progress("decode phase")
        alone = await decode_phase(args, dbc, frames, count)
        decode_ceiling = alone["decoded"] / alone["cpu_s"]
        print(
            f"   {alone['decoded']:,} decoded with {alone['cpu_s']:.2f} s CPU = "
            f"{decode_ceiling:,.0f} frames/s per core ({alone['submitted']:,} messages submitted)"
        )

        return {
            "bench": "can",
            "duration_s": round(sat["sender_wall_s"], 2),
            "changing": args.changing,
            "frames_in": sat["sent"],
            "frames_per_s": round(rate_in),
            "frames_decoded": sat["decoded"],
            "frames_unchanged": sat["unchanged"],
            "decoded_per_s": round((sat["decoded"]) / sat["sender_wall_s"]),
            "dropped": dropped,
            "processor_messages": sat["messages"],
            "cpu_share": round(cpu_share, 4),
            "gateway_cpu_s": round(sat["gateway_cpu_s"], 3),
            "wall_s": round(sat["wall_s"], 3),
            "loop_lag_p99_ms": sat["loop_lag_p99_ms"],
            "loop_lag_max_ms": sat["loop_lag_max_ms"],
            "ceiling_frames_per_s": round(ceiling),
            "ceiling_dropped": top_dropped,
            "decode_ceiling_frames_per_s": round(decode_ceiling),
            "goal_zero_drops_met": zero_drops,
            "goal_headroom_met": headroom,
        }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="saturated phase (s)")
    parser.add_argument("--rate", type=float, default=SATURATED_RATE, help="frames/s offered")
    parser.add_argument("--ceiling-frames", type=int, default=200_000)
    parser.add_argument(
        "--changing",
        choices=("counter", "all"),
        default="counter",
        help="counter: one signal changes per frame; all: every signal",
    )
    parser.add_argument(
        "--batch-delay", type=float, default=0.005, help="the provider's batch_delay option (s)"
    )
    parser.add_argument(
        "--real-send", action="store_true", help="send through VirtualBus.send (deepcopy per frame)"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate <= 0 or args.ceiling_frames <= 0:
        parser.error("--seconds, --rate and --ceiling-frames must be positive")
    return args


def run() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.ERROR)
    limit = args.seconds + HARD_LIMIT_EXTRA
    watchdog = threading.Timer(
        limit, lambda: (print(f"bench: over {limit:.0f} s, aborted", file=sys.stderr), os._exit(2))
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        summary = asyncio.run(main(args))
    except KeyboardInterrupt:
        print("can: interrupted", file=sys.stderr)
        return 130
    finally:
        watchdog.cancel()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(run())
