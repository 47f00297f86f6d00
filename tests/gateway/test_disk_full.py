"""A full disk (a real tmpfs): recording halts visibly, resumes, loses nothing."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeiot_gateway import bus
from edgeiot_gateway.recorder import InfluxTarget, Recorder, RecorderConfig
from edgeiot_gateway.recorder.recorder import COMMIT_LOOP

from ..servers import InfluxDB, Mosquitto
from .harness import NodeSimulator, gateway_config, start_gateway, wait_for
from .test_recorder import query

NODE = "greenhouse-1"
T0 = 1_764_000_000.0
TEXT = "x" * 250  # large points (the longest text a field takes) fill pages quickly


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: a filesystem that really runs out of space."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (b"\0" * 65536, b"\0"):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return filler


async def test_disk_full_recording_resumes_nothing_lost(
    small_disk: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    """The journal commit fails with SQLITE_FULL: the loop keeps running, shows the error in the
    status (problems, recorder last_error), holds back the MQTT acknowledgements and, once space
    is freed, commits and sends every point."""
    recorder = {"url": influxdb.url, "flush_interval": 0.05}
    config = gateway_config(small_disk / "gw", mosquitto, recorder=recorder)
    gateway = await start_gateway(config)
    node = NodeSimulator(mosquitto, NODE).start()
    try:
        node.announce()
        await wait_for(lambda: NODE in gateway.processor.nodes, what="announce")
        assert gateway.recorder is not None
        rec = gateway.recorder
        for i in range(10):
            node.publish("state/vent", {"v": 1, "values": {"position": i}, "ts": T0 + i})
        await wait_for(lambda: rec.written == 10, what="10 points before the disk is full")

        filler = fill(small_disk)
        total = 10 + 2000
        for i in range(10, total):
            node.publish("state/vent", {"v": 1, "values": {"label": TEXT}, "ts": T0 + i})
        await wait_for(lambda: gateway.health.failing(COMMIT_LOOP), what="commit failure")
        problems = {p["loop"]: p for p in gateway.commands.status()["problems"]}
        assert "full" in (problems[COMMIT_LOOP]["error"] or "")
        assert "full" in (rec.status()["last_error"] or "")
        assert gateway.durability.waiting > 0  # acknowledgements held back

        filler.unlink()
        await wait_for(
            lambda: rec.written == total and rec.status()["queued"] == 0,
            timeout=60,
            what="every point written after the space came back",
        )
        assert not gateway.health.failing(COMMIT_LOOP)
        assert gateway.commands.status()["problems"] == []
        assert rec.status()["last_error"] is None
        assert gateway.health.loops[COMMIT_LOOP].errors >= 1
        counted = query(influxdb, "SELECT COUNT(text) FROM edgeiot")[0][1]
        assert counted == total - 10
    finally:
        node.stop()
        await gateway.stop()


async def test_staged_points_bounded_while_the_journal_fails(
    small_disk: Path, influxdb: InfluxDB
) -> None:
    """While the journal cannot be written, at most max_staged_points wait in memory; the
    oldest beyond are dropped and counted, and the rest is written once space is back."""
    config = RecorderConfig(
        target=InfluxTarget(url=influxdb.url, timeout=2),
        batch_size=100, flush_interval=0.05, max_staged_points=1000,
    )  # fmt: skip
    events = bus.EventBus()
    rec = Recorder("gw1", config, small_disk / "rec")
    await rec.start(events)
    try:
        filler = fill(small_disk)
        for i in range(5000):
            events.emit(bus.FIELD_VALUE, {"node_id": "n1", "source_id": "s", "field_id": "t",
                                          "value": TEXT, "updated": T0 + i})  # fmt: skip
            if i == 0:
                await wait_for(lambda: rec.health.failing(COMMIT_LOOP), what="commit failure")
        assert rec.status()["staged"] <= 1000 + config.batch_size
        dropped = rec.status()["dropped"]
        assert dropped == 5000 - rec.status()["staged"]
        filler.unlink()
        await wait_for(
            lambda: rec.written == 5000 - dropped and rec.status()["queued"] == 0, timeout=60
        )
        assert query(influxdb, "SELECT COUNT(text) FROM edgeiot")[0][1] == 5000 - dropped
    finally:
        await rec.stop()
