"""SIGKILL of a gateway process mid-stream: broker and gateway together lose no message."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..servers import InfluxDB, Mosquitto
from .harness import ANNOUNCE, wait_for
from .test_recorder import query
from .test_resilience import _start_process, _stop_process

NODE = "greenhouse-1"
MESSAGES = 4000
T0 = 1_764_000_000.0


def _config(path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> Path:
    path.write_text(
        'gateway_id = "crash-gw"\ndata_dir = "data"\n'
        '[api]\nhost = "127.0.0.1"\nport = 0\nadvertise = false\n'
        f'[recorder]\nurl = "{influxdb.url}"\n'
        f'[[providers]]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
    )
    return path


def _count(influxdb: InfluxDB) -> int:
    rows = query(influxdb, "SELECT COUNT(value) FROM edgeiot WHERE \"field\"='temperature'")
    return int(rows[0][1]) if rows else 0


async def test_sigkill_loses_no_acknowledged_message(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    """A node streams QoS-1 values; the gateway is SIGKILLed while they arrive and started
    again: every value reaches InfluxDB (the gateway acknowledged only committed messages, the
    broker kept the rest in the gateway's persistent session)."""
    config = _config(tmp_path / "gateway.toml", mosquitto, influxdb)
    proc, _ = _start_process(config)
    node = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="crash-node")
    node.connect(mosquitto.host, mosquitto.port)
    node.loop_start()
    killed = threading.Event()
    try:
        node.publish(f"edgeiot/v1/{NODE}/announce", json.dumps(ANNOUNCE), qos=1, retain=True)
        await wait_for((tmp_path / "data" / "edgeiot.db").exists, what="store")

        def stream() -> None:
            for i in range(MESSAGES):
                payload = {"v": 1, "values": {"temperature": i / 10}, "ts": T0 + i / 1000}
                node.publish(f"edgeiot/v1/{NODE}/state/climate", json.dumps(payload), qos=1)
                if i == MESSAGES // 2:
                    proc.kill()  # SIGKILL while messages are in flight
                    killed.set()
                time.sleep(0.0002)

        # The announce must be processed before the stream (a value of an unknown node drops).
        await wait_for(lambda: _count(influxdb) == 0 and _announced(tmp_path), what="announce")
        writer = threading.Thread(target=stream)
        writer.start()
        await wait_for(killed.is_set, what="SIGKILL")
        proc.wait(timeout=10)
        before_restart = _count(influxdb)
        writer.join(timeout=30)
        proc, _ = _start_process(config)
        await wait_for(lambda: _count(influxdb) == MESSAGES, timeout=60, what="every value")
        assert 0 < before_restart < MESSAGES  # the kill really hit the stream
    finally:
        node.loop_stop()
        node.disconnect()
        if proc.poll() is None:
            _stop_process(proc)


def _announced(tmp_path: Path) -> bool:
    with sqlite3.connect(tmp_path / "data" / "edgeiot.db") as db:
        return bool(db.execute("SELECT COUNT(*) FROM nodes").fetchone()[0])
