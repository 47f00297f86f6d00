"""InfluxDB recorder bench: bus events → Recorder → SQLite journal → influxd, against raw /write.

Starts its own influxd 1.x (tests/servers.py) on a free loopback port in a temporary directory,
then runs three phases, each into its own database (counted, then dropped):

1. raw: `--points` points pre-encoded as the recorder encodes them (measurement `edgeiot`, tags
   field/gateway/node/source, `value=<float>`, ns timestamps) in bodies of `--batch-size`
   points, POSTed to /write with aiohttp one after another, like the recorder's send loop:
   the ceiling;
2. throughput: the same points as `field value` events on an EventBus into a running Recorder
   (default RecorderConfig: batch_size 5000, flush_interval 0.2), emitted in chunks of
   `--chunk` with `await asyncio.sleep(0)` between chunks; measured from the first emit until
   status() has written == N and queued == 0 (end to end, through the journal to InfluxDB);
3. backlog: influxd stopped, `--backlog` points emitted into a recorder pile up in its journal
   (fill rate, size on disk); influxd started again, the journal drains (drain rate, measured
   from the first successful write and from influxd being ready, which includes the send
   loop's retry backoff).

Timestamps are distinct (10 µs apart), so a point never overwrites another; every phase ends
with `SELECT COUNT(value)`: lost = sent - counted. The recorder's journal and HTTP calls are
timed (wall time awaited by its commit and send loops) to show where its time goes.

Progress goes to stderr; figures are printed for people on stdout, then the last line is one
JSON object for tools. The goals are printed next to the figures; the exit status is 0 whenever
the bench ran, whatever the figures.
Run: `.venv/bin/python bench/influx.py [--points N] [--backlog N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.servers

from edgeiot_gateway import bus  # noqa: E402
from edgeiot_gateway.recorder import InfluxTarget, Recorder, RecorderConfig  # noqa: E402
from edgeiot_gateway.recorder import recorder as recorder_module  # noqa: E402
from edgeiot_gateway.recorder.influx import InfluxWriter  # noqa: E402
from edgeiot_gateway.recorder.line_protocol import encode_point, tag_set  # noqa: E402
from tests.servers import InfluxDB  # noqa: E402

GATEWAY = "bench-gw"
SOURCE = "s"
MEASUREMENT = "edgeiot"
T0 = 1_764_000_000.0  # 2025-11-24, seconds
STEP = 1e-5  # 10 µs between points: distinct ns timestamps even after float rounding

GOAL_POINTS_PER_S = 100_000
GOAL_RATIO = 0.7

START_TIMEOUT = 30.0  # influxd start, database creation
PHASE_TIMEOUT = 90.0  # every wait of a phase (emit, write, drain)
QUERY_TIMEOUT = 60.0  # COUNT over a million points
POLL = 0.005
CLK_TCK = os.sysconf("SC_CLK_TCK")


def progress(text: str) -> None:
    print(f"influx: {text}", file=sys.stderr, flush=True)


# Points -------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Shape:
    nodes: int
    fields: int

    def node(self, i: int) -> str:
        return f"node-{i % self.nodes:04d}"

    def field(self, i: int) -> str:
        return f"f{i // self.nodes % self.fields}"


def point_value(i: int) -> float:
    return (i % 1000) / 4 + 0.5


def point_time(i: int) -> float:
    return T0 + i * STEP


def raw_bodies(shape: Shape, count: int, batch: int) -> list[bytes]:
    """The points, encoded by the recorder's own line-protocol code, in bodies of `batch`."""
    tags = [
        [tag_set(GATEWAY, shape.node(n), SOURCE, shape.field(n + f * shape.nodes))
         for f in range(shape.fields)]
        for n in range(shape.nodes)
    ]  # fmt: skip
    bodies = []
    for start in range(0, count, batch):
        lines = []
        for i in range(start, min(count, start + batch)):
            tag = tags[i % shape.nodes][i // shape.nodes % shape.fields]
            line = encode_point(MEASUREMENT, tag, point_value(i), point_time(i), "ns")
            assert line is not None
            lines.append(line)
        bodies.append("\n".join(lines).encode())
    return bodies


@dataclass(slots=True)
class EmitStats:
    seconds: float = 0.0  # wall time spent inside emit() (bus + recorder's _on_event)
    max_staged: int = 0
    max_queued: int = 0


async def emit_points(
    events: bus.EventBus, rec: Recorder, shape: Shape, *, count: int, chunk: int, stats: EmitStats
) -> None:
    """`count` field value events in chunks of `chunk`, yielding to the loop between chunks."""
    nodes = [shape.node(n) for n in range(shape.nodes)]
    fields = [f"f{f}" for f in range(shape.fields)]
    n_nodes, n_fields = shape.nodes, shape.fields
    emit, name = events.emit, bus.FIELD_VALUE
    for start in range(0, count, chunk):
        began = time.perf_counter()
        for i in range(start, min(count, start + chunk)):
            emit(
                name,
                {"node_id": nodes[i % n_nodes], "source_id": SOURCE,
                 "field_id": fields[i // n_nodes % n_fields],
                 "value": (i % 1000) / 4 + 0.5, "updated": T0 + i * STEP},
            )  # fmt: skip
        stats.seconds += time.perf_counter() - began
        sample(rec, stats)
        await asyncio.sleep(0)


def sample(rec: Recorder, stats: EmitStats) -> None:
    stats.max_staged = max(stats.max_staged, len(rec._staged))
    stats.max_queued = max(stats.max_queued, rec.journal.points)


async def wait_until(
    what: str, done: Callable[[], bool], seconds: float, rec: Recorder | None = None,
    stats: EmitStats | None = None,
) -> bool:  # fmt: skip
    """Poll `done` every few ms; False (and a progress line) after `seconds`."""
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            progress(f"timed out after {seconds:.0f} s waiting for {what}")
            return False
        if rec is not None and stats is not None:
            sample(rec, stats)
        await asyncio.sleep(POLL)
    return True


# Instrumentation ------------------------------------------------------------------------------


class Timings:
    """Wall time awaited per call kind (journal calls include waiting for the journal thread)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap[**P, R](self, name: str, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            began = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - began
                self.calls[name] += 1

        return timed

    def copy(self) -> Timings:
        other = Timings()
        other.seconds.update(self.seconds)
        other.calls.update(self.calls)
        return other

    def instrument(self, rec: Recorder) -> None:
        journal = rec.journal
        journal.append = self.wrap("append", journal.append)  # type: ignore[method-assign]
        journal.remove = self.wrap("remove", journal.remove)  # type: ignore[method-assign]
        journal.oldest = self.wrap("oldest", journal.oldest)  # type: ignore[method-assign]


class TimedWriter(InfluxWriter):
    """The recorder's writer, timing each POST (installed in the recorder module by the bench)."""

    timings: Timings | None = None

    async def write(self, body: bytes) -> None:
        began = time.perf_counter()
        try:
            await super().write(body)
        finally:
            if TimedWriter.timings is not None:
                TimedWriter.timings.seconds["post"] += time.perf_counter() - began
                TimedWriter.timings.calls["post"] += 1


def _ticks(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


class CpuClock:
    """CPU seconds of influxd, this process, its event-loop thread and its journal threads."""

    def __init__(self, influxd: InfluxDB) -> None:
        self.influxd = influxd
        self.began = self.snapshot()
        self.wall = time.monotonic()

    def snapshot(self) -> dict[str, float]:
        use: dict[str, float] = defaultdict(float)
        proc = self.influxd.proc
        if proc is not None:
            use["influxd"] = _ticks(Path(f"/proc/{proc.pid}/stat"))
        use["bench"] = _ticks(Path("/proc/self/stat"))
        for task in Path("/proc/self/task").iterdir():
            name = "loop" if task.name == str(os.getpid()) else "other"
            with contextlib.suppress(OSError):
                if (task / "comm").read_text().startswith("edgeiot-journal"):
                    name = "journal"
            use[name] += _ticks(task / "stat")
        return use

    def cores(self) -> dict[str, float]:
        """Cores used since construction (journal threads that ended are not counted)."""
        now, wall = self.snapshot(), max(time.monotonic() - self.wall, 1e-9)
        return {k: max(0.0, now[k] - self.began.get(k, 0.0)) / wall for k in now}


# InfluxDB -------------------------------------------------------------------------------------


class Influx:
    """Queries against the bench's influxd."""

    def __init__(self, server: InfluxDB, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q} | ({"db": db} if db else {})
        async with self.session.post(
            f"{self.server.url}/query",
            params=params,
            timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT),
        ) as response:
            result: dict[str, Any] = (await response.json())["results"][0]
        if "error" in result:
            raise RuntimeError(f"{q}: {result['error']}")
        return result

    async def count(self, db: str) -> int:
        result = await self.query(f"SELECT COUNT(value) FROM {MEASUREMENT}", db)
        series = result.get("series")
        return int(series[0]["values"][0][1]) if series else 0

    async def drop(self, db: str) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, RuntimeError):
            await self.query(f'DROP DATABASE "{db}"')

    async def version(self) -> str:
        async with self.session.get(
            f"{self.server.url}/ping", timeout=aiohttp.ClientTimeout(total=5)
        ) as response:
            return response.headers.get("X-Influxdb-Version", "?")


# Phases ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Phase:
    points: int
    seconds: float = 0.0
    counted: int = 0
    done: bool = True
    errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    timed: int | None = None  # points written within `seconds`, when not all of them

    @property
    def rate(self) -> float:
        timed = self.points if self.timed is None else self.timed
        return timed / self.seconds if self.seconds else 0.0

    @property
    def lost(self) -> int:
        return self.points - self.counted


async def raw_phase(influx: Influx, bodies: list[bytes], points: int, db: str) -> Phase:
    await influx.query(f'CREATE DATABASE "{db}"')
    phase = Phase(points)
    url = f"{influx.server.url}/write"
    params = {"db": db, "precision": "ns"}
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession() as session:  # its own, like the recorder's
        clock = CpuClock(influx.server)
        began = time.perf_counter()
        deadline = time.monotonic() + PHASE_TIMEOUT
        for body in bodies:
            if time.monotonic() > deadline:
                progress(f"raw: timed out after {PHASE_TIMEOUT:.0f} s")
                phase.done = False
                break
            try:
                async with session.post(
                    url, params=params, data=body, headers=headers, timeout=timeout
                ) as response:
                    if response.status >= 300:
                        phase.errors += 1
                        progress(f"raw: {response.status} {(await response.text())[:200]}")
            except (aiohttp.ClientError, TimeoutError) as err:
                phase.errors += 1
                progress(f"raw: {err!r}")
        phase.seconds = time.perf_counter() - began
        phase.cpu = clock.cores()
    phase.counted = await influx.count(db)
    await influx.drop(db)
    return phase


def new_recorder(influx: Influx, db: str, data_dir: Path, timings: Timings) -> Recorder:
    config = RecorderConfig(target=InfluxTarget(url=influx.server.url, database=db))
    rec = Recorder(GATEWAY, config, data_dir)
    timings.instrument(rec)
    return rec


def journal_sizes(data_dir: Path) -> dict[str, int]:
    """Bytes of the journal's files: the database, its WAL and shared-memory index."""
    names = {"recorder.db": "db", "recorder.db-wal": "wal", "recorder.db-shm": "shm"}
    return {
        label: (data_dir / name).stat().st_size
        for name, label in names.items()
        if (data_dir / name).exists()
    }


def journal_bytes(data_dir: Path) -> int:
    return sum(journal_sizes(data_dir).values())


async def throughput_phase(
    influx: Influx, args: argparse.Namespace, shape: Shape, tmp: Path, round_: int
) -> Phase:
    db, timings = f"bench_recorder_{round_}", Timings()
    TimedWriter.timings = timings
    rec = new_recorder(influx, db, tmp / f"rec-throughput-{round_}", timings)
    events = bus.EventBus()
    await influx.query(f'CREATE DATABASE "{db}"')
    await rec.start(events)
    phase, stats = Phase(args.points), EmitStats()
    try:
        await asyncio.sleep(0.2)  # the send loop's prepare (CREATE DATABASE) is done
        clock = CpuClock(influx.server)
        began = time.perf_counter()
        await emit_points(events, rec, shape, count=args.points, chunk=args.chunk, stats=stats)
        emitted = time.perf_counter() - began
        at_last_emit = rec.status()
        progress(f"recorder: emitted in {emitted:.2f} s; waiting for the journal to drain")
        phase.done = await wait_until(
            "written == N and queued == 0",
            lambda: rec.written >= args.points and rec.journal.points == 0,
            PHASE_TIMEOUT,
            rec,
            stats,
        )
        phase.seconds = time.perf_counter() - began
        phase.cpu = clock.cores()
        phase.extra = {
            "emit_seconds": emitted,
            "at_last_emit": at_last_emit,
            "stats": stats,
            "timings": timings,
            "status": rec.status(),
            "journal_bytes": journal_bytes(rec.journal.path.parent),
        }
    finally:
        await rec.stop()
        TimedWriter.timings = None
    phase.counted = await influx.count(db)
    await influx.drop(db)
    return phase


async def backlog_phase(
    influx: Influx, args: argparse.Namespace, shape: Shape, tmp: Path
) -> tuple[Phase, Phase]:
    """Fill the journal with influxd down, then drain it once influxd is back."""
    db, timings = "bench_backlog", Timings()
    TimedWriter.timings = timings
    data_dir = tmp / "rec-backlog"
    rec = new_recorder(influx, db, data_dir, timings)
    events = bus.EventBus()
    await influx.query(f'CREATE DATABASE "{db}"')
    await rec.start(events)
    fill, drain, stats = Phase(args.backlog), Phase(args.backlog), EmitStats()
    try:
        await asyncio.sleep(0.2)  # let the send loop prepare while influxd is still up
        progress("backlog: stopping influxd")
        await asyncio.to_thread(influx.server.stop)
        clock = CpuClock(influx.server)
        began = time.perf_counter()
        await emit_points(events, rec, shape, count=args.backlog, chunk=args.chunk, stats=stats)
        fill.done = await wait_until(
            "the backlog in the journal",
            lambda: not rec._staged and rec.journal.points >= args.backlog,
            PHASE_TIMEOUT,
        )
        fill.seconds = time.perf_counter() - began
        fill.cpu = clock.cores()
        fill.extra = {
            "journal_bytes": journal_bytes(data_dir),
            "journal_sizes": journal_sizes(data_dir),
            "queued": rec.journal.points,
            "written": rec.written,
            "last_error": rec.last_error,
            "timings": timings.copy(),
        }
        progress(
            f"backlog: {rec.journal.points:,} points queued in {fill.seconds:.2f} s, "
            f"{fill.extra['journal_bytes'] / 1e6:.1f} MB; starting influxd"
        )
        await asyncio.to_thread(influx.server.start, START_TIMEOUT)
        timings.seconds.clear()
        timings.calls.clear()
        clock = CpuClock(influx.server)
        ready = time.perf_counter()
        written_before = rec.written
        drain.done = await wait_until(
            "the first write after the outage",
            lambda: rec.written > written_before,
            PHASE_TIMEOUT,
        )
        first = time.perf_counter()
        first_written = rec.written - written_before  # before `first`: not in the drain rate
        timings.seconds.clear()
        timings.calls.clear()
        if drain.done:
            drain.done = await wait_until(
                "queued == 0",
                lambda: rec.journal.points == 0 and rec.written >= args.backlog,
                PHASE_TIMEOUT,
            )
        done = time.perf_counter()
        drain.seconds = done - first
        drain.timed = rec.written - written_before - first_written
        drain.cpu = clock.cores()
        drain.extra = {
            "reconnect_wait": first - ready,
            "from_ready_seconds": done - ready,
            "timings": timings,
            "status": rec.status(),
            "journal_bytes_after": journal_bytes(data_dir),
        }
    finally:
        await rec.stop()
        TimedWriter.timings = None
    if influx.server.proc is None:  # interrupted while it was down
        return fill, drain
    fill.counted = drain.counted = await influx.count(db)
    await influx.drop(db)
    return fill, drain


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    # SIGTERM, like Ctrl-C, cancels the bench so that influxd is stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    shape = Shape(args.nodes, args.fields)
    server = InfluxDB(tmp / "influxd")
    await asyncio.to_thread(server.start, START_TIMEOUT)
    original_writer = recorder_module.InfluxWriter
    recorder_module.InfluxWriter = TimedWriter  # type: ignore[misc]
    try:
        async with aiohttp.ClientSession() as session:
            influx = Influx(server, session)
            version = await influx.version()
            progress(f"influxd {version} on {server.url}; raw phase")
            bodies = raw_bodies(shape, args.points, args.batch_size)
            progress(f"{len(bodies)} raw bodies, {sum(map(len, bodies)) / 1e6:.1f} MB")
            raws: list[Phase] = []
            thrs: list[Phase] = []
            for round_ in range(args.rounds):  # interleaved, so both see the same machine load
                progress(f"round {round_ + 1}/{args.rounds}: raw")
                raws.append(await raw_phase(influx, bodies, args.points, f"bench_raw_{round_}"))
                progress(f"raw: {raws[-1].rate:,.0f} points/s; recorder throughput")
                thrs.append(await throughput_phase(influx, args, shape, tmp, round_))
                progress(f"recorder: {thrs[-1].rate:,.0f} points/s")
            del bodies
            progress("backlog phase")
            fill, drain = await backlog_phase(influx, args, shape, tmp)
            progress(f"backlog: drained at {drain.rate:,.0f} points/s")
        return {"version": version, "raw": raws, "throughput": thrs, "fill": fill, "drain": drain}
    finally:
        recorder_module.InfluxWriter = original_writer  # type: ignore[misc]
        await asyncio.to_thread(server.stop)


# Report ---------------------------------------------------------------------------------------


def _goal(met: bool) -> str:
    return "met" if met else "MISSED"


def _cpu(phase: Phase) -> str:
    order = ("bench", "loop", "journal", "other", "influxd")
    return ", ".join(f"{k} {phase.cpu[k]:.2f}" for k in order if k in phase.cpu)


def _timings(timings: Timings) -> str:
    labels = {"post": "POST", "remove": "journal.remove", "oldest": "journal.oldest",
              "append": "journal.append"}  # fmt: skip
    return ", ".join(
        f"{labels[k]} {timings.seconds[k]:.2f} s/{timings.calls[k]}"
        for k in ("post", "remove", "oldest", "append")
        if timings.calls.get(k)
    )


def _send_share(phase: Phase) -> str:
    """How much of the phase the send loop spent awaiting a POST or the journal."""
    timings: Timings = phase.extra["timings"]
    busy = sum(timings.seconds[k] for k in ("post", "remove", "oldest"))
    return f"send loop busy {busy / phase.seconds:.0%} of the phase" if phase.seconds else ""


def _samples(phases: list[Phase]) -> str:
    if len(phases) < 2:
        return ""
    return f"; best of {', '.join(f'{phase.rate:,.0f}' for phase in phases)}"


def _cpu_pressure() -> float | None:
    """Seconds some task waited for a CPU (Linux PSI), or None."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(some.rsplit("total=", 1)[1]) / 1e6


def _status(phase: Phase) -> str:
    return "" if phase.done else "  (TIMED OUT: figure covers what was done)"


def report(args: argparse.Namespace, results: dict[str, Any], env: dict[str, Any]) -> dict:
    raws: list[Phase] = results["raw"]
    thrs: list[Phase] = results["throughput"]
    raw = max(raws, key=lambda phase: phase.rate)
    thr = max(thrs, key=lambda phase: phase.rate)
    fill: Phase = results["fill"]
    drain: Phase = results["drain"]
    ratio = thr.rate / raw.rate if raw.rate else 0.0
    stats: EmitStats = thr.extra["stats"]
    dstatus = drain.extra.get("status", {})
    dropped = sum(p.extra["status"]["dropped"] for p in thrs) + dstatus.get("dropped", 0)
    rejected = sum(p.extra["status"]["rejected"] for p in thrs) + dstatus.get("rejected", 0)
    raw_lost, thr_lost = sum(p.lost for p in raws), sum(p.lost for p in thrs)
    lost = raw_lost + thr_lost + fill.lost
    jbytes = fill.extra.get("journal_bytes", 0)
    reconnect = drain.extra.get("reconnect_wait", 0.0)
    from_ready = drain.extra.get("from_ready_seconds", 0.0)
    drain_from_ready = drain.points / from_ready if from_ready else 0.0
    series = args.nodes * args.fields
    la0, la1 = env["load_before"], env["load_after"]
    print(
        f"EdgeIoT recorder → InfluxDB {results['version']}: {args.points:,} points "
        f"(backlog {args.backlog:,}), {series:,} series ({args.nodes} nodes x {args.fields} "
        f"float fields), batches of {args.batch_size:,}; {os.cpu_count()} CPUs"
    )
    print(
        f"  load average {la0[0]:.2f} {la0[1]:.2f} {la0[2]:.2f} at start, "
        f"{la1[0]:.2f} {la1[1]:.2f} {la1[2]:.2f} at end; runtime {env['runtime']:.0f} s"
        + (
            f"; some task waited for a CPU {env['cpu_pressure']:.0%} of the time (PSI)"
            if env["cpu_pressure"] is not None
            else ""
        )
    )
    print(
        f"  raw /write, sequential  {raw.rate:>10,.0f} points/s  ({raw.counted:,}/{raw.points:,} "
        f"counted in {raw.seconds:.2f} s, {raw.errors} errors{_samples(raws)}){_status(raw)}"
    )
    print(f"    CPU cores: {_cpu(raw)}")
    print(
        f"  recorder end to end     {thr.rate:>10,.0f} points/s  ({thr.counted:,}/{thr.points:,} "
        f"counted in {thr.seconds:.2f} s{_samples(thrs)})   goal ≥ {GOAL_POINTS_PER_S:,}: "
        f"{_goal(thr.rate >= GOAL_POINTS_PER_S)}{_status(thr)}"
    )
    print(
        f"  ratio recorder/raw      {ratio:>10.1%}             goal ≥ {GOAL_RATIO:.0%}: "
        f"{_goal(ratio >= GOAL_RATIO)}"
    )
    emit_s = thr.extra["emit_seconds"]
    print(
        f"    emitting took {emit_s:.2f} s ({thr.points / emit_s:,.0f} events/s), of which "
        f"{stats.seconds:.2f} s inside emit() ({stats.seconds / thr.points * 1e6:.2f} µs/point: "
        f"bus + _on_event + event dict); max staged {stats.max_staged:,}, "
        f"max queued {stats.max_queued:,}"
    )
    last = thr.extra["at_last_emit"]
    print(
        f"    at the last emit: staged {last['staged']:,}, queued {last['queued']:,}, "
        f"written {last['written']:,}"
    )
    print(f"    awaited: {_timings(thr.extra['timings'])}; {_send_share(thr)}")
    print(f"    CPU cores: {_cpu(thr)}")
    print(
        f"  backlog fill (down)     {fill.rate:>10,.0f} points/s  ({fill.extra.get('queued', 0):,} "
        f"queued in {fill.seconds:.2f} s){_status(fill)}"
    )
    sizes = fill.extra.get("journal_sizes", {})
    print(
        f"    journal {jbytes / 1e6:.1f} MB on disk ({jbytes / max(fill.points, 1):.0f} "
        f"bytes/point; {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in sizes.items())})"
    )
    if "timings" in fill.extra:
        print(f"    awaited: {_timings(fill.extra['timings'])}")
    print(f"    CPU cores: {_cpu(fill)}")
    print(
        f"  backlog drain           {drain.rate:>10,.0f} points/s  (from the first write, "
        f"{drain.seconds:.2f} s; {drain_from_ready:,.0f} points/s from influxd ready, "
        f"incl. {reconnect:.2f} s retry backoff; {drain.counted:,}/{drain.points:,} counted)"
        f"{_status(drain)}"
    )
    if "timings" in drain.extra:
        print(f"    awaited: {_timings(drain.extra['timings'])}; {_send_share(drain)}")
    print(f"    CPU cores: {_cpu(drain)}")
    print(
        f"    journal after the drain: {drain.extra.get('journal_bytes_after', 0) / 1e6:.1f} MB "
        f"on disk (SQLite keeps freed pages)"
    )
    print(
        f"  lost {lost:,} (raw {raw_lost:,}, recorder {thr_lost:,}, backlog {fill.lost:,}); "
        f"recorder dropped {dropped:,}, rejected {rejected:,}"
    )
    return {
        "raw_points_per_s": round(raw.rate),
        "points_per_s": round(thr.rate),
        "ratio_to_raw": round(ratio, 3),
        "backlog_fill_points_per_s": round(fill.rate),
        "drain_points_per_s": round(drain.rate),
        "drain_from_ready_points_per_s": round(drain_from_ready),
        "reconnect_wait_s": round(reconnect, 2),
        "journal_bytes": jbytes,
        "emit_us_per_point": round(stats.seconds / thr.points * 1e6, 2),
        "max_staged": stats.max_staged,
        "written_at_last_emit": thr.extra["at_last_emit"]["written"],
        "lost": lost,
        "dropped": dropped,
        "rejected": rejected,
        "points": args.points,
        "backlog_points": args.backlog,
        "batch_size": args.batch_size,
        "series": series,
        "timed_out": [
            name
            for name, p in (("raw", raw), ("throughput", thr), ("fill", fill), ("drain", drain))
            if not p.done
        ],
        "influxd_cpu_cores_raw": round(raw.cpu.get("influxd", 0.0), 2),
        "influxd_cpu_cores_recorder": round(thr.cpu.get("influxd", 0.0), 2),
        "bench_cpu_cores_recorder": round(thr.cpu.get("bench", 0.0), 2),
        "rounds": args.rounds,
        "load_avg_1m_start": round(la0[0], 2),
        "cpu_pressure_some": None if env["cpu_pressure"] is None else round(env["cpu_pressure"], 3),
        "runtime_s": round(env["runtime"], 1),
        "goals_met": {
            "points_per_s": thr.rate >= GOAL_POINTS_PER_S,
            "ratio_to_raw": ratio >= GOAL_RATIO,
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = RecorderConfig(target=InfluxTarget(url=""))
    parser.add_argument("--points", type=int, default=1_000_000, help="raw and recorder phases")
    parser.add_argument("--backlog", type=int, default=1_000_000, help="backlog phase")
    parser.add_argument(
        "--rounds", type=int, default=2, help="raw and recorder phases, interleaved; best counts"
    )
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--fields", type=int, default=10, help="float fields per node")
    parser.add_argument(
        "--chunk", type=int, default=2000, help="events emitted between yields to the loop"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="points per raw body (the recorder's default batch_size; the recorder keeps it)",
    )
    args = parser.parse_args(argv)
    if min(args.points, args.backlog, args.rounds, args.nodes, args.fields, args.chunk) < 1:
        parser.error("--points, --backlog, --rounds, --nodes, --fields, --chunk: positive")
    if args.batch_size < 1:
        parser.error("--batch-size must be positive")
    if args.backlog > defaults.max_queue_points:
        parser.error(f"--backlog must fit the journal ({defaults.max_queue_points:,} points)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="influx: %(levelname)s %(message)s"
    )
    began, load_before, pressure = time.monotonic(), os.getloadavg(), _cpu_pressure()
    with tempfile.TemporaryDirectory(prefix="edgeiot-bench-") as tmp:
        try:
            results = asyncio.run(run(args, Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("interrupted; influxd is stopped")
            return 130
    runtime = time.monotonic() - began
    after = _cpu_pressure()
    env = {"load_before": load_before, "load_after": os.getloadavg(), "runtime": runtime,
           "cpu_pressure": None if pressure is None or after is None
           else (after - pressure) / runtime}  # fmt: skip
    figures = report(args, results, env)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
