"""The Grafana dashboard (addon/grafana): its InfluxQL, interpolated as Grafana does, against a
real influxd holding what the gateway's recorder wrote, returns the series each panel shows."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgeiot_gateway import bus
from edgeiot_gateway.recorder import InfluxTarget, Recorder, RecorderConfig

from ..gateway.harness import wait_for
from ..servers import InfluxDB

GRAFANA = Path(__file__).parents[2] / "addon" / "grafana"
DASHBOARD = json.loads((GRAFANA / "edgeiot.json").read_text())
INTERVAL = 60  # seconds: Grafana's $__interval for the time range below
START = (int(time.time()) // INTERVAL - 30) * INTERVAL  # 30 min ago, on an interval boundary
# (gateway, node, source, field, value) at START + 10 s, + 70 s and + 130 s.
RECORDED = [
    ("gw1", "n1", "climate", "temperature", 20.5),
    ("gw1", "n1", "climate", "humidity", 40),
    ("gw1", "n1", "vent", "open", True),
    ("gw1", "n1", "vent", "mode", "auto"),
    ("gw1", "n2", "power", "voltage", 229.5),
    ("gw2", "m1", "door", "open", False),
]


def _escape_regex(value: str) -> str:
    """Grafana's escaping of a variable value inside an InfluxQL /regex/."""
    return re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", value)


def interpolate(query: str, variables: dict[str, list[str]], time_from: int, time_to: int) -> str:
    """The query as Grafana's InfluxDB data source sends it: multi-value variables become
    `(a|b)` (escaped) inside regexes, `$timeFilter` an absolute range, `$__interval` the
    interval."""
    query = query.replace(
        "$timeFilter", f"time >= {time_from * 1000}ms and time <= {time_to * 1000}ms"
    )
    query = query.replace("$__interval", f"{INTERVAL}s")
    for name, values in sorted(variables.items(), key=lambda item: -len(item[0])):
        escaped = [_escape_regex(v) for v in values]
        value = escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
        query = query.replace(f"${{{name}}}", value).replace(f"${name}", value)
    assert "$" not in query.replace("$/", ""), f"not interpolated: {query}"
    return query


def run(influxdb: InfluxDB, query: str) -> list[dict[str, Any]]:
    """The series of one InfluxQL statement; fails on an InfluxDB error."""
    params = urllib.parse.urlencode({"db": "edgeiot", "q": query, "epoch": "s"})
    with urllib.request.urlopen(f"{influxdb.url}/query?{params}", timeout=10) as response:
        result = json.load(response)["results"][0]
    assert "error" not in result, f"{result['error']}: {query}"
    return list(result.get("series", []))


@pytest.fixture
async def recorded(tmp_path: Path, influxdb: InfluxDB) -> InfluxDB:
    """RECORDED written by two gateways' real recorders."""

    async def record(gateway: str) -> None:
        events = bus.EventBus()
        config = RecorderConfig(target=InfluxTarget(url=influxdb.url, timeout=5),
                                flush_interval=0.05)  # fmt: skip
        recorder = Recorder(gateway, config, tmp_path / gateway)
        await recorder.start(events)
        points = [r for r in RECORDED if r[0] == gateway]
        for offset in (10, 70, 130):
            for _gw, node, source, field, value in points:
                events.emit(bus.FIELD_VALUE, {"node_id": node, "source_id": source,
                                              "field_id": field, "value": value,
                                              "updated": START + offset})  # fmt: skip
        await wait_for(lambda: recorder.written == 3 * len(points), what=f"{gateway} written")
        await recorder.stop()

    await record("gw1")
    await record("gw2")
    return influxdb


def _variables(influxdb: InfluxDB) -> dict[str, list[str]]:
    """The dashboard's tag variables, each resolved (with `All` selected) in order, as
    Grafana resolves a variable after those it depends on."""
    variables: dict[str, list[str]] = {"datasource": ["edgeiot-influxdb"]}
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        assert variable["includeAll"]
        assert variable["multi"]
        series = run(influxdb, interpolate(variable["query"], variables, 0, 0))
        variables[variable["name"]] = [row[1] for s in series for row in s["values"]]
    return variables


def _panel(title: str) -> dict[str, Any]:
    return next(p for p in DASHBOARD["panels"] if p.get("title") == title)


async def test_every_panel_query_returns_the_recorded_series(recorded: InfluxDB) -> None:
    """Variables list the recorded tags; every panel's query returns series for them."""
    variables = _variables(recorded)
    assert variables["gateway"] == ["gw1", "gw2"]
    assert variables["node"] == ["m1", "n1", "n2"]
    assert variables["source"] == ["climate", "door", "power", "vent"]
    assert variables["field"] == ["humidity", "mode", "open", "temperature", "voltage"]
    window = (START, START + 30 * INTERVAL)
    results = {}
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            query = interpolate(target["query"], variables, *window)
            results[panel["title"]] = series = run(recorded, query)
            assert series, f"{panel['title']}: no series for {query}"

    def tags(title: str) -> list[tuple[str, ...]]:
        return sorted(tuple(s["tags"].values()) for s in results[title])

    assert tags("Numbers") == [("temperature", "n1", "climate"), ("voltage", "n2", "power")]
    numbers = {s["tags"]["field"]: s["values"] for s in results["Numbers"]}
    assert numbers["temperature"][:3] == [[START, 20.5], [START + 60, 20.5], [START + 120, 20.5]]
    assert tags("Integers") == [("humidity", "n1", "climate")]
    assert tags("On / off") == [("open", "m1", "door"), ("open", "n1", "vent")]
    assert results["Text values"][0]["values"][0][1:] == ["auto", "n1", "vent", "mode"]
    assert len(results["Latest values"]) == len(RECORDED)
    points = {s["tags"]["gateway"]: s["values"] for s in results["Points recorded"]}
    assert points["gw1"][0] == [START, 2, 1, 1, 1]
    nodes = {s["tags"]["gateway"]: s["values"] for s in results["Nodes reporting"]}
    assert nodes["gw1"][:4] == [[START, 2], [START + 60, 2], [START + 120, 2], [START + 180, 0]]
    assert nodes["gw2"][0] == [START, 1]
    last = {(s["tags"]["gateway"], s["tags"]["node"]): s["values"] for s in results["Last report"]}
    assert last == {("gw1", "n1"): [[START + 120, 4]], ("gw1", "n2"): [[START + 120, 1]],
                    ("gw2", "m1"): [[START + 120, 1]]}  # fmt: skip


async def test_a_selected_node_narrows_every_panel(recorded: InfluxDB) -> None:
    """Selecting one node (not `All`) keeps only its series."""
    variables = _variables(recorded) | {"node": ["n2"]}
    query = interpolate(_panel("Latest values")["targets"][0]["query"], variables,
                        START, START + 30 * INTERVAL)  # fmt: skip
    assert [s["tags"]["node"] for s in run(recorded, query)] == ["n2"]


def test_dashboard_is_provisioning_ready() -> None:
    """Every panel queries the `datasource` variable, whose default is the provisioned
    data source; the provisioning examples parse and point at the add-on's database."""
    assert DASHBOARD["uid"] == "edgeiot"
    datasource = DASHBOARD["templating"]["list"][0]
    assert (datasource["type"], datasource["query"]) == ("datasource", "influxdb")
    provisioned = yaml.safe_load((GRAFANA / "datasource.yaml").read_text())["datasources"][0]
    assert datasource["current"]["value"] == provisioned["uid"]
    assert provisioned["jsonData"]["dbName"] == "edgeiot"
    assert provisioned["url"].endswith(":8086")
    providers = yaml.safe_load((GRAFANA / "dashboards.yaml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    ids = set()
    for panel in DASHBOARD["panels"]:
        ids.add(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
        for target in panel["targets"]:
            assert target["rawQuery"] is True
            assert target["datasource"] == panel["datasource"]
    assert len(ids) == len(DASHBOARD["panels"])
