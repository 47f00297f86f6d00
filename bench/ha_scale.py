"""Home Assistant at scale: a gateway with 1,000 nodes and 20,000 fields, loaded and updated.

Starts its own Mosquitto and gateway process (`python -m edgeiot_gateway`) on loopback; a
publisher process announces `--nodes` nodes (retained announce and status) with `--fields`
read-only float fields each in one source, plus a first value for every field. Home Assistant
runs in this process (its test harness, on HA's own event loop, registries in memory, no
recorder) with the EdgeIoT integration from this repository. Then:

1. setup: from config entry setup start until every field entity is in hass.states and
   available (not 'unavailable');
2. paced: `--rates` field updates/s for `--seconds` s each, one value per MQTT state message
   (QoS 1), through node → Mosquitto → gateway → WebSocket → integration → hass.states;
3. burst: `--burst` updates published as fast as the publisher can;
4. baselines: the same number of `hass.states.async_set` calls alone, and the integration's
   in-HA path alone (WebSocket message text → client → hub → entity → hass.states).

Every published value is the publisher's time.time(), so each update changes its state, its
latency is measured, and each entity's last value shows whether every update arrived.
Figures are printed for people, then the last line is one JSON object for tools.
Run: `.venv/bin/python bench/ha_scale.py [--nodes N] [--fields N] [--rates R,...] [--profile F]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import logging
import math
import multiprocessing as mp
import os
import pstats
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.servers and this repository's custom_components

from tests.servers import LOOPBACK, Mosquitto, free_port  # noqa: E402

if TYPE_CHECKING:
    from homeassistant.core import Event, HomeAssistant

DOMAIN = "edgeiot"
GATEWAY_ID = "ha-scale-gw"
PREFIX = "edgeiot/v1"
SOURCE = "s"
STAMP_MIN = 1e9  # values above this are publish times (epoch seconds); first values are small
# HA writes a float state with 15 significant digits: ~1e-5 s for an epoch time. One entity's
# updates are far further apart, so a state this close to a published value is that value.
SAME_VALUE = 1e-4

GOAL_UPDATES_PER_S = 2000.0

START_TIMEOUT = 30.0  # broker, gateway, publisher, announcements
SETUP_TIMEOUT = 90.0  # config entry setup until every entity is available
PHASE_TIMEOUT = 60.0  # publishing one phase
DRAIN_TIMEOUT = 30.0  # after publishing: until every last value is in hass.states
SAMPLE_S = 0.25
MAX_DRAIN_S = 3.0  # a paced phase keeps up if its last value lands within this after publishing
BUDGET_S = 170.0  # the whole bench: every wait is cut to what is left of it
HARD_LIMIT_S = 200.0  # then a watchdog stops everything the bench started and exits
MAX_LIFETIME = HARD_LIMIT_S  # the publisher process never lives longer


class Budget:
    """The bench's deadline (monotonic clock)."""

    deadline = math.inf


def within(seconds: float) -> float:
    """A timeout of `seconds`, cut to what is left of the bench's time budget."""
    return max(0.0, min(seconds, Budget.deadline - time.monotonic()))


def node_id(index: int) -> str:
    return f"node-{index:04d}"


def split(entity: int, nodes: int) -> tuple[int, int]:
    """Entity index → (node index, field index): consecutive updates go to different nodes."""
    return entity % nodes, entity // nodes


# The publisher process: the nodes -----------------------------------------------------------


def announce_payload(index: int, fields: int) -> bytes:
    fields_def = [
        {
            "id": f"f{k}",
            "name": f"Temperature {k}",
            "type": "float",
            "unit": "°C",
            "device_class": "temperature",
        }
        for k in range(fields)
    ]
    return json.dumps(
        {"v": 1, "name": f"Bench {index:04d}", "sources": [{"id": SOURCE, "fields": fields_def}]}
    ).encode()


def publisher_main(conn: Connection, port: int, nodes: int, fields: int, published: Any) -> None:
    """Publisher process: one paho client for all nodes; runs the jobs the bench sends.

    paho's network loop runs in this thread (client.loop), not in a thread of its own: that
    publishes about twice as fast, so the nodes are less often the bottleneck."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"ha-scale-pub-{os.getpid()}",
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    acked = [0, 0]  # PUBACKs received: in all, at the start of the current phase

    def on_publish(*_args: Any) -> None:
        acked[0] += 1
        published.value = acked[0] - acked[1]

    client.on_publish = on_publish
    client.connect(LOOPBACK, port, keepalive=60)
    topics = [f"{PREFIX}/{node_id(n)}/state/{SOURCE}" for n in range(nodes)]
    total = nodes * fields
    targets = list(range(total))  # the entities updated, in turn (those HA has)
    position = 0

    def wait_acked(target: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while acked[0] < target:
            if time.monotonic() > deadline:
                return False
            client.loop(0.005)
        return True

    def announce() -> dict[str, Any]:
        before = acked[0]
        for n in range(nodes):
            base = f"{PREFIX}/{node_id(n)}"
            client.publish(f"{base}/announce", announce_payload(n, fields), qos=1, retain=True)
            client.publish(f"{base}/status", b'{"v":1,"state":"online"}', qos=1, retain=True)
            values = {f"f{k}": 20.0 + k / 10 for k in range(fields)}
            client.publish(topics[n], json.dumps({"v": 1, "values": values}).encode(), qos=1)
            client.loop(0)
        return {"acked": wait_acked(before + 3 * nodes, START_TIMEOUT)}

    def phase(rate: float, count: int) -> dict[str, Any]:
        nonlocal position
        last = array("d", [math.nan]) * total
        acked[1], cpu0 = acked[0], sum(os.times()[:2])
        published.value = sent = 0
        publish, clock = client.publish, time.monotonic
        first, start = time.time(), clock()
        while sent < count:
            if rate:
                target = min(count, int((clock() - start) * rate) + 1)
                if target <= sent:
                    client.loop(0.001)
                    continue
            target = min(target if rate else count, sent + 100)
            for _ in range(target - sent):
                entity = targets[position]
                position = (position + 1) % len(targets)
                n, k = split(entity, nodes)
                value = time.time()
                publish(topics[n], f'{{"v":1,"values":{{"f{k}":{value!r}}}}}'.encode(), qos=1)
                last[entity] = value
            sent = target
            client.loop(0)
        handed = time.time()
        ok = wait_acked(acked[1] + count, PHASE_TIMEOUT)
        return {
            "first": first,
            "handed": handed,  # the last update given to paho
            "end": time.time(),  # the broker acknowledged them all
            "sent": sent,
            "acked": ok,
            "last": last.tobytes(),
            "cpu": sum(os.times()[:2]) - cpu0,
        }

    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not client.is_connected():
            if time.monotonic() > deadline:
                raise TimeoutError("publisher: no CONNACK")
            client.loop(0.05)
        conn.send("ready")
        parent, deadline = mp.parent_process(), time.monotonic() + MAX_LIFETIME
        while time.monotonic() < deadline:
            if not conn.poll(0):
                client.loop(0.1)  # also keeps the connection alive
                if parent is not None and not parent.is_alive():
                    return
                continue
            job = conn.recv()
            if job["kind"] == "announce":
                conn.send(announce())
            elif job["kind"] == "targets":
                targets = array("l", job["entities"]).tolist()
                position = 0
            elif job["kind"] == "phase":
                conn.send(phase(job["rate"], job["count"]))
            else:
                return
    finally:
        client.disconnect()


class Publisher:
    """The publisher process, with a pipe for jobs and a shared counter of the current phase's
    updates acknowledged by the broker."""

    def __init__(self, port: int, nodes: int, fields: int) -> None:
        ctx = mp.get_context("spawn")
        self.published = ctx.Value("q", 0, lock=False)
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(
            target=publisher_main,
            args=(child_conn, port, nodes, fields, self.published),
            name="ha-scale-publisher",
            daemon=True,
        )
        self.process.start()
        child_conn.close()
        if not self.conn.poll(START_TIMEOUT) or self.conn.recv() != "ready":
            raise TimeoutError("publisher did not connect to the broker")

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def announce(self) -> None:
        self.conn.send({"kind": "announce"})
        if not self.conn.poll(within(START_TIMEOUT * 2)) or not self.conn.recv()["acked"]:
            raise TimeoutError("the broker did not acknowledge every announcement")

    def target(self, entities: list[int]) -> None:
        """Update only these entities (by index) from now on."""
        self.conn.send({"kind": "targets", "entities": array("l", entities).tobytes()})

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send({"kind": "stop"})
        self.process.join(3)  # it reads the pipe between jobs only
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


# Broker and gateway ---------------------------------------------------------------------------


class GatewayProcess:
    """`python -m edgeiot_gateway --config gateway.toml` on loopback with a fixed token."""

    def __init__(self, workdir: Path, broker: Mosquitto) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = LOOPBACK, free_port()
        self.token = secrets.token_hex(32)
        self.config = workdir / "gateway.toml"
        self.config.write_text(
            f'gateway_id = "{GATEWAY_ID}"\ndata_dir = "data"\nlog_level = "warning"\n'
            f'[api]\nhost = "{LOOPBACK}"\nport = {self.port}\ntoken = "{self.token}"\n'
            f'[[providers]]\ntype = "mqtt"\nhost = "{broker.host}"\nport = {broker.port}\n'
        )
        self.log = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}/api/v1/{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edgeiot_gateway", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait(lambda: all(p["connected"] for p in self.get("info")["providers"]), "MQTT")

    def wait(self, ready: Any, what: str, timeout: float = START_TIMEOUT) -> None:
        timeout = within(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {self.log.read_text()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.05)
        raise TimeoutError(f"gateway: {what} not ready after {timeout} s: {self.log.read_text()}")

    def wait_nodes(self, nodes: int, fields: int) -> None:
        """Until the gateway has every node online with a value in every field."""

        def complete() -> bool:
            listed = self.get("nodes")
            return len(listed) == nodes and all(
                node["online"]
                and sum(f["value"] is not None for s in node["sources"] for f in s["fields"])
                == fields
                for node in listed
            )

        self.wait(complete, f"{nodes} nodes with values")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def _stat_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> float:
    """Busy CPU seconds of the whole machine so far (Linux /proc/stat)."""
    with Path("/proc/stat").open() as stat:
        fields = [int(f) for f in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each process, and of all other processes of the
    machine as "others" (Linux /proc): other work on the machine skews the figures."""
    snapshot = {name: _stat_cpu(pid) for name, pid in pids.items()}
    snapshot["others"] = _machine_cpu() - sum(snapshot.values())
    return snapshot


def cpu_use(pids: dict[str, int], before: dict[str, float], wall: float) -> dict[str, float]:
    """Each process's share of one core (%) since `before`, and the others' share."""
    now = cpu_snapshot(pids)
    return {name: round(100 * (now[name] - before[name]) / wall, 1) for name in now}


def show_profile(profiler: cProfile.Profile, path: str, what: str) -> None:
    """Save a profile of the HA process and print its top functions."""
    profiler.dump_stats(path)
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(f"profile of Home Assistant during {what} ({path}):\n{out.getvalue()}", flush=True)


def rss_mb() -> float:
    """This process's resident memory (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# Home Assistant side -------------------------------------------------------------------------


@dataclass
class Tracker:
    """Follows state_changed of the field entities: count, latency, last value per entity."""

    nodes: int = 1
    index: dict[str, int] = field(default_factory=dict)  # entity id → entity index
    seen: list[float] = field(default_factory=list)  # last numeric state per entity index
    applied: int = 0
    published_at: list[float] = field(default_factory=list)
    applied_at: list[float] = field(default_factory=list)

    def on_state(self, event: Event[Any]) -> None:
        data = event.data
        entity = self.index.get(data["entity_id"])
        if entity is None or (new := data["new_state"]) is None:
            return
        try:
            value = float(new.state)
        except ValueError:
            return
        self.seen[entity] = value
        self.applied += 1
        if value > STAMP_MIN:
            self.published_at.append(value)
            self.applied_at.append(time.time())


@dataclass
class Sample:
    """The pipeline at one moment of a phase (counts since the phase started)."""

    t: float
    published: int
    processed: int  # by the gateway
    applied: int  # to hass.states
    gateway_cpu: float  # % of one core since the previous sample
    ha_cpu: float
    others_cpu: float  # processes that are not part of the bench

    @property
    def backlog(self) -> int:
        return self.published - self.applied


@dataclass
class Phase:
    """One publishing phase, as seen from Home Assistant."""

    name: str
    offered: float  # updates/s asked for (0: as fast as possible)
    held: bool = False  # HA's event loop was blocked while publishing (a catch-up)
    released: float = math.nan  # then released at this time (epoch s)
    sent: int = 0
    publish_s: float = 0.0  # first to last publish
    sent_per_s: float = 0.0
    window_per_s: float = 0.0  # applied while publishing / publishing time
    absorbed_per_s: float = 0.0  # all applied / (last applied - first publish)
    backlog_end: int = 0  # published but not yet in hass.states when publishing stopped
    backlog_max: int = 0
    # Growth of the backlog's floor (its minimum over the last vs the first third of the
    # publishing time): a stall makes a peak that drains, a backlog that grows lifts the floor.
    floor_growth_per_s: float = 0.0
    gateway_behind_end: int = 0  # at the first sample after publishing: not processed yet
    drain_s: float = math.nan  # last publish → last value in hass.states
    lost: int = 0  # published updates never applied
    stale: int = 0  # entities whose last published value is not their state
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    cpu: dict[str, float] = field(default_factory=dict)
    gc_s: float = 0.0  # HA process: time in the garbage collector
    gc_max_s: float = 0.0  # its longest pause
    gc_full: int = 0  # full (generation 2) collections
    stall_max_s: float = 0.0  # HA event loop: longest time a 10 ms timer was late
    timeline: list[Sample] = field(default_factory=list)

    @property
    def absorbed_without_gc_per_s(self) -> float:
        """A catch-up's rate with the garbage collector's pauses taken out."""
        return (self.sent - self.lost) / max(1e-9, self.drain_s - self.gc_s)


class Monitor:
    """Garbage-collector pauses and event-loop stalls of this (the HA) process."""

    def __init__(self) -> None:
        self.gc_s = self.gc_max_s = self.stall_max_s = 0.0
        self.gc_full = 0
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, stage: str, info: dict[str, int]) -> None:
        if stage == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc_s += pause
        self.gc_max_s = max(self.gc_max_s, pause)
        self.gc_full += info["generation"] == 2

    async def _watch(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            self.stall_max_s = max(self.stall_max_s, time.monotonic() - started - 0.01)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def sample(rig: Rig, phase: Phase, base: Sample) -> None:
    """Append a Sample to the phase's timeline every SAMPLE_S until cancelled."""
    pids = rig.pids
    cpu, wall = cpu_snapshot(pids), time.monotonic()
    while True:
        await asyncio.sleep(SAMPLE_S)
        diagnostics = await asyncio.to_thread(rig.gateway.get, "diagnostics")
        now = time.monotonic()
        use = cpu_use(pids, cpu, now - wall)
        cpu, wall = cpu_snapshot(pids), now
        phase.timeline.append(
            Sample(
                now - base.t,
                int(rig.publisher.published.value),
                diagnostics["processed"] - base.processed,
                rig.tracker.applied - base.applied,
                use["gateway"],
                use["ha"],
                use["others"],
            )
        )


@dataclass
class Rig:
    """What a phase drives and watches."""

    publisher: Publisher
    gateway: GatewayProcess
    tracker: Tracker
    pids: dict[str, int]


def hold(rig: Rig, count: int, processed: int, limit: float) -> dict[str, Any]:
    """Keep HA's event loop busy (blocked) until the publisher sent `count` updates and the
    gateway processed them: they wait in the gateway's WebSocket queue and the socket."""
    deadline = time.monotonic() + limit
    result: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if result is None:
            if rig.publisher.conn.poll(0.05):
                result = rig.publisher.conn.recv()
            continue
        if rig.gateway.get("diagnostics")["processed"] - processed >= count:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"catch-up: {count} updates not published and processed in {limit:.0f} s")


async def run_phase(
    rig: Rig,
    name: str,
    rate: float,
    count: int,
    *,
    held: bool = False,
    profiler: cProfile.Profile | None = None,
) -> Phase:
    """Publish `count` updates at `rate`/s (0: unthrottled) and follow them into hass.states.

    `held`: HA's event loop is blocked while they are published and processed by the gateway,
    then released: how fast HA works off a full pipe, whatever the publisher's speed."""
    publisher, tracker = rig.publisher, rig.tracker
    phase = Phase(name, rate, held=held)
    progress(f"phase {name}: {count} updates")
    tracker.published_at.clear()
    tracker.applied_at.clear()
    processed = (await asyncio.to_thread(rig.gateway.get, "diagnostics"))["processed"]
    base = Sample(time.monotonic(), 0, processed, tracker.applied, 0.0, 0.0, 0.0)
    gc.collect()  # every phase starts from the same garbage collector state
    cpu0, wall_start = cpu_snapshot(rig.pids), time.time() - (time.monotonic() - base.t)
    limit = within(PHASE_TIMEOUT)
    if held:
        publisher.conn.send({"kind": "phase", "rate": rate, "count": count})
        result = hold(rig, count, processed, limit)
        phase.released = time.time()
    monitor = Monitor()
    monitor.start()
    if profiler is not None:
        profiler.enable()
    sampler = asyncio.get_running_loop().create_task(sample(rig, phase, base))
    try:
        if not held:
            publisher.conn.send({"kind": "phase", "rate": rate, "count": count})
            while not publisher.conn.poll():
                if time.monotonic() - base.t > limit:
                    raise TimeoutError(f"{name}: publishing took more than {limit:.0f} s")
                await asyncio.sleep(0.05)
            result = publisher.conn.recv()
        last = array("d")
        last.frombytes(result["last"])
        wanted = [e for e, value in enumerate(last) if not math.isnan(value)]
        deadline = time.monotonic() + within(DRAIN_TIMEOUT)
        while wanted and time.monotonic() < deadline:
            wanted = [e for e in wanted if not abs(tracker.seen[e] - last[e]) <= SAME_VALUE]
            await asyncio.sleep(0.02)
        await asyncio.sleep(SAMPLE_S)  # stragglers (if any) land, the sampler sees the end
    finally:
        if profiler is not None:
            profiler.disable()
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
        await monitor.stop()
    phase.gc_s, phase.gc_max_s, phase.gc_full = monitor.gc_s, monitor.gc_max_s, monitor.gc_full
    phase.stall_max_s = monitor.stall_max_s
    phase.cpu = cpu_use(rig.pids, cpu0, time.monotonic() - base.t)

    first, end = result["first"], result["end"]
    phase.sent = result["sent"]
    phase.publish_s = end - first
    phase.sent_per_s = phase.sent / phase.publish_s
    applied_at = tracker.applied_at
    phase.lost = phase.sent - len(applied_at)
    phase.stale = len(wanted)
    if held:
        phase.window_per_s = math.nan
        if applied_at:
            phase.drain_s = max(applied_at) - phase.released
            phase.absorbed_per_s = len(applied_at) / phase.drain_s
        phase.backlog_end = phase.backlog_max = phase.sent - sum(
            1 for t in applied_at if t <= phase.released
        )
        return phase
    in_window = sum(1 for t in applied_at if t <= end)
    phase.window_per_s = in_window / phase.publish_s
    if applied_at:
        phase.absorbed_per_s = len(applied_at) / (max(applied_at) - first)
        phase.drain_s = max(0.0, max(applied_at) - end)
    phase.backlog_end = phase.sent - in_window
    latencies = [a - p for a, p in zip(applied_at, tracker.published_at, strict=True)]
    phase.p50_ms = 1000 * percentile(latencies, 0.5)
    phase.p99_ms = 1000 * percentile(latencies, 0.99)
    phase.max_ms = 1000 * max(latencies, default=math.nan)
    timeline = phase.timeline
    phase.backlog_max = max([phase.backlog_end, *(s.backlog for s in timeline)])
    during = [s for s in timeline if s.published < phase.sent]
    if len(during) >= 6:
        third = len(during) // 3
        early, late = during[:third], during[-third:]
        phase.floor_growth_per_s = (
            min(s.backlog for s in late) - min(s.backlog for s in early)
        ) / (late[-1].t - early[0].t)
    if after := [s for s in timeline if s.t >= end - wall_start]:
        phase.gateway_behind_end = max(0, after[0].published - after[0].processed)
    return phase


@dataclass
class Baseline:
    """Updates/s of one loop run on HA's event loop (yielding every 1,000 updates)."""

    updates_per_s: float
    gc_s: float  # of its time, in the garbage collector
    gc_full: int
    count: int

    @property
    def without_gc_per_s(self) -> float:
        return self.count / max(1e-9, self.count / self.updates_per_s - self.gc_s)


async def timed(count: int, update: Any) -> Baseline:
    """Call update(i) for i in range(count) on the event loop; updates/s and GC time."""
    gc.collect()
    monitor = Monitor()
    monitor.start()
    started = time.perf_counter()
    for i in range(count):
        update(i)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    await monitor.stop()
    return Baseline(count / elapsed, monitor.gc_s, monitor.gc_full, count)


async def baselines(
    hass: HomeAssistant, entry: Any, tracker: Tracker, count: int
) -> dict[str, Baseline]:
    """`hass.states.async_set` alone on as many entity ids, and the integration's in-HA path
    alone: the WebSocket message text as the client reads it, decoded and dispatched
    (client → hub → entity → hass.states), without the gateway and the socket."""
    progress("baselines")
    ids = list(tracker.index)
    total = len(ids)
    template = hass.states.get(ids[0])
    assert template is not None
    attributes = dict(template.attributes)  # the same unit, device class, name ...
    fake = [f"sensor.ha_scale_baseline_{e:05d}" for e in range(total)]
    for entity_id in fake:
        hass.states.async_set(entity_id, "0.0", attributes)
    async_set = hass.states.async_set
    states = await timed(count, lambda i: async_set(fake[i % total], str(1 + i / 1000), attributes))
    for entity_id in fake:
        hass.states.async_remove(entity_id)

    # The entity alone: its field's value set in the hub, then the hub's listener for the field
    # (EdgeIoTEntity._handle_update → async_write_ha_state), without decoding and dispatch.
    hub = entry.runtime_data
    entities = sorted(tracker.index.values())
    fields, listeners = [], []
    for e in entities:
        n, k = split(e, tracker.nodes)
        key = f"{node_id(n)}.{SOURCE}.f{k}"
        fields.append(hub.fields[key])
        listeners.append(hub._field_listeners[key][0])

    def write(i: int) -> None:
        fields[i % total]["value"] = 100_000 + i / 1000  # new values: each write changes
        listeners[i % total]()

    applied = tracker.applied
    entity = await timed(count, write)
    if tracker.applied - applied != count:
        raise RuntimeError(f"entity baseline: {tracker.applied - applied} of {count} applied")

    texts = []
    for i in range(count):
        n, k = split(entities[i % total], tracker.nodes)
        event = {
            "event": "field value",
            "node_id": node_id(n),
            "source_id": SOURCE,
            "field_id": f"f{k}",
            "value": 200_000 + i / 1000,
            "updated": 1.0,
        }
        texts.append(json.dumps({"type": "event", "event": event}))
    loads, dispatch = json.loads, entry.runtime_data.client._dispatch
    applied = tracker.applied
    in_ha = await timed(count, lambda i: dispatch(loads(texts[i])))
    if tracker.applied - applied != count:
        raise RuntimeError(f"in-HA baseline: {tracker.applied - applied} of {count} applied")
    return {"states": states, "entity": entity, "in_ha": in_ha}


@dataclass
class Setup:
    """How the config entry setup went."""

    setup_s: float | None  # until every field entity was available (None: not all were)
    call_s: float  # until async_setup returned
    settled_s: float  # until the last entity appeared
    entity_ids: dict[int, str]  # entity index → entity id, of the available entities
    missing: int  # field entities HA did not create
    unavailable: int  # created but 'unavailable'


async def set_up(hass: HomeAssistant, entry: Any, unique_ids: list[str]) -> Setup:
    """Set the entry up and wait until every field entity is available, or nothing changes."""
    from homeassistant.const import STATE_UNAVAILABLE  # noqa: PLC0415
    from homeassistant.helpers import entity_registry as er  # noqa: PLC0415

    registry = er.async_get(hass)
    total = len(unique_ids)
    entity_ids: dict[int, str] = {}
    pending = list(range(total))
    call_s = math.nan
    count, changed = -1, 0.0
    limit = within(SETUP_TIMEOUT)
    started = time.perf_counter()
    task = hass.async_create_task(hass.config_entries.async_setup(entry.entry_id))
    while True:
        now = time.perf_counter() - started
        if task.done() and math.isnan(call_s):
            call_s = now
            if not task.result():
                raise RuntimeError(f"config entry setup failed: {entry.state} {entry.reason}")
        # Counting a domain's states is O(1); the full check runs once they could all be there
        # or once nothing changed for a second after async_setup returned.
        if (current := hass.states.async_entity_ids_count("sensor")) != count:
            count, changed = current, now
        settled = task.done() and now - changed > 1.0
        if count >= total or settled:
            still = []
            for e in pending:
                if e not in entity_ids and (
                    entity_id := registry.async_get_entity_id("sensor", DOMAIN, unique_ids[e])
                ):
                    entity_ids[e] = entity_id
                state = hass.states.get(entity_ids[e]) if e in entity_ids else None
                if state is None or state.state == STATE_UNAVAILABLE:
                    still.append(e)
            pending = still
            if not pending or settled:
                break
        if now > limit:
            raise TimeoutError(f"{len(pending)} of {total} entities missing or unavailable")
        await asyncio.sleep(0.02)
    setup_s = time.perf_counter() - started
    if math.isnan(call_s):
        await task
        call_s = time.perf_counter() - started
    missing = sum(1 for e in pending if e not in entity_ids)
    for e in pending:
        entity_ids.pop(e, None)
    return Setup(
        setup_s if not pending else None,
        call_s,
        changed,
        entity_ids,
        missing,
        len(pending) - missing,
    )


async def run_home_assistant(
    args: argparse.Namespace,
    workdir: Path,
    gateway: GatewayProcess,
    publisher: Publisher,
    pids: dict[str, int],
) -> dict[str, Any]:
    """Home Assistant with the integration against the gateway: setup, phases, baselines."""
    from aiohttp.resolver import ThreadedResolver  # noqa: PLC0415
    from homeassistant import loader  # noqa: PLC0415
    from homeassistant.config_entries import ConfigEntryState  # noqa: PLC0415
    from homeassistant.const import (  # noqa: PLC0415
        CONF_HOST,
        CONF_PORT,
        CONF_TOKEN,
        EVENT_STATE_CHANGED,
    )
    from homeassistant.core import callback  # noqa: PLC0415
    from homeassistant.helpers import entity_platform, frame  # noqa: PLC0415
    from pytest_homeassistant_custom_component.common import (  # noqa: PLC0415
        MockConfigEntry,
        async_test_home_assistant,
    )

    config_dir = workdir / "ha"
    config_dir.mkdir()
    total = args.nodes * args.fields
    unique_ids = [
        f"{GATEWAY_ID}.{node_id(n)}.{SOURCE}.f{k}"
        for n, k in (split(e, args.nodes) for e in range(total))
    ]
    results: dict[str, Any] = {}

    # As the HA test plugin does: a plain resolver instead of one needing zeroconf (loopback only).
    def make_resolver(_hass: HomeAssistant) -> ThreadedResolver:
        plain = ThreadedResolver()
        plain.real_close = plain.close  # type: ignore[attr-defined]  # HA closes it so
        return plain

    resolver = patch(
        "homeassistant.helpers.aiohttp_client._async_make_resolver", side_effect=make_resolver
    )
    # Home Assistant refuses more than MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY new enabled entities
    # per config entry, except for the domains it exempts (mqtt, zha, ...). Lifted on request.
    exempt = set(entity_platform.ENTITY_LIMIT_EXEMPT_DOMAINS)
    if not args.stock_entity_limit:
        exempt.add(DOMAIN)
    results["entity_limit"] = entity_platform.MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
    results["entity_limit_lifted"] = DOMAIN in exempt
    limit = patch.object(entity_platform, "ENTITY_LIMIT_EXEMPT_DOMAINS", exempt)
    # HA's stores write to the temporary config dir as in production (the entity registry of
    # 20,000 entities is saved 10 s after the setup, serialized in an executor thread).
    with resolver, limit:
        async with async_test_home_assistant(config_dir=str(config_dir)) as hass:
            hass.data.pop(loader.DATA_CUSTOM_COMPONENTS, None)  # load custom_components
            frame.async_setup(hass)
            entry = MockConfigEntry(
                domain=DOMAIN,
                title=f"EdgeIoT {GATEWAY_ID}",
                unique_id=GATEWAY_ID,
                data={CONF_HOST: gateway.host, CONF_PORT: gateway.port, CONF_TOKEN: gateway.token},
            )
            entry.add_to_hass(hass)
            tracker = Tracker(nodes=args.nodes)

            @callback
            def on_state(event: Event[Any]) -> None:
                tracker.on_state(event)

            hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
            try:
                progress("setting the config entry up")
                cpu0, wall0 = cpu_snapshot(pids), time.monotonic()
                profiler = cProfile.Profile() if args.profile else None
                if profiler is not None:
                    profiler.enable()
                setup = await set_up(hass, entry, unique_ids)
                if profiler is not None:
                    profiler.disable()
                    show_profile(profiler, f"{args.profile}.setup", "the setup")
                results["setup"] = setup
                setup_cpu = cpu_use(pids, cpu0, time.monotonic() - wall0)
                results["setup_cpu"] = setup_cpu
                if setup.setup_s is not None:
                    print(
                        f"setup: {setup.setup_s:.1f} s until all {total} field entities are in "
                        f"hass.states and available (async_setup returned after "
                        f"{setup.call_s:.1f} s; CPU: HA {setup_cpu['ha']:g}%, gateway "
                        f"{setup_cpu['gateway']:g}%, other processes {setup_cpu['others']:g}%)",
                        flush=True,
                    )
                else:
                    print(
                        f"setup: NOT COMPLETE: {len(setup.entity_ids)} of {total} field entities "
                        f"available, {setup.missing} not created, {setup.unavailable} unavailable "
                        f"(the last appeared after {setup.settled_s:.1f} s, async_setup returned "
                        f"after {setup.call_s:.1f} s)",
                        flush=True,
                    )
                if not setup.entity_ids:
                    raise RuntimeError("no field entity is available")
                gc.collect()
                started = time.perf_counter()
                gc.collect()
                results["gc_full_s"] = time.perf_counter() - started
                results["gc_objects"] = len(gc.get_objects())
                results["ha_rss_mb"] = rss_mb()
                tracker.index = {entity_id: e for e, entity_id in setup.entity_ids.items()}
                tracker.seen = [math.nan] * total
                for entity_id, e in tracker.index.items():
                    if (state := hass.states.get(entity_id)) is not None:
                        tracker.seen[e] = float(state.state)
                publisher.target(sorted(setup.entity_ids))

                rig = Rig(publisher, gateway, tracker, pids)
                phases = []
                for rate in args.rates:
                    count = round(rate * args.seconds)
                    phase = await run_phase(rig, f"paced {rate:g}/s", rate, count)
                    print(describe(phase), flush=True)
                    if args.timeline:
                        print(describe_timeline(phase), flush=True)
                    phases.append(phase)
                burst = await run_phase(rig, "burst", 0, args.burst)
                print(describe(burst), flush=True)
                if args.timeline:
                    print(describe_timeline(burst), flush=True)
                profiler = cProfile.Profile() if args.profile else None
                catchup = await run_phase(
                    rig, "catch-up", 0, args.catchup, held=True, profiler=profiler
                )
                if profiler is not None:
                    show_profile(profiler, args.profile, "the catch-up")
                print(describe(catchup), flush=True)
                if args.timeline:
                    print(describe_timeline(catchup), flush=True)
                results["phases"], results["burst"] = phases, burst
                results["catchup"] = catchup
                results["baseline"] = await baselines(
                    hass, entry, tracker, args.baseline or args.burst
                )
                results["diagnostics"] = await asyncio.to_thread(gateway.get, "diagnostics")
            finally:
                if entry.state is ConfigEntryState.LOADED:
                    await hass.config_entries.async_unload(entry.entry_id)
                await hass.async_stop(force=True)
    return results


# Report ------------------------------------------------------------------------------------------


def describe_timeline(phase: Phase) -> str:
    lines = ["   t(s) published gw-processed  applied  backlog  gw-cpu%  ha-cpu%  others%"]
    lines += [
        f"  {s.t:5.2f} {s.published:9d} {s.processed:12d} {s.applied:8d} {s.backlog:8d} "
        f"{s.gateway_cpu:8.0f} {s.ha_cpu:8.0f} {s.others_cpu:8.0f}"
        for s in phase.timeline
    ]
    return "\n".join(lines)


def describe(phase: Phase) -> str:
    offered = f"{phase.offered:g}/s" if phase.offered else "unthrottled"
    cpu = " ".join(f"{name} {use:g}%" for name, use in phase.cpu.items())
    cores = os.cpu_count() or 1
    if phase.held:
        return (
            f"{phase.name}: HA's event loop held while {phase.sent} updates were published "
            f"({phase.sent_per_s:.0f}/s) and processed by the gateway; released with "
            f"{phase.backlog_end} waiting\n"
            f"  applied to hass.states: {phase.absorbed_per_s:.0f}/s, "
            f"{phase.absorbed_without_gc_per_s:.0f}/s without the GC pauses (the last "
            f"{phase.drain_s:.2f} s after the release); lost {phase.lost}, entities not at "
            f"their last value {phase.stale}\n"
            f"  HA process: event loop stalled up to {phase.stall_max_s:.2f} s after the "
            f"release; garbage collector {phase.gc_s:.2f} s, {phase.gc_full} full collections, "
            f"longest pause {phase.gc_max_s:.2f} s\n"
            f"  CPU (% of one core of {cores}, whole phase): {cpu}"
        )
    return (
        f"{phase.name}: sent {phase.sent} updates ({offered}) in {phase.publish_s:.2f} s = "
        f"{phase.sent_per_s:.0f}/s (until the broker acknowledged the last)\n"
        f"  applied to hass.states: {phase.window_per_s:.0f}/s while publishing, "
        f"{phase.absorbed_per_s:.0f}/s first publish → last applied\n"
        f"  backlog: {phase.backlog_end} when publishing stopped (at the next sample "
        f"{phase.gateway_behind_end} not yet processed by the gateway), max "
        f"{phase.backlog_max}, floor growth {phase.floor_growth_per_s:+.0f}/s; last value "
        f"{phase.drain_s:.2f} s after the last publish\n"
        f"  lost {phase.lost}, entities not at their last value {phase.stale}; latency p50 "
        f"{phase.p50_ms:.1f} ms, p99 {phase.p99_ms:.1f} ms, max {phase.max_ms:.1f} ms\n"
        f"  HA process: event loop stalled up to {phase.stall_max_s:.2f} s; garbage collector "
        f"{phase.gc_s:.2f} s, {phase.gc_full} full collections, longest pause "
        f"{phase.gc_max_s:.2f} s\n"
        f"  CPU (% of one core of {cores}, whole phase): {cpu}"
    )


def kept_up(phase: Phase) -> bool:
    """Everything offered was applied, and the backlog did not grow (stalls drained)."""
    return (
        phase.lost == 0
        and phase.stale == 0
        and phase.floor_growth_per_s < 0.02 * phase.offered
        and phase.drain_s < MAX_DRAIN_S
    )


def num(value: float, digits: int = 0) -> float | None:
    """A figure rounded for the JSON line; None when it was not measured (NaN)."""
    if math.isnan(value):
        return None
    return round(value, digits) if digits else round(value)


def phase_json(phase: Phase) -> dict[str, Any]:
    return {
        "offered_updates_per_s": phase.offered,
        "sent": phase.sent,
        "sent_per_s": num(phase.sent_per_s),
        "updates_per_s": num(phase.window_per_s),
        "absorbed_updates_per_s": num(phase.absorbed_per_s),
        "backlog_end": phase.backlog_end,
        "backlog_max": phase.backlog_max,
        "backlog_floor_growth_per_s": num(phase.floor_growth_per_s),
        "drain_s": num(phase.drain_s, 3),
        "lost": phase.lost,
        "stale": phase.stale,
        "latency_p50_ms": num(phase.p50_ms, 1),
        "latency_p99_ms": num(phase.p99_ms, 1),
        "cpu_percent": phase.cpu,
        "ha_loop_stall_max_s": num(phase.stall_max_s, 3),
        "ha_gc_s": num(phase.gc_s, 3),
        "ha_gc_max_pause_s": num(phase.gc_max_s, 3),
        "ha_gc_full": phase.gc_full,
    }


def finite(data: Any) -> Any:
    """The data with NaN (not measured) as null, so the line is strict JSON."""
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, float) and math.isnan(data):
        return None
    return data


def report(args: argparse.Namespace, results: dict[str, Any], wall: float) -> None:
    phases: list[Phase] = results["phases"]
    burst: Phase = results["burst"]
    catchup: Phase = results["catchup"]
    states: Baseline = results["baseline"]["states"]
    in_ha: Baseline = results["baseline"]["in_ha"]
    entity: Baseline = results["baseline"]["entity"]
    setup: Setup = results["setup"]
    ratio = catchup.absorbed_per_s / states.updates_per_s
    goal_phase = next((p for p in phases if p.offered >= GOAL_UPDATES_PER_S), None)
    goal_met = goal_phase is not None and kept_up(goal_phase) and setup.setup_s is not None
    print(
        f"baseline ({states.count} updates over {len(setup.entity_ids)} entity ids, GC "
        f"included; without GC in brackets):\n"
        f"  hass.states.async_set alone: {states.updates_per_s:.0f} updates/s "
        f"({states.without_gc_per_s:.0f}; GC {states.gc_s:.2f} s)\n"
        f"  the entity alone (value set, then its async_write_ha_state via the hub's listener): "
        f"{entity.updates_per_s:.0f}/s ({entity.without_gc_per_s:.0f}; GC {entity.gc_s:.2f} s) "
        f"= {entity.updates_per_s / states.updates_per_s:.2f} x async_set\n"
        f"  integration inside HA (message text → client → hub → entity → hass.states): "
        f"{in_ha.updates_per_s:.0f}/s ({in_ha.without_gc_per_s:.0f}; GC {in_ha.gc_s:.2f} s) = "
        f"{in_ha.updates_per_s / states.updates_per_s:.2f} x async_set\n"
        f"  full chain, catch-up (gateway → WebSocket → integration → hass.states): "
        f"{catchup.absorbed_per_s:.0f}/s ({catchup.absorbed_without_gc_per_s:.0f}; GC "
        f"{catchup.gc_s:.2f} s) = {ratio:.2f} x async_set; live burst "
        f"{burst.absorbed_per_s:.0f}/s (publisher {burst.sent_per_s:.0f}/s)"
    )
    print(
        f"HA process after setup: {results['ha_rss_mb']:.0f} MB resident, "
        f"{results['gc_objects']} objects tracked by the garbage collector, a full collection "
        f"took {results['gc_full_s']:.2f} s"
    )
    if not results["entity_limit_lifted"] and setup.missing:
        print(
            f"note: {setup.missing} field entities missing: Home Assistant creates at most "
            f"{results['entity_limit']} new enabled entities per config entry "
            "(homeassistant/helpers/entity_platform.py, MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY)"
        )
    if results["entity_limit_lifted"]:
        print(
            f"note: Home Assistant creates at most {results['entity_limit']} new enabled "
            "entities per config entry (homeassistant/helpers/entity_platform.py, "
            "MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY; only hue, matter, mqtt, zha and zwave_js are "
            "exempt); this run lifted the limit for edgeiot (see --stock-entity-limit)."
        )
    diagnostics = results["diagnostics"]
    print(
        f"gateway: processed {diagnostics['processed']} messages, dropped {diagnostics['dropped']}"
    )
    every = [*phases, burst, catchup]
    others = max(p.cpu.get("others", 0.0) for p in every)
    if others > 20:
        print(
            f"warning: other processes used up to {others:.0f}% of a core during a phase; "
            "the figures are lower than on an idle machine"
        )
    print(
        f"goal: setup complete and >= {GOAL_UPDATES_PER_S:.0f} updates/s sustained with no "
        "growing backlog: " + ("met" if goal_met else "MISSED") + f" (whole bench {wall:.0f} s)"
    )
    first = phases[0] if phases else burst
    summary = {
        "nodes": args.nodes,
        "fields": args.nodes * args.fields,
        "entities": len(setup.entity_ids),
        "entities_missing": setup.missing,
        "entities_unavailable": setup.unavailable,
        "setup_s": None if setup.setup_s is None else num(setup.setup_s, 2),
        "setup_call_s": num(setup.call_s, 2),
        "setup_cpu_percent": results["setup_cpu"],
        "ha_entity_limit_per_entry": results["entity_limit"],
        "entity_limit_lifted": results["entity_limit_lifted"],
        "ha_rss_mb": num(results["ha_rss_mb"]),
        "ha_gc_full_collection_s": num(results["gc_full_s"], 3),
        "offered_updates_per_s": first.offered,
        "updates_per_s": num(first.window_per_s),
        "backlog_end": first.backlog_end,
        "backlog_max": first.backlog_max,
        "backlog_floor_growth_per_s": num(first.floor_growth_per_s),
        "drain_s": num(first.drain_s, 3),
        "lost": sum(p.lost + p.stale for p in every),
        "latency_p50_ms": num(first.p50_ms, 1),
        "latency_p99_ms": num(first.p99_ms, 1),
        "ha_gc_max_pause_s": num(max(p.gc_max_s for p in every), 3),
        "burst_updates_per_s": num(burst.absorbed_per_s),
        "burst_publisher_updates_per_s": num(burst.sent_per_s),
        "catchup_updates_per_s": num(catchup.absorbed_per_s),
        "catchup_without_gc_updates_per_s": num(catchup.absorbed_without_gc_per_s),
        "catchup_gc_max_pause_s": num(catchup.gc_max_s, 3),
        "baseline_updates_per_s": num(states.updates_per_s),
        "baseline_without_gc_updates_per_s": num(states.without_gc_per_s),
        "entity_write_updates_per_s": num(entity.updates_per_s),
        "in_ha_updates_per_s": num(in_ha.updates_per_s),
        "in_ha_without_gc_updates_per_s": num(in_ha.without_gc_per_s),
        "ratio_to_baseline": num(ratio, 3),
        "in_ha_ratio_to_baseline": num(in_ha.updates_per_s / states.updates_per_s, 3),
        "others_cpu_percent_max": others,
        "goal_updates_per_s": GOAL_UPDATES_PER_S,
        "goal_met": goal_met,
        "phases": {p.name: phase_json(p) for p in every},
        "bench_s": num(wall, 1),
    }
    print(json.dumps(finite(summary), ensure_ascii=False))


class Watchdog:
    """After HARD_LIMIT_S, kills what the bench started and exits: a hung bench never lingers."""

    def __init__(self) -> None:
        self.kills: list[Callable[[], Any]] = []
        self._timer = threading.Timer(HARD_LIMIT_S, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        print(f"ha_scale: no result after {HARD_LIMIT_S:.0f} s; stopping", file=sys.stderr)
        for kill in reversed(self.kills):
            with contextlib.suppress(Exception):
                kill()
        os._exit(3)

    def cancel(self) -> None:
        self._timer.cancel()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--fields", type=int, default=20, help="float fields per node")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",") if r],
        default=[GOAL_UPDATES_PER_S],
        help="paced phases, updates/s, comma-separated (default 2000)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of a paced phase")
    parser.add_argument("--burst", type=int, default=40_000, help="updates in the burst phase")
    parser.add_argument(
        "--catchup",
        type=int,
        default=40_000,
        help="updates in the catch-up phase (below the gateway's 100,000 queued events a client)",
    )
    parser.add_argument("--baseline", type=int, default=0, help="baseline updates (burst)")
    parser.add_argument(
        "--profile", help="cProfile HA during the catch-up to FILE, the setup to FILE.setup"
    )
    parser.add_argument("--timeline", action="store_true", help="print each phase's samples")
    parser.add_argument(
        "--stock-entity-limit",
        action="store_true",
        help="keep HA's limit of enabled entities per config entry (default: lift it for edgeiot)",
    )
    return parser.parse_args(argv)


def progress(text: str) -> None:
    print(f"ha_scale: {text}", file=sys.stderr, flush=True)


def interrupt(_signum: int, _frame: Any) -> None:
    """SIGTERM: stop like Ctrl-C, through every cleanup."""
    raise KeyboardInterrupt


def run(args: argparse.Namespace, watchdog: Watchdog) -> dict[str, Any]:
    """Broker, gateway and publisher around Home Assistant; all stopped at the end."""
    from homeassistant.runner import create_event_loop  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="edgeiot-ha-scale-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "mosquitto", persistent=False, max_queued=0)
        gateway = GatewayProcess(workdir / "gateway", broker)
        publisher: Publisher | None = None
        watchdog.kills += [
            lambda: shutil.rmtree(workdir, ignore_errors=True),
            lambda: broker.proc and broker.proc.kill(),
            lambda: gateway.proc and gateway.proc.kill(),
            lambda: publisher and publisher.process.kill(),
        ]
        try:
            progress("starting Mosquitto, the gateway and the publisher")
            broker.start()
            gateway.start()
            publisher = Publisher(broker.port, args.nodes, args.fields)
            loading = time.monotonic()
            publisher.announce()
            gateway.wait_nodes(args.nodes, args.fields)
            print(
                f"gateway: {args.nodes} nodes announced, online and with values after "
                f"{time.monotonic() - loading:.1f} s",
                flush=True,
            )
            assert broker.proc is not None
            pids = {
                "ha": os.getpid(),
                "gateway": gateway.pid,
                "mosquitto": broker.proc.pid,
                "publisher": publisher.pid,
            }
            return asyncio.run(
                run_home_assistant(args, workdir, gateway, publisher, pids),
                loop_factory=create_event_loop,
            )
        finally:
            if publisher is not None:
                publisher.stop()
            gateway.stop()
            broker.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s [%(name)s] %(message)s")
    logging.getLogger("homeassistant.loader").setLevel(logging.ERROR)  # "custom integration"
    import custom_components  # noqa: PLC0415

    if Path(custom_components.__path__[0]).resolve() != ROOT / "custom_components":
        raise RuntimeError(f"custom_components resolves to {custom_components.__path__}")
    signal.signal(signal.SIGTERM, interrupt)
    started = time.monotonic()
    Budget.deadline = started + BUDGET_S
    watchdog = Watchdog()
    print(f"EdgeIoT in Home Assistant: {args.nodes} nodes x {args.fields} float fields", flush=True)
    try:
        results = run(args, watchdog)
    except KeyboardInterrupt:
        progress("interrupted")
        return 130
    finally:
        watchdog.cancel()
    report(args, results, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
