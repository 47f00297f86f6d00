"""The shared server fixtures start real servers that do their job."""

from __future__ import annotations

import json
import queue
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt

from .servers import InfluxDB, Mosquitto


def test_mosquitto_round_trip(mosquitto: Mosquitto) -> None:
    """A message published to the broker comes back to a subscriber, retained across restart."""
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fixture-test")
    client.on_message = lambda _c, _u, msg: received.put((msg.topic, msg.payload))
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        client.subscribe("test/#", qos=1)
        client.publish("test/hello", b"world", qos=1, retain=True).wait_for_publish(5)
        assert received.get(timeout=5) == ("test/hello", b"world")
    finally:
        client.loop_stop()
        client.disconnect()

    mosquitto.restart()
    again = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fixture-test-2")
    again.on_message = lambda _c, _u, msg: received.put((msg.topic, msg.payload))
    again.connect(mosquitto.host, mosquitto.port)
    again.loop_start()
    try:
        again.subscribe("test/#", qos=1)
        assert received.get(timeout=5) == ("test/hello", b"world")
    finally:
        again.loop_stop()
        again.disconnect()


def _influx(
    influxdb: InfluxDB, path: str, params: dict[str, str], body: bytes | None = None
) -> bytes:
    url = f"{influxdb.url}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(
        urllib.request.Request(url, data=body, method="POST"), timeout=5
    ) as r:
        return bytes(r.read())


def test_influxdb_write_and_query(influxdb: InfluxDB) -> None:
    """A point written over HTTP /write is returned by a query."""
    _influx(influxdb, "/query", {"q": "CREATE DATABASE fixture"})
    _influx(
        influxdb,
        "/write",
        {"db": "fixture", "precision": "s"},
        b"temperature,node=n1 value=21.5 1700000000\n",
    )
    result = json.loads(
        _influx(influxdb, "/query", {"db": "fixture", "q": "SELECT value FROM temperature"})
    )
    series = result["results"][0]["series"][0]
    assert series["values"] == [["2023-11-14T22:13:20Z", 21.5]]
