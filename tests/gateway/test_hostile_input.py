"""Hostile MQTT input on a real broker: rejected at the edge, counted, the rest keeps flowing."""

from __future__ import annotations

from pathlib import Path

from edgeiot_gateway.protocol import EVENT_DATA_MAX_DEPTH

from ..servers import InfluxDB, Mosquitto
from .harness import NodeSimulator, gateway_config, start_gateway, wait_for
from .test_recorder import values

NODE = "greenhouse-1"
HUGE = "1" + "0" * 400  # 10**400: beyond float range, beyond 64 bits


async def test_bad_values_rejected_recording_goes_on(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    """Lone surrogates, bytes that are not UTF-8, 10**400, 1e400, deep nesting and absurd
    timestamps are counted drops; the other values of a mixed `state` apply, and the recorder,
    which used to die on the first unencodable string, records what follows."""
    recorder = {"url": influxdb.url, "flush_interval": 0.05}
    gateway = await start_gateway(gateway_config(tmp_path / "gw", mosquitto, recorder=recorder))
    node = NodeSimulator(mosquitto, NODE).start()
    try:
        node.announce()
        await wait_for(lambda: NODE in gateway.processor.nodes, what="announce")
        bad: list[tuple[str, bytes]] = [
            ("state/vent", b'{"v": 1, "values": {"label": "x\\ud800", "open": true}}'),
            ("state/vent", b'{"v": 1, "values": {"label": "caf\xe9", "position": 5}}'),
            ("state/climate", b'{"v": 1, "values": {"temperature": %b, "humidity": 7}}'
             % HUGE.encode()),
            ("state/climate", b'{"v": 1, "values": {"humidity": %b}}' % HUGE.encode()),
            ("state/climate", b'{"v": 1, "values": {"temperature": 1e400}}'),
            ("state/climate", b'{"v": 1, "values": {"temperature": 1.5}, "ts": %b}'
             % HUGE.encode()),
            ("state/climate", b'{"v": 1, "values": {"temperature": 1.5}, "ts": 1e12}'),
            ("state/climate", b'{"v": 1, "values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
            ("event/button", b'{"v": 1, "event": "pressed", "data": %b}'
             % (b'{"a": ' * (EVENT_DATA_MAX_DEPTH + 1) + b"1" + b"}" * (EVENT_DATA_MAX_DEPTH + 1))),
            ("event/button", b'{"v": 1, "event": "pressed", "data": {"who": "\\udfff"}}'),
            ("event/button", b'{"v": 1, "event": "pressed", "data": {"n": %b}}' % HUGE.encode()),
        ]  # fmt: skip
        for kind, payload in bad:
            node.publish(kind, payload)
        node.state("climate", temperature=21.5)
        await wait_for(
            lambda: gateway.processor.nodes[NODE].field("climate", "temperature").value == 21.5,
            what="the good value after the bad ones",
        )
        assert dict(gateway.drops.counts) == {
            "invalid_value": 7,  # 2 texts, 10**400 twice, 1e400, 2 event data
            "invalid_payload": 3,  # 2 timestamps, event data too deep
            "invalid_json": 1,  # nesting
        }
        vent = gateway.processor.nodes[NODE].sources["vent"].fields
        assert vent["open"].value is True
        assert vent["position"].value == 5
        assert vent["label"].value is None
        assert gateway.processor.nodes[NODE].field("climate", "humidity").value == 7
        assert gateway.recorder is not None
        recorder = gateway.recorder
        await wait_for(lambda: recorder.written == 4, what="4 points in InfluxDB")
        assert [row[1] for row in values(influxdb, "value", "temperature")] == [21.5]
        assert [row[1] for row in values(influxdb, "value_int", "humidity")] == [7]
        assert recorder.status()["last_error"] is None
        assert gateway.health.as_dict() == {}  # no loop ever failed
    finally:
        node.stop()
        await gateway.stop()
