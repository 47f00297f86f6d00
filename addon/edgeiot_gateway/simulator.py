"""Simulated EdgeIoT MQTT nodes for demos and soak runs: `python -m edgeiot_gateway.simulator`.

Each node announces itself (retained), keeps its status with a Last Will, publishes changing
sensor values and heartbeats, obeys set/action commands and reports the new state back,
exactly as real firmware does.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .protocol import DEFAULT_PREFIX

CLIMATE_SOURCES = [
    {"id": "climate", "name": "Climate", "fields": [
        {"id": "temperature", "name": "Temperature", "type": "float", "unit": "°C",
         "device_class": "temperature", "state_class": "measurement"},
        {"id": "humidity", "name": "Humidity", "type": "int", "unit": "%",
         "device_class": "humidity", "state_class": "measurement", "min": 0, "max": 100},
    ]},
    {"id": "vent", "name": "Vent", "fields": [
        {"id": "open", "name": "Vent open", "type": "bool", "writable": True},
        {"id": "position", "name": "Vent position", "type": "int", "unit": "%",
         "writable": True, "min": 0, "max": 100, "step": 5},
        {"id": "mode", "name": "Vent mode", "type": "enum", "writable": True,
         "options": ["auto", "manual", "off"]},
    ]},
    {"id": "button", "name": "Button", "fields": [], "events": ["pressed", "held"]},
]  # fmt: skip


class SimulatedNode:
    """One node with its own MQTT connection."""

    def __init__(self, host: str, port: int, prefix: str, node_id: str, index: int) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.index = index
        self.state: dict[str, dict[str, Any]] = {
            "climate": {"temperature": 21.0, "humidity": 45},
            "vent": {"open": False, "position": 0, "mode": "auto"},
        }
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edgeiot-sim-{node_id}",
                                  clean_session=False)  # fmt: skip
        self.client.will_set(self.topic("status"), self._json({"state": "offline"}), 1, True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=30)

    def topic(self, *parts: str) -> str:
        return "/".join((self.prefix, self.node_id, *parts))

    @staticmethod
    def _json(data: dict[str, Any]) -> bytes:
        return json.dumps({"v": 1, **data}).encode()

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe([(self.topic("set", "#"), 1), (self.topic("action"), 1)])
        announce = {
            "name": f"Greenhouse {self.index + 1}", "kind": "climate-node",
            "manufacturer": "EdgeIoT", "model": "Simulated climate node", "firmware": "1.0.0",
            "actions": ["reboot", "identify"], "heartbeat_interval": 30,
            "sources": CLIMATE_SOURCES,
        }  # fmt: skip
        client.publish(self.topic("announce"), self._json(announce), 1, True)
        client.publish(self.topic("status"), self._json({"state": "online"}), 1, True)
        for source, values in self.state.items():
            client.publish(self.topic("state", source), self._json({"values": values}), 1)
        self.heartbeat()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        payload = json.loads(msg.payload)
        if parts[-1] == "action":
            return  # reboot and identify have nothing to show in a simulation
        source, field = parts[-2], parts[-1]
        if source in self.state and field in self.state[source]:
            self.state[source][field] = payload["value"]
            update = {"values": {field: payload["value"]}}
            client.publish(self.topic("state", source), self._json(update), 1)

    def tick(self, now: float) -> None:
        """Publish new sensor readings (a slow daily-like wave plus noise)."""
        phase = now / 60 + self.index
        climate = self.state["climate"]
        climate["temperature"] = round(21 + 4 * math.sin(phase) + random.uniform(-0.2, 0.2), 2)
        climate["humidity"] = max(0, min(100, round(50 + 15 * math.cos(phase))))
        self.client.publish(self.topic("state", "climate"), self._json({"values": climate}), 1)

    def heartbeat(self) -> None:
        battery = 100 - self.index * 7 % 60
        self.client.publish(
            self.topic("heartbeat"), self._json({"battery": battery, "rssi": -60}), 1
        )

    def press(self) -> None:
        self.client.publish(self.topic("event", "button"), self._json({"event": "pressed"}), 1)


def run(
    *, host: str, port: int, prefix: str, count: int, interval: float, stop: threading.Event
) -> None:
    """Run `count` nodes until `stop` is set."""
    nodes = [SimulatedNode(host, port, prefix, f"sim-{i + 1}", i) for i in range(count)]
    for node in nodes:
        node.client.loop_start()
    ticks = 0
    try:
        while not stop.wait(interval):
            ticks += 1
            for node in nodes:
                node.tick(time.time())
                if ticks % max(1, round(20 / interval)) == 0:
                    node.heartbeat()
            if ticks % max(1, round(45 / interval)) == 0:
                random.choice(nodes).press()
    finally:
        for node in nodes:
            node.client.publish(node.topic("status"), node._json({"state": "offline"}), 1, True)
            node.client.disconnect()
            node.client.loop_stop()


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="edgeiot-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(host=args.host, port=args.port, prefix=args.prefix, count=args.nodes,
        interval=args.interval, stop=stop)  # fmt: skip


if __name__ == "__main__":
    main()
