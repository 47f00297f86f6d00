"""Many simulated nodes on one MQTT connection (for tests with hundreds of nodes)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Collection
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ..gateway.harness import PREFIX
from ..servers import Mosquitto
from .conftest import GatewayProcess


class Fleet:
    """Many nodes on one MQTT connection: announces (retained), online, state."""

    def __init__(self, broker: Mosquitto, fields: int) -> None:
        self.fields = fields
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet")
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def _publish(self, topic: str, payload: Any, *, retain: bool = False) -> None:
        raw = b"" if payload is None else json.dumps(payload).encode()
        self.client.publish(f"{PREFIX}/{topic}", raw, qos=1, retain=retain).wait_for_publish(5)

    def announce(self, node_id: str, fields: int | None = None) -> None:
        count = fields or self.fields
        specs = [{"id": f"f{i}", "name": f"F{i}", "type": "int"} for i in range(count)]
        announce = {
            "v": 1,
            "name": node_id,
            "sources": [{"id": "s", "name": "S", "fields": specs}],
        }
        self._publish(f"{node_id}/announce", announce, retain=True)
        self._publish(f"{node_id}/status", {"v": 1, "state": "online"}, retain=True)

    def state(self, node_id: str, value: int) -> None:
        values = {f"f{i}": value for i in range(self.fields)}
        self._publish(f"{node_id}/state/s", {"v": 1, "values": values})

    def clear(self, node_id: str) -> None:
        """Drop the retained messages, so the node does not come back."""
        self._publish(f"{node_id}/announce", None, retain=True)
        self._publish(f"{node_id}/status", None, retain=True)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_known(gateway: GatewayProcess, node_ids: Collection[str], timeout: float = 60) -> None:
    """Until the gateway has every node (then HA's first state dump holds them all, in order)."""
    request = urllib.request.Request(
        f"http://{gateway.host}:{gateway.port}/api/v1/nodes",
        headers={"Authorization": f"Bearer {gateway.token}"},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=5) as response:
            if set(node_ids) <= {node["id"] for node in json.load(response)}:
                return
        time.sleep(0.05)
    raise AssertionError(f"the gateway never had all of {sorted(node_ids)}")
