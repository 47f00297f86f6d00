"""A subscriber of bench/ingest.py: Mosquitto's own C client as the broker's delivery ceiling.

`mosquitto_sub` (Debian's mosquitto-clients) subscribes at QoS 1 with its output discarded and
exits after `count` messages (`-C`); the bench times it from the first publish to its exit.
Its subscription is known to be active once an MQTT v5 probe publish to a topic only it
subscribes to is acknowledged with reason "success" instead of "no matching subscribers".
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PROBE_TOPIC = "bench/probe"
NO_MATCHING_SUBSCRIBERS = 0x10


class CSubscriber:
    """mosquitto_sub at QoS 1 for `count` messages of `topic`; exit time = last receive."""

    def __init__(self, host: str, port: int, topic: str, count: int, cpus: set[int] | None):
        binary = shutil.which("mosquitto_sub")
        if binary is None:
            raise RuntimeError("mosquitto_sub not found: install Debian's mosquitto-clients")
        self.host, self.port, self.count = host, port, count
        self.proc = subprocess.Popen(
            [binary, "-h", host, "-p", str(port), "-q", "1", "-i", f"bench-csub-{os.getpid()}",
             "-t", topic, "-t", PROBE_TOPIC, "-C", str(count + 1)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)
        self.exited_at = 0.0
        self._watcher: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_subscribed(self, timeout: float) -> None:
        """Publish probes until one reaches the subscription (it counts as one message)."""
        results: queue.Queue[int] = queue.Queue()
        probe = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-probe", protocol=mqtt.MQTTv5
        )
        probe.on_publish = lambda _c, _u, _mid, reason, _p: results.put(reason.value)
        probe.connect(self.host, self.port)
        probe.loop_start()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                probe.publish(PROBE_TOPIC, b"", qos=1)
                if results.get(timeout=timeout) != NO_MATCHING_SUBSCRIBERS:
                    return
                time.sleep(0.05)
            raise TimeoutError("mosquitto_sub did not subscribe")
        finally:
            probe.loop_stop()
            probe.disconnect()

    def start_watching(self) -> None:
        """Note the exit time precisely (polled every millisecond)."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while self.proc.poll() is None:  # noqa: ASYNC110 (a child process has no event to await)
            await asyncio.sleep(0.001)
        self.exited_at = time.monotonic()

    def received(self) -> int:
        """All of them once it exited; nothing before (its progress shows as CPU time used)."""
        return self.count if self.exited_at else 0

    def last(self) -> float:
        return self.exited_at

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
