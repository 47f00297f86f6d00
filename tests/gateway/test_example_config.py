"""docs/gateway.example.toml starts a working gateway (real process, Mosquitto and influxd)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import IO, Any

import aiohttp

from edgeiot_gateway.config import load_config

from ..servers import LOOPBACK, InfluxDB, Mosquitto
from .harness import ApiClient, NodeSimulator, wait_for_async

EXAMPLE = Path(__file__).parent.parent.parent / "docs" / "gateway.example.toml"


def test_example_is_valid() -> None:
    """The example loads as it is; its data dir is next to it."""
    config = load_config(EXAMPLE)
    assert config.data_dir == EXAMPLE.parent / "edgeiot-data"
    assert [p.type for p in config.providers] == ["mqtt"]
    assert config.recorder is not None


async def test_gateway_runs_from_example(
    tmp_path: Path, mosquitto: Mosquitto, influxdb: InfluxDB
) -> None:
    """Only ports, paths and zeroconf changed: a node's announce reaches an API client, and its
    values reach InfluxDB in the layout docs/configuration.md describes."""
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["data_dir"] = str(tmp_path / "data")
    raw["api"] |= {"host": LOOPBACK, "port": 0, "advertise": False}  # loopback only in tests
    raw["providers"][0] |= {"host": mosquitto.host, "port": mosquitto.port}
    raw["recorder"]["url"] = influxdb.url
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps(raw))

    log = (tmp_path / "gateway.log").open("w")
    proc = _start(config, log)
    node = NodeSimulator(mosquitto, "greenhouse-1")
    api: ApiClient | None = None
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        token = lines[0].rsplit(" ", 1)[1].strip()
        assert "ready on API port" in lines[1], lines
        api = await ApiClient(int(lines[1].rsplit(" ", 1)[1]), token).connect()
        assert api.version["gateway_id"] == raw["gateway_id"]
        await api.command("start_listening")
        node.start().announce()
        added = await api.wait_event(lambda e: e["event"] == "node added")
        assert added["node"]["id"] == "greenhouse-1"
        node.state("climate", temperature=21.5, humidity=40)
        series = await wait_for_async(lambda: _series(influxdb), what="two series in InfluxDB")
        by_field = {s["tags"]["field"]: s for s in series}
        tags = {"gateway": "home", "node": "greenhouse-1", "source": "climate"}
        for field, row in (("temperature", [21.5, None]), ("humidity", [None, 40])):
            assert by_field[field]["tags"] == tags | {"field": field}
            assert by_field[field]["values"][0][1:] == row
    finally:
        if api is not None:
            await api.close()
        node.stop()
        proc.terminate()
        proc.communicate(timeout=15)
        log.close()
    assert proc.returncode == 0, (tmp_path / "gateway.log").read_text()


def _start(config: Path, log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgeiot_gateway", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip


async def _series(influxdb: InfluxDB) -> list[dict[str, Any]] | None:
    """The series of the example's measurement, once both climate fields have a point."""
    params = {"db": "edgeiot", "q": 'SELECT "value", "value_int" FROM "edgeiot" GROUP BY *'}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{influxdb.url}/query", params=params) as response,
    ):
        series: list[dict[str, Any]] = (await response.json())["results"][0].get("series", [])
    return series if len(series) == 2 else None
