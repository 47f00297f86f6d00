"""API under heavy commands: /health latency while a client pipelines backups of a big gateway.

Starts its own Mosquitto and a gateway process (`python -m edgeiot_gateway`) on loopback,
restores a backup of `--nodes` nodes, announces one simulated MQTT node that publishes a value
every 20 ms, then a WebSocket client sends `--backups` `backup` commands at once (one TCP
segment) and reads every result. Meanwhile a separate process polls `GET /health` (one request
at a time) and a listener counts `node status` offline events (an MQTT disconnect sets every
MQTT node offline). /health is also polled while idle, for comparison.
Run: `.venv/bin/python bench/api_load.py [--nodes N] [--backups N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing as mp
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import LOOPBACK, Mosquitto, free_port  # noqa: E402

GOAL_MAX_MS = 100.0
START_TIMEOUT = 20.0
LOAD_TIMEOUT = 120.0
IDLE_SECONDS = 2.0
ANNOUNCE = next(
    case["payload"]
    for case in json.loads((ROOT / "tests" / "vectors" / "mqtt.json").read_text())["decode"]
    if case["name"] == "announce"
)


def log(text: str) -> None:
    print(f"api_load: {text}", file=sys.stderr, flush=True)


def backup(nodes: int) -> dict[str, Any]:
    definition = {key: value for key, value in ANNOUNCE.items() if key != "v"}
    ids = [f"node-{index:04}" for index in range(nodes)]
    return {
        "format": "edgeiot-backup", "version": 1, "gateway_id": "bench",
        "nodes": [definition | {"id": node_id, "provider": "mqtt"} for node_id in ids],
        "values": [{"node_id": node_id, "source_id": "climate", "field_id": "temperature",
                    "value": 20.5, "updated": 1764240000.0} for node_id in ids],
    }  # fmt: skip


def poll_health(conn: Connection, port: int) -> None:
    """Child process: GET /health one at a time until told to stop; sends the latencies (s)."""
    latencies: list[float] = []
    client = http.client.HTTPConnection(LOOPBACK, port, timeout=30)
    while not conn.poll():
        started = time.perf_counter()
        client.request("GET", "/health")
        client.getresponse().read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.005)
    conn.send(latencies)


class HealthPoller:
    def __init__(self, port: int) -> None:
        self.conn, child = mp.Pipe()
        self.process = mp.Process(target=poll_health, args=(child, port), daemon=True)
        self.process.start()

    def stop(self) -> list[float]:
        self.conn.send("stop")
        latencies: list[float] = self.conn.recv()
        self.process.join(5)
        return latencies


def start_gateway(tmp: Path, broker: Mosquitto, token: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    config = {
        "gateway_id": "bench", "data_dir": str(tmp / "gw"),
        "api": {"host": LOOPBACK, "port": port, "token": token, "advertise": False},
        "providers": [{"type": "mqtt", "host": broker.host, "port": broker.port, "keepalive": 5}],
    }  # fmt: skip
    path = tmp / "gateway.json"
    path.write_text(json.dumps(config))
    log_file = (tmp / "gateway.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeiot_gateway", "--config", str(path)],
        stdout=log_file, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the gateway did not start")


def start_node(broker: Mosquitto, stopping: threading.Event) -> threading.Thread:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-node")
    client.connect(broker.host, broker.port)
    client.loop_start()
    prefix = "edgeiot/v1/greenhouse-1"
    client.publish(f"{prefix}/announce", json.dumps(ANNOUNCE), qos=1, retain=True)
    client.publish(f"{prefix}/status", '{"v": 1, "state": "online"}', qos=1, retain=True)

    def run() -> None:
        value = 0
        while not stopping.wait(0.02):
            value += 1
            client.publish(f"{prefix}/state/climate", json.dumps({"v": 1, "values": {
                "temperature": value / 10}}), qos=1)  # fmt: skip
        client.disconnect()
        client.loop_stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    ms = [t * 1000 for t in ordered]
    return {"count": len(ms), "p50_ms": round(ms[len(ms) // 2], 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1)}  # fmt: skip


async def load(port: int, token: str, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        base = f"http://{LOOPBACK}:{port}"
        async with session.post(f"{base}/api/v1/restore", json=backup(args.nodes)) as response:
            assert response.status == 200, await response.text()
        listener = await session.ws_connect(f"{base}/api/v1/ws", max_msg_size=0)
        await listener.receive_json()
        await listener.send_json({"message_id": 1, "command": "start_listening"})
        await listener.receive(timeout=30)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            async with session.get(f"{base}/api/v1/nodes/greenhouse-1") as response:
                if response.status == 200 and (await response.json())["online"]:
                    break
            await asyncio.sleep(0.1)

        log(f"idle /health for {IDLE_SECONDS} s")
        poller = HealthPoller(port)
        await asyncio.sleep(IDLE_SECONDS)
        idle = poller.stop()

        log(f"{args.backups} pipelined backups of {args.nodes + 1} nodes")
        ws = await session.ws_connect(f"{base}/api/v1/ws", max_msg_size=0)
        await ws.receive_json()
        poller = HealthPoller(port)
        await asyncio.sleep(0.3)
        sock = ws.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        started = time.perf_counter()
        for index in range(args.backups):
            await ws.send_str(json.dumps({"message_id": index, "command": "backup"}))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        size = 0
        for _ in range(args.backups):
            message = await ws.receive(timeout=LOAD_TIMEOUT)
            assert '"success":true' in message.data[:200].replace(" ", ""), message.data[:200]
            size += len(message.data)
        wall = time.perf_counter() - started
        loaded = poller.stop()
        offline = 0
        while True:
            try:
                message = await listener.receive_json(timeout=0.5)
            except TimeoutError:
                break
            event = message.get("event", {})
            offline += event.get("event") == "node status" and not event.get("online")
        async with session.get(f"{base}/api/v1/diagnostics") as response:
            connected = (await response.json())["providers"]["mqtt"]["connected"]
        await ws.close()
        await listener.close()
    return {"idle": summary(idle), "load": summary(loaded), "backups_s": round(wall, 2),
            "backup_bytes": size // args.backups, "offline_events": offline,
            "mqtt_connected": connected}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=300)
    parser.add_argument("--backups", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgeiot-api-load-") as name:
        tmp = Path(name)
        broker = Mosquitto(tmp / "mosquitto", persistent=False)
        broker.start()
        token = secrets.token_urlsafe(32)
        stopping = threading.Event()
        proc, port = start_gateway(tmp, broker, token)
        node = start_node(broker, stopping)
        try:
            figures = asyncio.run(load(port, token, args))
        finally:
            stopping.set()
            node.join(5)
            proc.terminate()
            proc.wait(15)
            broker.stop()
            disconnects = (tmp / "gateway.log").read_text().count("MQTT provider mqtt disconnected")
    # The gateway logs one disconnect when it stops.
    figures |= {"nodes": args.nodes, "backups": args.backups, "mqtt_disconnects": disconnects - 1}
    met = figures["load"]["max_ms"] < GOAL_MAX_MS
    print(f"/health idle:   {figures['idle']}")
    print(f"/health loaded: {figures['load']}  goal max < {GOAL_MAX_MS:.0f} ms: "
          f"{'met' if met else 'MISSED'}")  # fmt: skip
    print(
        f"{args.backups} backups of {figures['backup_bytes']} bytes in {figures['backups_s']} s; "
        f"MQTT disconnects {figures['mqtt_disconnects']}, offline events "
        f"{figures['offline_events']}, connected at the end: {figures['mqtt_connected']}"
    )
    print(json.dumps(figures | {"goals_met": met}))


if __name__ == "__main__":
    main()
