"""A phase of bench/ingest.py: SIGKILL of the gateway mid-stream, and how much is lost.

A gateway process (recorder on, into its own influxd) receives `messages` QoS-1 state
messages, each with its own `ts`, so every message is one distinct InfluxDB point; it is
SIGKILLed at about half of the stream and started again with the same configuration (the same
persistent MQTT session). When the recorded count stops growing, `lost` = published - recorded.
With `ack = "durable"` the broker redelivers what the gateway had not acknowledged: nothing is
lost. With `ack = "received"` (acknowledged on receipt) what was acknowledged but not yet
committed is gone.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.servers import LOOPBACK, InfluxDB

NODE = "crash-node"
T0 = 1_764_000_000.0
START_TIMEOUT = 30.0
IDLE_TIMEOUT = 10.0  # the recorded count did not grow for this long: it is final


def _count(influxdb: InfluxDB) -> int:
    query = urllib.parse.urlencode({"db": "edgeiot", "q": "SELECT COUNT(value) FROM edgeiot"})
    with urllib.request.urlopen(f"{influxdb.url}/query?{query}", timeout=30) as response:
        series = json.load(response)["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def _connected(port: int, token: str) -> bool:
    request = urllib.request.Request(
        f"http://{LOOPBACK}:{port}/api/v1/info", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return all(p["connected"] for p in json.load(response)["providers"])


def _start_gateway(config: Path) -> subprocess.Popen[str]:
    """Start the gateway and wait until it is subscribed to the broker."""
    token = json.loads(config.read_text())["api"]["token"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeiot_gateway", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    for line in proc.stdout:
        if "ready on API port" in line:
            port = int(line.rsplit(" ", 1)[1])
            while not _connected(port, token):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise RuntimeError(f"gateway did not start (exit {proc.wait()})")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def lost_after_sigkill(
    broker_port: int, workdir: Path, ack: str, messages: int, kill_after: float
) -> dict[str, Any]:
    """Run the phase; returns published, recorded, lost and the seconds it took."""
    workdir.mkdir(parents=True, exist_ok=True)
    influxdb = InfluxDB(workdir / "influxdb")
    influxdb.start()
    config = workdir / "gateway.json"
    settings = {
        "gateway_id": f"crash-{ack}",
        "data_dir": str(workdir / "data"),
        "log_level": "error",
        "api": {
            "host": LOOPBACK,
            "port": 0,
            "advertise": False,
            "token": secrets.token_urlsafe(32),
        },
        "recorder": {"url": influxdb.url},
        "providers": [{"type": "mqtt", "host": LOOPBACK, "port": broker_port, "ack": ack}],
    }
    config.write_text(json.dumps(settings))
    node = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"crash-node-{ack}")
    node.max_inflight_messages_set(1000)
    node.max_queued_messages_set(0)
    node.connect(LOOPBACK, broker_port)
    node.loop_start()
    proc = _start_gateway(config)
    started = time.monotonic()
    try:
        announce = {"v": 1, "sources": [{"id": "s", "fields": [{"id": "f", "type": "float"}]}]}
        node.publish(
            f"edgeiot/v1/{NODE}/announce", json.dumps(announce), qos=1, retain=True
        ).wait_for_publish()
        time.sleep(0.5)  # the gateway takes the announce before the values
        topic = f"edgeiot/v1/{NODE}/state/s"
        killer = threading.Timer(kill_after, proc.kill)  # SIGKILL: no flush, no clean stop
        killer.start()
        infos = [
            node.publish(topic, json.dumps({"v": 1, "values": {"f": i / 8}, "ts": T0 + i / 1e3}),
                         qos=1)
            for i in range(messages)
        ]  # fmt: skip
        for info in infos:
            info.wait_for_publish(timeout=60)
        killer.join()
        proc.wait()
        before_restart = _count(influxdb)
        proc = _start_gateway(config)
        count, last_change = -1, time.monotonic()
        while count < messages and time.monotonic() - last_change < IDLE_TIMEOUT:
            time.sleep(0.5)
            if (now := _count(influxdb)) != count:
                count, last_change = now, time.monotonic()
        return {
            "published": messages,
            "recorded_before_restart": before_restart,
            "recorded": count,
            "lost": messages - count,
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        node.loop_stop()
        node.disconnect()
        _stop(proc)
        influxdb.stop()
