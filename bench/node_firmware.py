"""The node firmware on MicroPython's unix port through a real Mosquitto: boot-to-online time,
set → state round trip (p50/p99) and the rate of set → state exchanges with 8 commands in
flight. The node runs one PWM driver; the bench is a paho client that sends `set`
and waits for the `state` that reports the value.
Run: `.venv/bin/python bench/node_firmware.py [--roundtrips N] [--burst N]`.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.firmware.conftest import NodeProcess, micropython_command
from tests.servers import Mosquitto

GOAL_P99_MS = 50
GOAL_BOOT_S = 2
PREFIX = "edgeiot/v1/bench-1/"
TIMEOUT = 10
WINDOW = 8  # commands in flight: the node reads at most 8 packets per turn of its loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--roundtrips", type=int, default=300)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--boots", type=int, default=3)
    args = parser.parse_args()
    command = micropython_command()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto", persistent=False)
        # No Nagle anywhere (MQTT packets are small; the node's own socket sets it too), so the
        # figures are the firmware's and not 40 ms delayed-ACK stalls of the kernel.
        broker.conf.write_text(broker.conf.read_text() + "set_tcp_nodelay true\n")
        broker.start()
        states: queue.Queue[tuple[str, dict[str, object]]] = queue.Queue()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench")
        client.on_message = lambda _c, _u, m: states.put((m.topic, json.loads(m.payload or "{}")))
        client.connect(broker.host, broker.port)
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(PREFIX + "state/fan", 1), (PREFIX + "status", 1)])
        client.loop_start()
        config = {
            "node_id": "bench-1",
            "heartbeat_interval": 60,
            "broker": {"host": broker.host, "port": broker.port},
            "drivers": [{"type": "pwm", "id": "fan", "pin": 12}],
        }
        node = None
        try:
            boots = []
            for i in range(args.boots):
                client.publish(PREFIX + "status", b"", qos=1, retain=True)  # clear the retained
                _drain(states)
                start = time.monotonic()
                node = NodeProcess(command, Path(tmp) / f"node{i}", config).start()
                _wait(states, lambda t, p: t.endswith("status") and p.get("state") == "online")
                boots.append(time.monotonic() - start)
                if i < args.boots - 1:
                    node.stop()
            _wait(states, lambda t, _p: t.endswith("state/fan"))
            latencies = []
            for i in range(args.roundtrips):
                level = i % 100 + 1
                start = time.monotonic()
                client.publish(PREFIX + "set/fan/level", json.dumps({"v": 1, "value": level}), 1)
                _wait(states, lambda _t, p, lv=level: p["values"] == {"level": lv})
                latencies.append((time.monotonic() - start) * 1000)
            start, sent, seen = time.monotonic(), 0, 0
            while seen < args.burst:
                while sent < args.burst and sent - seen < WINDOW:
                    payload = json.dumps({"v": 1, "value": sent % 100})
                    client.publish(PREFIX + "set/fan/level", payload, 1)
                    sent += 1
                _wait(states, lambda t, _p: t.endswith("state/fan"))
                seen += 1
            rate = args.burst / (time.monotonic() - start)
        finally:
            if node is not None:
                node.stop()
            client.loop_stop()
            broker.stop()
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    boot = sorted(boots)[len(boots) // 2]
    print(
        f"boot to online (median of {len(boots)}): {boot:.2f} s "
        f"(goal < {GOAL_BOOT_S} s: {'met' if boot < GOAL_BOOT_S else 'MISSED'})"
    )
    print(
        f"set -> state round trip: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"(goal p99 < {GOAL_P99_MS} ms: {'met' if p99 < GOAL_P99_MS else 'MISSED'})"
    )
    print(f"set -> state exchanges, {WINDOW} in flight: {rate:.0f}/s")
    print(
        json.dumps(
            {
                "boot_to_online_s": round(boot, 3),
                "roundtrip_p50_ms": round(p50, 2),
                "roundtrip_p99_ms": round(p99, 2),
                "states_per_s": round(rate, 1),
                "roundtrips": args.roundtrips,
                "burst": args.burst,
            }
        )
    )


def _drain(states: queue.Queue[tuple[str, dict[str, object]]]) -> None:
    while not states.empty():
        states.get_nowait()


def _wait(states: queue.Queue[tuple[str, dict[str, object]]], match: object) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        try:
            topic, payload = states.get(timeout=left)
        except queue.Empty:
            break
        if payload and match(topic, payload):  # type: ignore[operator]
            return
    raise TimeoutError("the node did not answer in time")


if __name__ == "__main__":
    main()
