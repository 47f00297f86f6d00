"""The InfluxDB recorder against a real influxd: values, outages, SIGKILL, bounds, escaping."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edgeiot_gateway import bus
from edgeiot_gateway.recorder import InfluxTarget, Recorder, RecorderConfig
from edgeiot_gateway.recorder.influx import InfluxWriter, WriteRejected
from edgeiot_gateway.recorder.line_protocol import encode_point, escape_measurement, tag_set

from ..servers import LOOPBACK, InfluxDB, Mosquitto, free_port
from .harness import NodeSimulator, gateway_config, wait_for, wait_for_async

T0 = 1_764_000_000.0


def query(influxdb: InfluxDB, q: str, db: str = "edgeiot") -> list[list[Any]]:
    """Rows of a query's first series ([] when there is none)."""
    url = f"{influxdb.url}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.load(response)["results"][0]
    series = result.get("series")
    return series[0].get("values", []) if series else []


def values(influxdb: InfluxDB, column: str, field: str, extra: str = "") -> list[list[Any]]:
    """One column of one field's points (`field` is an InfluxQL keyword: quoted)."""
    return query(influxdb, f"SELECT {column} FROM edgeiot WHERE \"field\"='{field}'{extra}")


def emit(events: bus.EventBus, count: int, start: int = 0, field: str = "temperature") -> None:
    for i in range(start, start + count):
        events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "climate", "field_id": field,
                                      "value": float(i), "updated": T0 + i / 1000})  # fmt: skip


def recorder_config(influxdb_url: str, **extra: Any) -> RecorderConfig:
    return RecorderConfig(target=InfluxTarget(url=influxdb_url, timeout=2), **extra)


@pytest.fixture
async def recorder(tmp_path: Path, influxdb: InfluxDB) -> Any:
    events = bus.EventBus()
    rec = Recorder("gw1", recorder_config(influxdb.url, flush_interval=0.05), tmp_path / "rec")
    await rec.start(events)
    yield rec, events
    await rec.stop()


def test_line_protocol_escaping() -> None:
    """Measurement, tags and string values are escaped; numbers keep their type."""
    tags = tag_set("gw 1", "n,1", "s=1", "f\\x")
    assert tags == r"field=f\\x,gateway=gw\ 1,node=n\,1,source=s\=1"
    assert (
        encode_point(escape_measurement("my m,x"), "a=b", 1.5, 2.0, "s")
        == r"my\ m\,x,a=b value=1.5 2"
    )
    assert encode_point("m", "a=b", 7, 1.0, "ms") == "m,a=b value_int=7i 1000"
    assert encode_point("m", "a=b", True, 1.0, "s") == "m,a=b state=true 1"
    assert (
        encode_point("m", "a=b", 'say "hi"\n\\', 1.0, "s") == 'm,a=b text="say \\"hi\\"\\n\\\\" 1'
    )
    assert encode_point("m", "a=b", float("inf"), 1.0, "s") is None


async def test_values_written_and_read_back(recorder: Any, influxdb: InfluxDB) -> None:
    """Every type lands in its field, tagged with gateway, node, source and field."""
    rec, events = recorder
    emit(events, 3)
    events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "vent", "field_id": "open",
                                  "value": True, "updated": T0})  # fmt: skip
    events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "vent", "field_id": "label",
                                  "value": 'north "A", door=1', "updated": T0})  # fmt: skip
    events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "vent", "field_id": "pos",
                                  "value": 40, "updated": T0})  # fmt: skip
    await wait_for(lambda: rec.written == 6 and rec.status()["queued"] == 0, what="6 written")
    rows = values(influxdb, "value", "temperature", " AND gateway='gw1'")
    assert [r[1] for r in rows] == [0.0, 1.0, 2.0]
    assert values(influxdb, "state", "open")[0][1] is True
    assert values(influxdb, "text", "label")[0][1] == 'north "A", door=1'
    assert values(influxdb, "value_int", "pos")[0][1] == 40
    assert rec.status() | {"last_write": None} == {
        "staged": 0, "queued": 0, "written": 6, "dropped": 0, "rejected": 0, "invalid": 0,
        "filtered": 0,
        "last_error": None, "last_write": None,
    }  # fmt: skip


async def test_outage_mid_stream_loses_nothing(recorder: Any, influxdb: InfluxDB) -> None:
    """influxd stopped and restarted mid-stream: every point arrives exactly once, in order."""
    rec, events = recorder
    emit(events, 500)
    await wait_for(lambda: rec.written == 500)
    influxdb.stop()
    emit(events, 1000, start=500)
    await wait_for(lambda: rec.last_error is not None, what="write failure")
    assert rec.status()["queued"] > 0
    influxdb.start()
    emit(events, 500, start=1500)
    await wait_for(lambda: rec.written == 2000 and rec.status()["queued"] == 0, timeout=30)
    rows = values(influxdb, "value", "temperature")
    assert [r[1] for r in rows] == [float(i) for i in range(2000)]
    assert rec.last_error is None


async def test_queue_bound_drops_oldest_counted(tmp_path: Path, influxdb: InfluxDB) -> None:
    """With InfluxDB down and the queue full, the oldest points are dropped and counted."""
    influxdb.stop()
    events = bus.EventBus()
    config = recorder_config(influxdb.url, batch_size=100, max_queue_points=300)
    rec = Recorder("gw1", config, tmp_path / "rec")
    await rec.start(events)
    try:
        for chunk in range(10):
            emit(events, 100, start=chunk * 100)
            await wait_for(lambda: rec.status()["staged"] == 0)
        assert rec.status()["dropped"] == 700
        assert rec.status()["queued"] == 300
        influxdb.start()
        await wait_for(lambda: rec.written == 300, timeout=30)
        rows = query(influxdb, "SELECT value FROM edgeiot")
        assert [r[1] for r in rows] == [float(i) for i in range(700, 1000)]  # the newest kept
    finally:
        await rec.stop()


async def test_journal_pages_new_and_existing(tmp_path: Path, influxdb: InfluxDB) -> None:
    """A new journal has 64 KiB pages; one with SQLite's 4 KiB pages (an earlier version's)
    keeps them, and its points still reach InfluxDB."""
    events = bus.EventBus()
    rec = Recorder("gw1", recorder_config(influxdb.url), tmp_path / "new")
    await rec.start(events)
    await rec.stop()
    with sqlite3.connect(tmp_path / "new" / "recorder.db") as db:
        assert db.execute("PRAGMA page_size").fetchone() == (65536,)
    influxdb.stop()
    rec = Recorder("gw1", recorder_config(influxdb.url, flush_interval=0.05), tmp_path / "old")
    old = tmp_path / "old" / "recorder.db"
    old.parent.mkdir()
    with sqlite3.connect(old) as db:
        db.execute("PRAGMA page_size=4096")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE batches (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " points INTEGER NOT NULL, lines BLOB NOT NULL)")  # fmt: skip
        line = encode_point("edgeiot", tag_set("gw1", "n1", "climate", "old"), 1.5, T0, "ns")
        assert line is not None
        db.execute("INSERT INTO batches (points, lines) VALUES (1, ?)", (line.encode(),))
    await rec.start(events)
    try:
        assert rec.status()["queued"] == 1
        emit(events, 10)
        await wait_for(lambda: rec.status()["queued"] == 11)
        influxdb.start()
        await wait_for(lambda: rec.written == 11, timeout=30)
        assert values(influxdb, "value", "old") == [[T0 * 1000, 1.5]]
    finally:
        await rec.stop()
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)


async def test_bad_data_rejected_not_retried(recorder: Any, influxdb: InfluxDB) -> None:
    """A 400 (field type conflict) is counted and logged once; later points still flow."""
    rec, events = recorder
    await wait_for(lambda: ["edgeiot"] in query(influxdb, "SHOW DATABASES", db=""))
    body = f'edgeiot,field=x,gateway=gw1,node=n1,source=s value="text" {int(T0 * 1e9)}'
    request = urllib.request.Request(
        f"{influxdb.url}/write?db=edgeiot", data=body.encode(), method="POST"
    )
    (await asyncio.to_thread(urllib.request.urlopen, request, None, 5)).close()
    emit(events, 1, field="x")  # a float into a string field: refused by InfluxDB
    await wait_for(lambda: rec.rejected == 1, what="rejection")
    for i in range(2):  # other points still flow (an int has its own field key)
        events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "s", "field_id": "y",
                                      "value": i, "updated": T0 + i})  # fmt: skip
    await wait_for(lambda: rec.written == 2 and rec.status()["queued"] == 0)
    assert rec.rejected == 1


async def test_filters_and_downsampling(tmp_path: Path, influxdb: InfluxDB) -> None:
    """include/exclude patterns and a minimum interval per field thin out what is written."""
    events = bus.EventBus()
    config = recorder_config(
        influxdb.url, include=["n1.*"], exclude=["*.noisy"], min_interval=0.01, strings=False
    )
    rec = Recorder("gw1", config, tmp_path / "rec")
    await rec.start(events)
    try:
        emit(events, 100)  # 1 ms apart: one point per 10 ms is kept
        emit(events, 5, field="noisy")
        events.emit(bus.FIELD_VALUE, {"node_id": "n2", "source_id": "s", "field_id": "f",
                                      "value": 1.0, "updated": T0})  # fmt: skip
        events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "s", "field_id": "t",
                                      "value": "text", "updated": T0})  # fmt: skip
        await wait_for(lambda: rec.written == 10)
        assert rec.filtered == 100 - 10 + 5 + 2
    finally:
        await rec.stop()


async def test_v2_api_request(tmp_path: Path, socket_enabled: None) -> None:
    """The v2-compatible write (InfluxDB 2 and 3): org, bucket, precision and a token header."""
    received: list[dict[str, Any]] = []

    async def write(request: web.Request) -> web.Response:
        received.append({"query": dict(request.query), "auth": request.headers.get("Authorization"),
                         "body": await request.text()})  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    target = InfluxTarget(url=f"http://{LOOPBACK}:{port}", api=2, org="home", bucket="iot",
                          token="secret", precision="ms")  # fmt: skip
    events = bus.EventBus()
    rec = Recorder("gw1", RecorderConfig(target=target), tmp_path / "rec")
    await rec.start(events)
    try:
        emit(events, 2)
        await wait_for(lambda: rec.written == 2)
    finally:
        await rec.stop()
        await runner.cleanup()
    assert received[0]["query"] == {"org": "home", "bucket": "iot", "precision": "ms"}
    assert received[0]["auth"] == "Token secret"
    assert received[0]["body"].splitlines()[0].endswith(" value=0.0 1764000000000")


async def test_gateway_sigkill_during_outage_loses_nothing(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    """Values acknowledged (journaled) before a SIGKILL reach InfluxDB after the restart."""
    config = gateway_config(tmp_path / "gw", mosquitto)
    config["recorder"] = {"url": influxdb.url, "flush_interval": 0.05}
    config["api"]["port"] = free_port()
    config_file = tmp_path / "gateway.json"
    config_file.write_text(json.dumps(config))
    influxdb.stop()

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "edgeiot_gateway", "--config",
                                 str(config_file)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ready on API port" in line:
                return proc
        raise AssertionError("gateway did not start")

    async def diagnostics() -> dict[str, Any]:
        token = (tmp_path / "gw" / "api_token").read_text().strip()
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://127.0.0.1:{config['api']['port']}/api/v1/diagnostics",
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            return dict(await response.json())

    proc = start()
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    try:

        async def subscribed() -> bool:
            return bool((await diagnostics())["providers"]["mqtt"]["connected"])

        async def announced() -> bool:
            return bool((await diagnostics())["processed"] >= 2)  # announce and status

        status: dict[str, Any] = {}

        async def all_on_disk() -> bool:
            status.update((await diagnostics())["recorder"])
            return bool(status["queued"] == 300 and status["staged"] == 0)

        await wait_for_async(subscribed, what="MQTT subscription")
        sim.announce()
        await wait_for_async(announced, what="announce")
        for i in range(300):
            sim.state("climate", temperature=float(i))
        await wait_for_async(all_on_disk, timeout=20, what=f"journaled points, last {status}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        sim.stop()
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()

    influxdb.start()
    proc = start()
    try:
        rows: list[list[Any]] = []

        def drained() -> bool:
            rows[:] = values(influxdb, "value", "temperature")
            return len(rows) >= 300

        await wait_for(drained, timeout=30, what="backlog drained")
        assert sorted(r[1] for r in rows) == [float(i) for i in range(300)]
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


async def test_partial_write_counts_refused_points(influxdb: InfluxDB) -> None:
    """InfluxDB's partial-write answer names each unparsable line: exactly those are refused."""
    target = InfluxTarget(url=influxdb.url, timeout=5)
    async with aiohttp.ClientSession() as session:
        writer = InfluxWriter(target, session)
        await writer.prepare()
        lines = [
            "edgeiot,field=a value=1 1",
            "edgeiot,field=a value=zz 2",  # not a number
            "edgeiot,field=a value=3 3",
            "edgeiot,field=b value_int=99999999999999999999i 4",  # beyond int64
            "edgeiot,field=a value=5 5",
        ]
        with pytest.raises(WriteRejected) as err:
            await writer.write("\n".join(lines).encode())
    assert err.value.refused == 2
    assert query(influxdb, "SELECT COUNT(value) FROM edgeiot")[0][1] == 3


async def test_unstorable_values_refused_at_the_edge(recorder: Any, influxdb: InfluxDB) -> None:
    """Integers beyond 64 bits and times outside InfluxDB's range are counted as `invalid`
    and never sent, so they cannot turn a whole batch into a 400."""
    rec, events = recorder
    for value, updated in ((2**63, T0), (-(2**63) - 1, T0), (1, 1e10), (1, -1e10), (2, T0)):
        events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "s", "field_id": "i",
                                      "value": value, "updated": updated})  # fmt: skip
    await wait_for(lambda: rec.written == 1 and rec.status()["queued"] == 0)
    assert rec.status()["invalid"] == 4
    assert rec.rejected == 0
    assert values(influxdb, "value_int", "i")[0][1] == 2


async def test_a_failed_removal_is_retried_and_sends_nothing_twice(
    recorder: Any, influxdb: InfluxDB, caplog: pytest.LogCaptureFixture
) -> None:
    """Forgetting sent batches fails once (the journal's database refuses the write): logged,
    tried again with the next read, and the batches meanwhile are not sent again."""
    rec, events = recorder
    real = rec.journal.remove
    failures = iter([sqlite3.OperationalError("database is locked")])

    async def remove(ids: list[int]) -> None:
        if (err := next(failures, None)) is not None:
            raise err
        await real(ids)

    rec.journal.remove = remove
    for chunk in range(4):
        emit(events, 500, start=chunk * 500)
        await wait_for(lambda: rec.written == (chunk + 1) * 500, what="written")  # noqa: B023
    await wait_for(lambda: rec.status()["queued"] == 0, what="journal emptied")
    assert next(failures, None) is None  # the failure happened
    assert "forgetting 1 sent batches failed (tried again)" in caplog.text
    assert rec.written == 2000
    rows = values(influxdb, "value", "temperature")
    assert [r[1] for r in rows] == [float(i) for i in range(2000)]


async def test_a_failed_last_removal_is_retried_without_new_points(
    recorder: Any, influxdb: InfluxDB
) -> None:
    """The removal of the last sent batch fails and no further points arrive: it is tried
    again after a pause, and the journal empties."""
    rec, events = recorder
    real = rec.journal.remove
    failures = iter([sqlite3.OperationalError("disk I/O error")] * 2)

    async def remove(ids: list[int]) -> None:
        if (err := next(failures, None)) is not None:
            raise err
        await real(ids)

    rec.journal.remove = remove
    emit(events, 300)
    await wait_for(lambda: rec.written == 300, what="written")
    await wait_for(lambda: rec.status()["queued"] == 0, timeout=10, what="journal emptied")
    assert next(failures, None) is None
    assert rec.written == 300


async def test_failures_among_posts_in_flight_lose_and_repeat_nothing(
    tmp_path: Path, influxdb: InfluxDB
) -> None:
    """Two POSTs in flight and every third one failing (503 from a proxy in front of influxd):
    every point reaches InfluxDB, `written` counts each once, the journal ends empty."""
    posts = 0
    async with aiohttp.ClientSession() as session:

        async def write(request: web.Request) -> web.Response:
            nonlocal posts
            posts += 1
            body = await request.read()
            if posts % 3 == 2:
                await asyncio.sleep(0.05)  # the other POST completes meanwhile
                return web.Response(status=503, text="busy")
            url = f"{influxdb.url}/write?{request.query_string}"
            async with session.post(url, data=body) as answer:
                return web.Response(status=answer.status, body=await answer.read())

        async def passthrough(request: web.Request) -> web.Response:
            url = f"{influxdb.url}{request.path_qs}"
            async with session.request(request.method, url, data=await request.read()) as answer:
                return web.Response(status=answer.status, body=await answer.read())

        app = web.Application()
        app.router.add_post("/write", write)
        app.router.add_route("*", "/{tail:.*}", passthrough)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        events = bus.EventBus()
        config = recorder_config(f"http://{LOOPBACK}:{port}", batch_size=100, flush_interval=0.01)
        rec = Recorder("gw1", config, tmp_path / "rec")
        await rec.start(events)
        try:
            for chunk in range(20):
                emit(events, 100, start=chunk * 100)
                await asyncio.sleep(0.01)
            await wait_for(lambda: rec.written == 2000 and rec.status()["queued"] == 0,
                           timeout=60, what="all written")  # fmt: skip
        finally:
            await rec.stop()
            await runner.cleanup()
    assert posts > 20  # failures were retried
    assert rec.written == 2000
    rows = values(influxdb, "value", "temperature")
    assert sorted(r[1] for r in rows) == [float(i) for i in range(2000)]
