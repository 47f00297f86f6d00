"""MQTT ingest bench: broker → gateway → WebSocket client, against a bare paho subscriber.

Starts its own Mosquitto on loopback, announces `--nodes` simulated nodes (retained), then runs
three phases with the same message stream (`edgeiot/v1/<node>/state/s`, one float field update
per message, QoS 1) sent by a publisher in its own process:

1. raw: a bare paho subscriber (QoS 1, like the gateway) receives `--messages` messages;
2. throughput: the gateway (own process) receives them; one WebSocket client counts the
   `field value` events that reach it, end to end;
3. latency: `--rate` updates/s for `--seconds` s, each carrying its send time as the value.

With two or more CPUs the measured subscriber (raw, then the gateway) runs alone on the first
CPU and broker, publisher and WebSocket client share the others (`--no-pin` turns this off), so
the figures are per gateway core and vary less between runs. `--profile FILE` writes a cProfile
of the gateway process (all its threads) for phases 2 and 3 and prints its top functions.

Progress goes to stderr; figures are printed for people on stdout, then the last line is one
JSON object for tools. The goals are printed next to the figures; the exit status is 0 whenever
the bench ran, whatever the figures.
Run: `.venv/bin/python bench/ingest.py [--messages N] [--nodes N] [--profile FILE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import ctypes
import functools
import io
import json
import logging
import multiprocessing as mp
import os
import pstats
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.servers

from bench.c_ceiling import CSubscriber  # noqa: E402
from bench.crash_loss import lost_after_sigkill  # noqa: E402
from tests.servers import LOOPBACK, Mosquitto  # noqa: E402

PREFIX = "edgeiot/v1"
SOURCE = "s"
# Throughput values stay far below this; latency values are epoch seconds (time.time()).
LATENCY_MARK = 1e9

GOAL_UPDATES_PER_S = 20_000
GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0
GOAL_RATIO_C = 0.9  # of mosquitto_sub's rate
INFLIGHT = 100  # the broker's max_inflight_messages, as the add-on's Mosquitto
GOAL_RATIO_DEFERRED = 0.8  # durable acknowledgements vs acknowledgements on receipt

START_TIMEOUT = 20.0  # broker, gateway, connections
PHASE_TIMEOUT = 60.0  # one throughput phase, from the first publish
IDLE_TIMEOUT = 5.0  # no new message for this long after the publisher finished: stop waiting
STOP_TIMEOUT = 15.0
MAX_LIFETIME = 300.0  # a bench child process never lives longer


# Minimal MQTT 3.1.1 publisher: pre-encoded packets over a socket, so the load generator is not
# the bottleneck (paho's publish path costs more CPU per message than a subscriber's).


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        number, byte = divmod(number, 128)
        out.append(byte | 0x80 if number else byte)
        if not number:
            return bytes(out)


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + _varint(len(body)) + body


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


class RawPublisher:
    """One MQTT connection that publishes QoS-1 messages and counts the broker's PUBACKs."""

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=START_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Protocol "MQTT" level 4, clean session, keepalive 0 (off: the bench is short).
        body = _string("MQTT") + bytes((4, 0x02)) + struct.pack("!H", 0) + _string(client_id)
        self.sock.sendall(_packet(0x10, body))
        connack = b""
        while len(connack) < 4:
            chunk = self.sock.recv(4 - len(connack))
            if not chunk:
                raise ConnectionError("broker closed the connection before CONNACK")
            connack += chunk
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack.hex()}")
        self.sock.settimeout(None)
        self._received = 0  # bytes; the broker only sends 4-byte PUBACKs to a publisher
        self._packet_id = 0
        self._reader = threading.Thread(target=self._read, name="bench-puback", daemon=True)
        self._reader.start()

    @property
    def acked(self) -> int:
        return self._received // 4

    def encode(self, topic: str, payload: bytes, *, retain: bool = False) -> bytes:
        self._packet_id = self._packet_id % 65535 + 1
        body = _string(topic) + struct.pack("!H", self._packet_id) + payload
        return _packet(0x32 | int(retain), body)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_acked(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.acked < count:
            if time.monotonic() > deadline or not self._reader.is_alive():
                return False
            time.sleep(0.005)
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
            self.sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(timeout=2)
        self.sock.close()

    def _read(self) -> None:
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                self._received += len(chunk)


def node_id(index: int) -> str:
    return f"node-{index:04d}"


def state_topic(index: int) -> str:
    return f"{PREFIX}/{node_id(index)}/state/{SOURCE}"


def state_payload(field_index: int, value: float) -> bytes:
    return json.dumps({"v": 1, "values": {f"f{field_index}": value}}).encode()


def announce_nodes(port: int, nodes: int, fields: int) -> None:
    """Publish a retained announce for every node and wait until the broker has them all."""
    fields_def = [{"id": f"f{k}", "type": "float"} for k in range(fields)]
    announce = json.dumps({"v": 1, "sources": [{"id": SOURCE, "fields": fields_def}]}).encode()
    publisher = RawPublisher(port, "bench-announce")
    try:
        publisher.send(
            b"".join(
                publisher.encode(f"{PREFIX}/{node_id(n)}/announce", announce, retain=True)
                for n in range(nodes)
            )
        )
        if not publisher.wait_acked(nodes, START_TIMEOUT):
            raise TimeoutError(f"broker acknowledged {publisher.acked}/{nodes} announcements")
    finally:
        publisher.close()


def publisher_main(conn: Connection, port: int, job: dict[str, Any]) -> None:
    """Publisher process: `burst` sends `count` pre-encoded updates as fast as it can,
    `paced` sends `count` updates at `rate`/s with time.time() as the value."""
    child_setup(None)
    publisher = RawPublisher(port, f"bench-pub-{os.getpid()}")
    nodes, fields, count = job["nodes"], job["fields"], job["count"]
    try:
        chunks: list[bytes] = []
        if job["kind"] == "burst":
            # Message i updates field i // nodes % fields of node i % nodes to (i % 1000) / 4.
            chunks = [
                b"".join(
                    publisher.encode(
                        state_topic(i % nodes), state_payload(i // nodes % fields, (i % 1000) / 4)
                    )
                    for i in range(start, min(start + 500, count))
                )
                for start in range(0, count, 500)
            ]
        conn.send("ready")  # connected and encoded: the bench starts its clocks, then says go
        if not conn.poll(START_TIMEOUT):
            return
        conn.recv()
        cpu_at_go = sum(os.times()[:2])
        if job["kind"] == "burst":
            first = time.monotonic()
            for chunk in chunks:
                publisher.send(chunk)
        else:
            interval = 1 / job["rate"]
            first = time.monotonic()
            for i in range(count):
                if (delay := first + i * interval - time.monotonic()) > 0:
                    time.sleep(delay)
                payload = state_payload(i // nodes % fields, time.time())
                publisher.send(publisher.encode(state_topic(i % nodes), payload))
        sent = time.monotonic()
        publisher.wait_acked(count, PHASE_TIMEOUT)
        conn.send(
            {
                "first": first,
                "sent": sent,
                "acked_at": time.monotonic(),
                "acked": publisher.acked,
                "cpu": sum(os.times()[:2]) - cpu_at_go,
            }
        )
    finally:
        publisher.close()


# Processes -------------------------------------------------------------------------------------


class Child:
    """A bench process with a pipe to it; always stopped within a bounded time."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(target=target, args=(child_conn, *args))
        self.process.daemon = True
        self.process.start()
        child_conn.close()

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    async def recv(self, seconds: float, what: str) -> Any:
        """The next message from the process; fails if it exits or stays silent too long."""
        deadline = time.monotonic() + seconds
        while not self.conn.poll():
            if not self.process.is_alive() and not self.conn.poll():
                raise RuntimeError(f"{what}: process exited with {self.process.exitcode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: no answer within {seconds} s")
            await asyncio.sleep(0.01)
        return self.conn.recv()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


class BenchMosquitto(Mosquitto):
    """The test Mosquitto without persistence or queue bound, pinned to the bench's CPU set."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, persistent=False, max_queued=0, max_inflight=INFLIGHT)

    def start(self, timeout: float = START_TIMEOUT) -> None:
        with self.log.open("ab") as log:
            # Started first, before the bench has any thread: preexec_fn is safe here.
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start:\n{self.log.read_text()}")
            time.sleep(0.02)


def _stat_cpu(stat: Path) -> float:
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the bench dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each process and, as "name/thread", of each thread
    of the gateway (Linux /proc)."""
    snapshot: dict[str, float] = {}
    for name, pid in pids.items():
        snapshot[name] = _stat_cpu(Path(f"/proc/{pid}/stat"))
        if name != "gateway":
            continue
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                thread = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            except OSError:
                continue
            key = f"{name}/{thread}"
            snapshot[key] = snapshot.get(key, 0.0) + _stat_cpu(task / "stat")
    return snapshot


def pin(cpus: set[int] | None) -> None:
    """Run the calling thread (and the threads and processes it starts) on these CPUs."""
    if cpus:
        os.sched_setaffinity(0, cpus)


def child_setup(cpus: set[int] | None) -> None:
    """First thing in a bench child: its CPUs; Ctrl-C is the bench's to handle, not its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin(cpus)


def wait_for_stop(conn: Connection) -> None:
    """Block until the bench says stop, goes away, or MAX_LIFETIME passed: never outlive it."""
    parent, deadline = mp.parent_process(), time.monotonic() + MAX_LIFETIME
    while not conn.poll(0.1):
        if (parent is not None and not parent.is_alive()) or time.monotonic() > deadline:
            return


# The gateway in its own process ------------------------------------------------------------


def gateway_main(
    conn: Connection, cpus: set[int] | None, config: dict[str, Any], profile: str | None
) -> None:
    """Gateway process: start, say the API port, run until told to stop."""
    child_setup(cpus)
    logging.basicConfig(level=logging.WARNING, format="gateway %(levelname)s %(name)s: %(message)s")
    asyncio.run(_run_gateway(conn, config, profile))


async def _run_gateway(conn: Connection, config: dict[str, Any], profile: str | None) -> None:
    from edgeiot_gateway.config import parse_config  # noqa: PLC0415
    from edgeiot_gateway.gateway import Gateway  # noqa: PLC0415

    gateway = Gateway(parse_config(config, Path.cwd()))
    await gateway.start()
    profiler = cProfile.Profile() if profile else None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not all(p.connected for p in gateway.providers.values()):
            if time.monotonic() > deadline:
                raise TimeoutError("gateway: MQTT provider not connected")
            await asyncio.sleep(0.02)
        assert gateway.api is not None
        conn.send(gateway.api.port)
        if profiler is not None:
            profiler.enable()
        await asyncio.to_thread(wait_for_stop, conn)
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        await gateway.stop()


# Subscribers ---------------------------------------------------------------------------------


class RawSubscriber:
    """A bare paho subscriber to the whole tree at QoS 1; counts live (non-retained) messages
    into shared memory, so the bench can follow it from another process."""

    def __init__(self, port: int, count: Any, last: Any) -> None:
        self.count, self.last = count, last
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="bench-raw",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(LOOPBACK, port, keepalive=60)
        self.client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT):
            self.close()
            raise TimeoutError("raw subscriber: no SUBACK")

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(f"{PREFIX}/#", qos=1)

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if not message.retain:
            self.count.value += 1
            self.last.value = time.monotonic()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_main(conn: Connection, cpus: set[int] | None, port: int, count: Any, last: Any) -> None:
    """Raw subscriber process: subscribe, say ready, count until told to stop."""
    child_setup(cpus)
    subscriber = RawSubscriber(port, count, last)
    try:
        conn.send("ready")
        wait_for_stop(conn)
    finally:
        subscriber.close()


@dataclass
class WsListener:
    """One API client: start_listening, then counts `field value` events as they arrive."""

    port: int
    token: str
    coalesce: bool = True  # ask for coalesced frames (supported_features)
    count: int = 0  # throughput updates received
    last: float = 0.0  # monotonic time of the last one
    latencies: list[float] = field(default_factory=list)  # seconds, publish → event
    close_code: int | None = None
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _reader: asyncio.Task[None] | None = None
    _pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _ids: int = 0

    async def connect(self) -> dict[str, Any]:
        self._session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {self.token}"})
        self._ws = await asyncio.wait_for(
            self._session.ws_connect(f"http://{LOOPBACK}:{self.port}/api/v1/ws", max_msg_size=0),
            START_TIMEOUT,
        )
        version = await self._ws.receive_json(timeout=START_TIMEOUT)
        if version.get("type") != "version":
            raise RuntimeError(f"unexpected first message {version}")
        self._reader = asyncio.create_task(self._read())
        if self.coalesce:  # as the HA integration does: several messages per frame
            await self.command("supported_features", features={"coalesce_messages": 1})
        return await self.command("start_listening")

    async def command(self, command: str, **args: Any) -> dict[str, Any]:
        assert self._ws is not None
        self._ids += 1
        message_id = str(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        await self._ws.send_json({"message_id": message_id, "command": command, **args})
        result = await asyncio.wait_for(future, START_TIMEOUT)
        if not result.get("success"):
            raise RuntimeError(f"{command} failed: {result}")
        return dict(result["result"])

    async def _read(self) -> None:
        assert self._ws is not None
        loads, monotonic, now = json.loads, time.monotonic, time.time
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = loads(message.data)
            for item in data if isinstance(data, list) else (data,):
                self._handle(item, now, monotonic)
        self.close_code = self._ws.close_code

    def _handle(
        self, data: dict[str, Any], now: Callable[[], float], monotonic: Callable[[], float]
    ) -> None:
        if data["type"] == "event":
            event = data["event"]
            if event["event"] == "field value":
                value = event["value"]
                if value > LATENCY_MARK:
                    self.latencies.append(now() - value)
                else:
                    self.count += 1
                    self.last = monotonic()
        elif data["type"] == "result":
            future = self._pending.pop(str(data["message_id"]), None)
            if future is not None and not future.done():
                future.set_result(data)

    def received(self) -> int:
        return self.count

    def last_received(self) -> float:
        return self.last

    @property
    def closed(self) -> bool:
        """Whether the connection ended (the reader finished)."""
        return self._reader is not None and self._reader.done()

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 5)
        if self._session is not None:
            await self._session.close()


async def wait_received(
    received: Callable[[], int],
    target: int,
    publisher_done: asyncio.Future[Any],
    start: float,
    progress: Callable[[], object] | None = None,
) -> None:
    """Until `target` arrived, or no progress (`progress()` changing; by default the count) for
    IDLE_TIMEOUT after publishing, or the phase deadline."""
    progress = progress or received
    last_seen, last_progress = None, time.monotonic()
    while received() < target:
        now = time.monotonic()
        if (seen := progress()) != last_seen:
            last_seen, last_progress = seen, now
        elif publisher_done.done() and now - last_progress > IDLE_TIMEOUT:
            return
        if now - start > PHASE_TIMEOUT:
            return
        await asyncio.sleep(0.02)


async def publish(
    port: int, job: dict[str, Any], on_ready: Callable[[], None]
) -> tuple[Child, asyncio.Task[Any]]:
    """Start a publisher process; once it is ready, call `on_ready` and let it go."""
    child = Child(publisher_main, port, job)
    try:
        await child.recv(START_TIMEOUT + PHASE_TIMEOUT, "publisher start")
        on_ready()
        child.conn.send("go")
    except BaseException:
        child.stop(0)
        raise
    return child, asyncio.create_task(child.recv(PHASE_TIMEOUT + 30, "publisher"))


# Phases --------------------------------------------------------------------------------------


@dataclass
class Phase:
    published: int
    received: int
    seconds: float  # first publish → last receive
    publish_seconds: float  # first publish → last PUBACK
    cpu: dict[str, float] = field(default_factory=dict)  # cores used during the phase

    @property
    def rate(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0


def _cpu_use(pids: dict[str, int], before: dict[str, float], wall: float) -> dict[str, float]:
    after = cpu_snapshot(pids)
    use = {name: (seconds - before.get(name, 0.0)) / wall for name, seconds in after.items()}
    return {name: cores for name, cores in use.items() if "/" not in name or cores >= 0.01}


async def burst_phase(
    port: int,
    args: argparse.Namespace,
    received: Callable[[], int],
    last: Callable[[], float],
    pids: dict[str, int],
    *,
    progress: Callable[[], object] | None = None,
) -> Phase:
    job = {"kind": "burst", "nodes": args.nodes, "fields": args.fields, "count": args.messages}
    before: dict[str, float] = {}
    wall_start = 0.0

    def start_clocks() -> None:
        nonlocal wall_start
        before.update(cpu_snapshot(pids))
        wall_start = time.monotonic()

    child, done = await publish(port, job, start_clocks)
    try:
        await wait_received(received, args.messages, done, wall_start, progress)
        result = await done
    finally:
        child.stop()
    wall = time.monotonic() - wall_start
    cpu = _cpu_use(pids, before, wall)
    cpu["publisher"] = result["cpu"] / wall
    count = received()
    return Phase(
        published=args.messages,
        received=count,
        seconds=(last() - result["first"]) if count else 0.0,
        publish_seconds=result["acked_at"] - result["first"],
        cpu=cpu,
    )


async def latency_phase(port: int, args: argparse.Namespace, ws: WsListener) -> Phase:
    count = int(args.rate * args.seconds)
    job = {"kind": "paced", "nodes": args.nodes, "fields": args.fields, "count": count}
    job["rate"] = args.rate
    child, done = await publish(port, job, lambda: None)
    try:
        await wait_received(lambda: len(ws.latencies), count, done, time.monotonic())
        result = await done
    finally:
        child.stop()
    return Phase(
        published=count,
        received=len(ws.latencies),
        seconds=args.seconds,
        publish_seconds=result["acked_at"] - result["first"],
    )


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    # SIGTERM, like Ctrl-C, cancels the bench so that every process it started is stopped.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    broker = BenchMosquitto(tmp / "mosquitto")
    broker.start()
    try:
        assert broker.proc is not None
        announce_nodes(broker.port, args.nodes, args.fields)
        progress(f"broker on port {broker.port}, {args.nodes} nodes announced; raw phase")

        # 1. Raw ceiling: a bare paho subscriber in its own process, where the gateway will be.
        ctx = mp.get_context("spawn")
        count, last = ctx.Value("q", 0, lock=False), ctx.Value("d", 0.0, lock=False)
        raw_sub = Child(raw_main, args.subject_cpus, broker.port, count, last)
        try:
            await raw_sub.recv(START_TIMEOUT, "raw subscriber start")
            pids = {"subscriber": raw_sub.pid, "mosquitto": broker.proc.pid}
            raws = []
            for _ in range(args.rounds):
                count.value, last.value = 0, 0.0
                raws.append(
                    await burst_phase(
                        broker.port,
                        args,
                        lambda: int(count.value),
                        lambda: float(last.value),
                        pids,
                    )
                )
        finally:
            with contextlib.suppress(OSError):
                raw_sub.conn.send("stop")
            raw_sub.stop()

        # 1b. The broker's delivery ceiling: its own C client, output discarded.
        progress(f"raw: {', '.join(f'{r.rate:,.0f}' for r in raws)} msgs/s; C ceiling phase")
        ceilings = []
        for _ in range(args.rounds):
            csub = CSubscriber(
                LOOPBACK, broker.port, f"{PREFIX}/+/state/{SOURCE}", args.messages,
                args.subject_cpus,
            )  # fmt: skip
            try:
                await asyncio.to_thread(csub.wait_subscribed, START_TIMEOUT)
                csub.start_watching()
                pids = {"mosquitto_sub": csub.pid, "mosquitto": broker.proc.pid}
                ceilings.append(
                    await burst_phase(
                        broker.port,
                        args,
                        csub.received,
                        csub.last,
                        pids,
                        progress=functools.partial(_stat_cpu, Path(f"/proc/{csub.pid}/stat")),
                    )
                )
            finally:
                csub.stop()

        # 2. Gateway throughput, end to end to one WebSocket client: acknowledgements deferred
        # until durable (the default), then on receipt (the baseline of their cost).
        progress(f"C ceiling: {', '.join(f'{c.rate:,.0f}' for c in ceilings)} msgs/s")
        durable = await gateway_phases(args, broker.port, broker.proc.pid, tmp, "durable")
        received = await gateway_phases(args, broker.port, broker.proc.pid, tmp, "received")

        # 4. SIGKILL mid-stream, with each kind of acknowledgement.
        progress("SIGKILL phases")
        crashes = {}
        for ack in ("durable", "received"):
            crashes[ack] = await asyncio.to_thread(
                lost_after_sigkill, broker.port, tmp / f"crash-{ack}", ack,
                args.crash_messages, args.crash_after,
            )  # fmt: skip
        return {
            "raw": raws, "ceiling": ceilings, **durable,
            "throughput_ack_received": received["throughput"],
            "latency_ack_received": received["latency"], "crashes": crashes,
        }  # fmt: skip
    finally:
        broker.stop()


async def gateway_phases(
    args: argparse.Namespace, port: int, broker_pid: int, tmp: Path, ack: str
) -> dict[str, Any]:
    """Throughput rounds and the latency phase of a gateway in its own process."""
    progress(f"starting the gateway (ack = {ack})")
    token = secrets.token_urlsafe(32)
    config = {
        "gateway_id": f"bench-gw-{ack}",
        "data_dir": str(tmp / f"gateway-{ack}"),
        "log_level": "warning",
        "api": {"host": LOOPBACK, "port": 0, "token": token},
        "providers": [{"type": "mqtt", "host": LOOPBACK, "port": port, "ack": ack}],
    }
    gateway = Child(gateway_main, args.subject_cpus, config, args.profile)
    try:
        api_port = await gateway.recv(START_TIMEOUT, "gateway start")
        ws = WsListener(api_port, token, args.coalesce)
        listeners, forced_close = [ws], None
        try:
            state = await ws.connect()
            deadline = time.monotonic() + START_TIMEOUT
            while len(state["state"]["nodes"]) < args.nodes:  # the retained announces
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gateway knows {len(state['state']['nodes'])} nodes")
                await asyncio.sleep(0.1)
                state = {"state": await ws.command("get_state")}
            pids = {"gateway": gateway.pid, "mosquitto": broker_pid, "bench": os.getpid()}
            progress("gateway ready; throughput phase")
            throughputs: list[Phase] = []
            for _ in range(args.rounds + 1):
                if ws.closed:  # the gateway dropped us (fell behind?): reconnect, as HA would
                    forced_close = ws.close_code
                    ws = WsListener(api_port, token, args.coalesce)
                    listeners.append(ws)
                    await ws.connect()
                if len(throughputs) == args.rounds:
                    break
                ws.count, ws.last = 0, 0.0
                throughputs.append(
                    await burst_phase(port, args, ws.received, ws.last_received, pids)
                )
            # 3. Latency at a fixed rate.
            rates = ", ".join(f"{t.rate:,.0f}" for t in throughputs)
            progress(f"gateway: {rates} updates/s; latency phase")
            latency = await latency_phase(port, args, ws)
            diagnostics = await ws.command("get_diagnostics")
        finally:
            for listener in listeners:
                await listener.close()
        return {
            "throughput": throughputs,
            "latency": latency,
            "latencies": ws.latencies,
            "diagnostics": diagnostics,
            "forced_close": forced_close,
        }
    finally:
        with contextlib.suppress(OSError):
            gateway.conn.send("stop")
        gateway.stop()


# Report --------------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"ingest: {text}", file=sys.stderr, flush=True)


def _goal(met: bool) -> str:
    return "met" if met else "MISSED"


def report(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    raws: list[Phase] = results["raw"]
    thrs: list[Phase] = results["throughput"]
    raw = max(raws, key=lambda phase: phase.rate)
    thr = max(thrs, key=lambda phase: phase.rate)
    ceiling = max(results["ceiling"], key=lambda phase: phase.rate)
    thr_received = max(results["throughput_ack_received"], key=lambda phase: phase.rate)
    ratio_ceiling = thr.rate / ceiling.rate if ceiling.rate else 0.0
    ratio_deferred = thr.rate / thr_received.rate if thr_received.rate else 0.0
    crashes: dict[str, dict[str, Any]] = results["crashes"]
    lat: Phase = results["latency"]
    latencies: list[float] = results["latencies"]
    diag: dict[str, Any] = results["diagnostics"]
    dropped = sum(diag["dropped"].values())
    ratio = thr.rate / raw.rate if raw.rate else 0.0
    p50 = percentile(latencies, 0.50) * 1000 if latencies else None
    p99 = percentile(latencies, 0.99) * 1000 if latencies else None
    lost_thr = sum(phase.published - phase.received for phase in thrs)
    lost_lat = lat.published - lat.received

    def samples(phases: list[Phase]) -> str:
        if len(phases) < 2:
            return ""
        return f"; best of {', '.join(f'{phase.rate:,.0f}' for phase in phases)}"

    def cpu(phase: Phase) -> str:
        parts = []
        for name, use in phase.cpu.items():
            if "/" in name:
                continue
            threads = [
                f"{key.split('/', 1)[1]} {cores:.2f}"
                for key, cores in phase.cpu.items()
                if key.startswith(name + "/")
            ]
            parts.append(f"{name} {use:.2f}" + (f" [{', '.join(threads)}]" if threads else ""))
        return ", ".join(parts)

    pinning = (
        f"subscriber/gateway on CPU {sorted(args.subject_cpus)}, "
        f"the rest on {sorted(args.other_cpus)}"
        if args.subject_cpus
        else "not pinned"
    )
    print(
        f"EdgeIoT MQTT ingest: {args.messages:,} messages, {args.nodes} nodes x {args.fields} "
        f"float fields, QoS 1, {os.cpu_count()} CPUs ({pinning})"
    )
    print(
        f"  raw paho subscriber   {raw.rate:>10,.0f} msgs/s     "
        f"({raw.received:,}/{raw.published:,} in {raw.seconds:.2f} s; "
        f"publisher acked all in {raw.publish_seconds:.2f} s{samples(raws)})"
    )
    print(f"    CPU cores used: {cpu(raw)}")
    print(
        f"  C mosquitto_sub       {ceiling.rate:>10,.0f} msgs/s     "
        f"({ceiling.received:,}/{ceiling.published:,} in {ceiling.seconds:.2f} s"
        f"{samples(results['ceiling'])}); the broker's delivery ceiling"
    )
    print(f"    CPU cores used: {cpu(ceiling)}")
    print(
        f"  gateway → WebSocket   {thr.rate:>10,.0f} updates/s  "
        f"({thr.received:,}/{thr.published:,} in {thr.seconds:.2f} s{samples(thrs)})   "
        f"goal ≥ {GOAL_UPDATES_PER_S:,}: {_goal(thr.rate >= GOAL_UPDATES_PER_S)}"
    )
    print(f"    CPU cores used: {cpu(thr)}")
    print(
        f"  ratio gateway/raw     {ratio:>10.1%}             "
        f"goal ≥ {GOAL_RATIO:.0%}: {_goal(ratio >= GOAL_RATIO)}"
    )
    print(
        f"  ratio gateway/C       {ratio_ceiling:>10.1%}             "
        f"goal ≥ {GOAL_RATIO_C:.0%}: {_goal(ratio_ceiling >= GOAL_RATIO_C)}"
    )
    print(
        f"  ack on receipt        {thr_received.rate:>10,.0f} updates/s  "
        f"(the cost of durable acks: {ratio_deferred:.1%} of it, "
        f"goal ≥ {GOAL_RATIO_DEFERRED:.0%}: {_goal(ratio_deferred >= GOAL_RATIO_DEFERRED)})"
    )
    for ack, crash in crashes.items():
        print(
            f"  SIGKILL (ack {ack:8}) lost {crash['lost']:,} of {crash['published']:,} "
            f"({crash['recorded_before_restart']:,} recorded before the restart, "
            f"{crash['seconds']} s)"
        )
    if p50 is not None and p99 is not None:
        print(
            f"  latency @ {args.rate:,.0f}/s      p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
            f"max {max(latencies) * 1000:.2f} ms "
            f"({lat.received:,}/{lat.published:,})   "
            f"goal p99 < {GOAL_P99_MS:.0f} ms: {_goal(p99 < GOAL_P99_MS)}"
        )
    else:
        print(f"  latency @ {args.rate:,.0f}/s      no event received")
    print(
        f"  lost {lost_thr + lost_lat:,} (throughput {lost_thr:,}, latency {lost_lat:,}); "
        f"gateway drops {dropped:,} {diag['dropped'] or ''}; "
        f"processed {diag['processed']:,}; providers {diag['providers']}"
    )
    if results["forced_close"] is not None:
        print(
            f"  the gateway closed the WebSocket during the throughput phase "
            f"(code {results['forced_close']}); the latency phase used a new connection"
        )
    if args.profile:
        out = io.StringIO()
        stats = pstats.Stats(args.profile, stream=out)
        stats.sort_stats("tottime").print_stats(args.profile_lines)
        print(f"  gateway profile (throughput + latency phases, by own time) -> {args.profile}")
        print(out.getvalue())
    return {
        "raw_msgs_per_s": round(raw.rate),
        "updates_per_s": round(thr.rate),
        "ratio_to_raw": round(ratio, 3),
        "c_ceiling_msgs_per_s": round(ceiling.rate),
        "ratio_to_c_ceiling": round(ratio_ceiling, 3),
        "updates_per_s_ack_received": round(thr_received.rate),
        "deferred_ack_ratio": round(ratio_deferred, 3),
        "lost_after_sigkill": crashes["durable"]["lost"],
        "lost_after_sigkill_ack_received": crashes["received"]["lost"],
        "p50_ms": None if p50 is None else round(p50, 2),
        "p99_ms": None if p99 is None else round(p99, 2),
        "lost": lost_thr + lost_lat,
        "dropped": dropped,
        "messages": args.messages,
        "nodes": args.nodes,
        "rounds": args.rounds,
        "gateway_cpu_cores": round(thr.cpu.get("gateway", 0.0), 2),
        "pinned": bool(args.subject_cpus),
        "goals_met": {
            "updates_per_s": thr.rate >= GOAL_UPDATES_PER_S,
            "ratio_to_raw": ratio >= GOAL_RATIO,
            "p99_ms": p99 is not None and p99 < GOAL_P99_MS,
            "ratio_to_c_ceiling": ratio_ceiling >= GOAL_RATIO_C,
            "deferred_ack_ratio": ratio_deferred >= GOAL_RATIO_DEFERRED,
            "lost_after_sigkill": crashes["durable"]["lost"] == 0,
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="per throughput phase")
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument(
        "--rounds", type=int, default=2, help="raw and throughput phases each; the best counts"
    )
    parser.add_argument("--fields", type=int, default=4, help="float fields per node")
    parser.add_argument("--rate", type=float, default=1000, help="latency phase updates/s")
    parser.add_argument("--seconds", type=float, default=5, help="latency phase duration")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not give the measured subscriber a CPU of its own",
    )
    parser.add_argument(
        "--crash-messages", type=int, default=20_000, help="SIGKILL phases: messages"
    )
    parser.add_argument(
        "--crash-after", type=float, default=1.0, help="SIGKILL phases: seconds into the stream"
    )
    parser.add_argument(
        "--no-coalesce",
        dest="coalesce",
        action="store_false",
        help="one message per WebSocket frame (clients that do not ask for coalesce_messages)",
    )
    parser.add_argument("--profile", help="write a cProfile of the gateway process here")
    parser.add_argument("--profile-lines", type=int, default=30)
    args = parser.parse_args(argv)
    if min(args.messages, args.nodes, args.fields, args.rounds) < 1 or args.rate <= 0:
        parser.error("--messages, --nodes, --fields, --rounds and --rate must be positive")
    if args.nodes > 9999:
        parser.error("--nodes must be at most 9999")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    # The measured subscriber (raw, then the gateway) gets a core of its own; broker, publisher
    # and WebSocket client share the others. Set before any thread or process is started.
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    args.subject_cpus, args.other_cpus = None, None
    if args.pin and len(cpus) >= 2:
        args.subject_cpus, args.other_cpus = {cpus[0]}, set(cpus[1:])
        pin(args.other_cpus)
    with tempfile.TemporaryDirectory(prefix="edgeiot-bench-") as tmp:
        try:
            results = asyncio.run(run(args, Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("interrupted; every process it started is stopped")
            return 130
    figures = report(args, results)
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
