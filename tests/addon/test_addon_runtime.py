"""The add-on as it runs: its s6 scripts as shipped start the real Mosquitto, influxd and gateway.

The sandbox (sandbox.py) moves the add-on's paths under a temp dir and runs everything in a
network namespace of its own; a fake Supervisor there receives discovery. The gateway's port is
taken when the add-on starts, so the gateway's first start fails as an operator error would.
"""

from __future__ import annotations

import base64
import json
import queue
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ..gateway.harness import ANNOUNCE
from .sandbox import ROOTS, Sandbox, Supervision, absolute_paths

SUPERVISOR_TOKEN = "supervisor-token-for-tests"
NODE_PASSWORDS = {"n1": "n1 secret 'quoted' \\", "n2": "n2-secret-2"}
OPTIONS: dict[str, Any] = {
    "log_level": "debug",
    "node_logins": [
        {"node_id": "n1", "password": NODE_PASSWORDS["n1"]},
        {"node_id": "n2", "password": NODE_PASSWORDS["n2"]},
        {"node_id": "edgeiot-gateway", "password": "reserved-name-secret"},
    ],
    "mqtt_logins": [
        {"username": "tool", "password": "tool-secret-3"},
        {"username": "bad user", "password": "bad-user-secret-5"},
    ],
    "mqtt_websocket": False,
    "serial_ports": [],
    "can_interfaces": [],
    "influxdb_retention": "30d",
    "influxdb_logins": [{"username": "grafana", "password": "grafana 'secret' \\4"}],
    "external_influxdb": "",
    "external_broker": "",
}
GENERATED = (
    "mosquitto/gateway-password",
    "mosquitto/homeassistant-password",
    "influxdb/admin-password",
    "influxdb/gateway-password",
    "gateway/api_token",
)


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def _fake_supervisor(record: Path, port_file: Path) -> None:
    """The Supervisor's API as far as the add-on uses it: POST /discovery and /services/mqtt."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            entry = {"path": self.path, "authorization": self.headers.get("Authorization"),
                     "body": json.loads(body)}  # fmt: skip
            with record.open("a") as file:
                file.write(json.dumps(entry) + "\n")
            reply = json.dumps({"result": "ok", "data": {"uuid": "discovery-uuid"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def _hold_port(port: int) -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", port))
        sock.listen()
        time.sleep(3600)


class Addon:
    """The running add-on in its sandbox."""

    def __init__(self, sandbox: Sandbox, supervision: Supervision, supervisor_log: Path) -> None:
        self.sandbox = sandbox
        self.supervision = supervision
        self.supervisor_log = supervisor_log

    def data(self, path: str) -> Path:
        return self.sandbox.data / path

    def secret(self, path: str) -> str:
        return self.data(path).read_text().strip()

    def supervisor_requests(self) -> list[dict[str, Any]]:
        text = self.supervisor_log.read_text() if self.supervisor_log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def addon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Addon]:
    """The add-on started from OPTIONS, with the gateway's port taken until its first failure."""
    sandbox = Sandbox(tmp_path_factory.mktemp("addon"))
    (sandbox.data / "options.json").write_text(json.dumps(OPTIONS))
    record, port_file = sandbox.logs / "supervisor.jsonl", sandbox.tmp / "supervisor.port"
    sandbox.spawn(_fake_supervisor, record, port_file)
    port = int(_wait(lambda: port_file.exists() and port_file.read_text(), 20, "the Supervisor"))
    blocker = sandbox.spawn(_hold_port, 8099)
    environment = sandbox.environment(SUPERVISOR_API=f"http://127.0.0.1:{port}",
                                      SUPERVISOR_TOKEN=SUPERVISOR_TOKEN)  # fmt: skip
    supervision = Supervision(sandbox, environment)
    supervision.start()
    try:
        gateway, discovery = supervision.services["gateway"], supervision.services["discovery"]
        _wait(lambda: gateway.finishes, 60, f"the gateway to fail:\n{supervision.log('gateway')}")
        blocker.kill()
        logs = f"{supervision.log('gateway')}\n{supervision.log('discovery')}"
        _wait(lambda: discovery.result is not None, 60, f"discovery:\n{logs}")
        yield Addon(sandbox, supervision, record)
    finally:
        supervision.stop()
        sandbox.close()


def test_scripts_use_only_the_sandboxed_roots() -> None:
    """The sandbox runs the scripts unchanged but for ROOTS, so no other absolute path is used."""
    rootfs = Path(__file__).parents[2] / "addon" / "rootfs"
    used = set()
    for path in rootfs.rglob("*"):
        if path.is_file():
            used |= absolute_paths(path.read_text())
    outside = {p for p in used if not p.startswith(tuple(f"{root}/" for root in ROOTS))}
    # Devices, and a Supervisor API resource (not a file).
    assert outside <= {"/dev/urandom", "/dev/null", "/services/mqtt"}, outside


def test_services_come_up_and_discovery_is_posted(addon: Addon) -> None:
    """Every oneshot succeeded; Home Assistant gets the gateway and its own broker account."""
    services = addon.supervision.services
    for name in ("mqtt-credentials", "influxdb-setup", "discovery"):
        assert services[name].result == 0, addon.supervision.log(name)
    for name in ("mosquitto", "influxdb"):
        assert services[name].finishes == [], addon.supervision.log(name)
    requests = {r["path"]: r for r in addon.supervisor_requests()}
    assert set(requests) == {"/discovery", "/services/mqtt"}
    assert {r["authorization"] for r in requests.values()} == {f"Bearer {SUPERVISOR_TOKEN}"}
    assert requests["/discovery"]["body"] == {
        "service": "edgeiot",
        "config": {"host": socket.gethostname(), "port": 8099,
                   "token": addon.secret("gateway/api_token")},
    }  # fmt: skip
    assert requests["/services/mqtt"]["body"] == {
        "host": socket.gethostname(), "port": 1883, "ssl": False, "protocol": "3.1.1",
        "username": "homeassistant", "password": addon.secret("mosquitto/homeassistant-password"),
    }  # fmt: skip


def test_gateway_start_failure_backs_off_instead_of_halting(addon: Addon) -> None:
    """The gateway's port in use: finish counts the failure, run waits, no halt, then it runs."""
    gateway = addon.supervision.services["gateway"]
    assert gateway.finishes[0][0] not in (0, 256)
    assert not addon.sandbox.halt_log.exists()
    log = addon.supervision.log("gateway")
    assert "The gateway stopped with exit code" in log
    assert "Starting the gateway again in 5 s (1 failed starts in a row)" in log
    assert gateway.spawns == 2
    assert gateway.proc is not None
    assert gateway.proc.poll() is None


def _api(path: str, token: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:8099{path}",
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _influx(q: str, user: str | None = None, password: str = "", *, write: str = "") -> Any:
    """(status, JSON) of a query, or of a write when `write` has line protocol."""
    headers = {}
    if user:
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {auth}"
    if write:
        url, data = "http://127.0.0.1:8086/write?db=edgeiot", write.encode()
    else:
        url = "http://127.0.0.1:8086/query?" + urllib.parse.urlencode({"db": "edgeiot", "q": q})
        data = None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


class Client:
    """A paho client that connects and records what it receives."""

    def __init__(self, name: str, username: str | None, password: str | None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[int] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: self.connack.put(reason.value)
        self.client.on_message = lambda _c, _u, msg: self.messages.put(
            (f"retained:{msg.topic}" if msg.retain else msg.topic, msg.payload)
        )

    def connect(self) -> int:
        self.client.connect("127.0.0.1", 1883, keepalive=10)
        self.client.loop_start()
        code = self.connack.get(timeout=10)
        if code:
            self.client.loop_stop()
        return code

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            result, _mid = self.client.subscribe(topic, qos=1)
            assert result == 0

    def publish(self, topic: str, payload: bytes = b"{}", *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def received_until(self, sentinel: str) -> list[str]:
        """Topics received before a message on `sentinel` (published last); retained ones are
        `retained:<topic>`."""
        topics = []
        while (topic := self.messages.get(timeout=10)[0]) != sentinel:
            topics.append(topic)
        return topics


def _broker_report(passwords: dict[str, str]) -> dict[str, Any]:
    """What each account can do, observed with real clients (runs in the sandbox)."""
    report: dict[str, Any] = {
        "anonymous": Client("anon", None, None).connect(),
        "wrong password": Client("bad", "n1", "wrong").connect(),
        "reserved node login": Client("res", "edgeiot-gateway", "reserved-name-secret").connect(),
        "invalid username": Client("inv", "bad user", "bad-user-secret-5").connect(),
    }
    clients = {name: Client(name, name, password) for name, password in passwords.items()}
    for client in clients.values():
        assert client.connect() == 0
    tool, n1, n2, ha, gw = (clients[n] for n in
                            ("tool", "n1", "n2", "homeassistant", "edgeiot-gateway"))  # fmt: skip
    tool.subscribe("#")
    ha.subscribe("edgeiot/v1/#", "other/#")
    n1.subscribe("edgeiot/v1/n1/set/#", "edgeiot/v1/n1/action", "edgeiot/v1/n1/ota",
                 "edgeiot/v1/n2/#",
                 "edgeiot/v1/+/state/#", "edgeiot/v1/$gateway/#")  # fmt: skip
    time.sleep(0.5)  # SUBACKs
    n2.publish("edgeiot/v1/n2/announce", json.dumps(ANNOUNCE).encode(), retain=True)
    n2.publish("edgeiot/v1/n2/state/climate", b'{"v": 1, "values": {"temperature": 2.5}}')
    # n1 impersonates n2 and n3 and the gateway, then publishes its own values.
    n1.publish("edgeiot/v1/n2/state/climate", b'{"v": 1, "values": {"temperature": 99.0}}')
    n1.publish("edgeiot/v1/n3/announce", json.dumps(ANNOUNCE).encode(), retain=True)
    n1.publish("edgeiot/v1/$gateway/gw-x/status", b'{"v": 1, "state": "offline"}')
    n1.publish("edgeiot/v1/n1/announce", json.dumps(ANNOUNCE).encode(), retain=True)
    n1.publish("edgeiot/v1/n1/state/climate", b'{"v": 1, "values": {"temperature": 21.5}}')
    n1.publish("edgeiot/v1/n1/ota_status", b'{"v": 1, "job": "j1", "state": "done"}')
    # Home Assistant's account commands n1 past the gateway, then publishes elsewhere.
    ha.publish("edgeiot/v1/n1/set/vent/open", b'{"v": 1, "value": true}')
    ha.publish("other/ha")
    gw.publish("edgeiot/v1/n1/ota", b'{"v": 1, "job": "j2"}')
    gw.publish("edgeiot/v1/n1/set/vent/position", b'{"v": 1, "value": 50}')
    tool.publish("other/done")
    report["tool"] = tool.received_until("other/done")
    report["homeassistant"] = ha.received_until("other/done")
    report["n1"] = n1.received_until("edgeiot/v1/n1/set/vent/position")
    late = Client("late", "n1", passwords["n1"])
    assert late.connect() == 0
    late.subscribe("edgeiot/v1/n2/announce", "edgeiot/v1/n1/action")
    time.sleep(0.5)
    tool.publish("edgeiot/v1/n1/action", b'{"v": 1, "action": "identify"}')
    report["n1 retained"] = late.received_until("edgeiot/v1/n1/action")
    return report


def test_broker_rejects_anonymous_and_enforces_the_acls(addon: Addon) -> None:
    """Nodes publish and read only their own topics; HA's account stays out of the EdgeIoT tree."""
    generated = {
        "homeassistant": addon.secret("mosquitto/homeassistant-password"),
        "edgeiot-gateway": addon.secret("mosquitto/gateway-password"),
    }
    passwords = NODE_PASSWORDS | {"tool": "tool-secret-3"} | generated
    report = addon.sandbox.call(_broker_report, passwords)
    not_authorized = 135  # paho reports CONNACK code 5 of MQTT 3.1.1 as "Not authorized"
    assert report["anonymous"] == report["wrong password"] == not_authorized
    assert report["reserved node login"] == report["invalid username"] == not_authorized
    log = addon.supervision.log("mqtt-credentials")
    assert "MQTT login 'edgeiot-gateway' is reserved or listed twice; it is left out" in log
    assert "MQTT login 'bad user' is not a valid username" in log
    assert [t for t in report["tool"] if not t.startswith("retained:")] == [
        "edgeiot/v1/n2/announce", "edgeiot/v1/n2/state/climate",
        "edgeiot/v1/n1/announce", "edgeiot/v1/n1/state/climate", "edgeiot/v1/n1/ota_status",
        "other/ha", "edgeiot/v1/n1/ota", "edgeiot/v1/n1/set/vent/position",
    ]  # fmt: skip
    assert report["homeassistant"] == ["other/ha"]
    # n1 got its own ota and set (the sentinel) but nothing of n2, the gateway or HA, nor its
    # own state.
    assert report["n1"] == ["edgeiot/v1/n1/ota"]
    assert report["n1 retained"] == []
    assert "n1 secret" not in addon.data("mosquitto/acl").read_text()


def _recorded(user: str, password: str) -> Any:
    status, body = _influx("SELECT value FROM edgeiot WHERE node = 'n1'", user, password)
    assert status == 200, body
    series = body["results"][0].get("series")
    return series[0]["values"] if series else None


def _publish_n1_state() -> None:
    node = Client("n1-influx", "n1", NODE_PASSWORDS["n1"])
    assert node.connect() == 0
    node.publish("edgeiot/v1/n1/announce", json.dumps(ANNOUNCE).encode(), retain=True)
    node.publish("edgeiot/v1/n1/state/climate", b'{"v": 1, "values": {"temperature": 21.5}}')


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def _influx_report(admin: str, gateway: str, grafana: str) -> dict[str, Any]:
    return {
        "unauthenticated": _influx("SHOW DATABASES")[0],
        "unauthenticated write": _influx("", write="edgeiot,node=x value=1")[0],
        "profiling": _status("http://127.0.0.1:8086/debug/pprof/"),
        "wrong password": _influx("SHOW DATABASES", "grafana", "wrong")[0],
        "gateway reads": _influx("SELECT * FROM edgeiot", "edgeiot-gateway", gateway),
        "grafana writes": _influx("", "grafana", grafana, write="edgeiot,node=x value=1")[0],
        "users": _influx("SHOW USERS", "admin", admin)[1]["results"][0]["series"][0]["values"],
        "retention": _influx("SHOW RETENTION POLICIES ON edgeiot", "admin", admin)[1],
        "recorded": _wait(lambda: _recorded("grafana", grafana), 20, "n1's recorded value"),
    }


def test_influxdb_requires_auth_and_the_gateway_records_with_its_account(addon: Addon) -> None:
    """Auth on: no anonymous access; the gateway writes, Grafana's login reads; 30d retention."""
    addon.sandbox.call(_publish_n1_state)
    report = addon.sandbox.call(_influx_report, addon.secret("influxdb/admin-password"),
                                addon.secret("influxdb/gateway-password"),
                                OPTIONS["influxdb_logins"][0]["password"])  # fmt: skip
    assert report["unauthenticated"] == report["unauthenticated write"] == 401
    assert report["profiling"] == 404
    assert report["wrong password"] == 401
    assert "not authorized" in json.dumps(report["gateway reads"])
    assert report["grafana writes"] == 403
    assert sorted(report["users"]) == [["admin", True], ["edgeiot-gateway", False],
                                       ["grafana", False]]  # fmt: skip
    autogen = report["retention"]["results"][0]["series"][0]["values"][0]
    assert autogen[:2] == ["autogen", "720h0m0s"]
    assert [row[1] for row in report["recorded"]] == [21.5] * len(report["recorded"])


def test_gateway_runs_with_the_options_applied(addon: Addon) -> None:
    """The gateway connected with its own broker account, logs at debug, and saw no spoofing."""
    config = json.loads(addon.data("gateway.json").read_text())
    assert config["log_level"] == "debug"
    assert config["data_dir"] == str(addon.data("gateway"))
    mqtt_provider = config["providers"][0]
    assert mqtt_provider["username"] == "edgeiot-gateway"
    assert mqtt_provider["password"] == addon.secret("mosquitto/gateway-password")
    assert config["recorder"]["password"] == addon.secret("influxdb/gateway-password")
    token = addon.secret("gateway/api_token")
    info = addon.sandbox.call(_api, "/api/v1/info", token)
    assert info["providers"] == [{"name": "mqtt", "type": "mqtt", "connected": True, "error": None}]
    nodes = addon.sandbox.call(_api, "/api/v1/nodes", token)
    assert "n3" not in {node["id"] for node in nodes}
    assert " DEBUG " in addon.supervision.log("gateway")
    # The gateway acknowledges only what is on disk: the broker gives it a wider window.
    assert "max_inflight_messages 100" in addon.data("mosquitto/mosquitto.conf").read_text()


def test_secrets_stay_out_of_logs_and_command_lines(addon: Addon) -> None:
    """No password or token in any service's log or any command line the scripts ran; 0600."""
    secrets = [*NODE_PASSWORDS.values(), "tool-secret-3", "reserved-name-secret",
               "bad-user-secret-5", OPTIONS["influxdb_logins"][0]["password"]]  # fmt: skip
    secrets += [addon.secret(path) for path in GENERATED]
    logs = {path.name: path.read_text(errors="replace") for path in addon.sandbox.logs.iterdir()
            if path.name != "supervisor.jsonl"}  # fmt: skip
    assert "argv.log" in logs
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"a secret in {name}"
    for path in [*GENERATED, "mosquitto/passwd", "mosquitto/acl", "gateway.json"]:
        assert addon.data(path).stat().st_mode & 0o077 == 0, path


def _influx_users(admin: str) -> list[list[Any]]:
    users: list[list[Any]] = _influx("SHOW USERS", "admin", admin)[1]["results"][0]["series"][0][
        "values"
    ]
    return sorted(users)


def test_changed_influxdb_logins_apply_at_the_next_start(addon: Addon) -> None:
    """influxdb-setup.sh run again (the next start) drops a removed login and adds a new one;
    the generated accounts keep their passwords."""
    options = addon.data("options.json")
    admin = addon.secret("influxdb/admin-password")
    changed = OPTIONS | {"influxdb_logins": [{"username": "viewer", "password": "viewer-6"}]}
    options.write_text(json.dumps(changed))
    try:
        assert addon.supervision.run_oneshot("influxdb-setup") == 0
    finally:
        options.write_text(json.dumps(OPTIONS))
    assert addon.sandbox.call(_influx_users, admin) == [
        ["admin", True], ["edgeiot-gateway", False], ["viewer", False]]  # fmt: skip
    assert addon.secret("influxdb/admin-password") == admin
    assert "Removed the InfluxDB login 'grafana'" in addon.supervision.log("influxdb-setup")
    status, _body = addon.sandbox.call(_influx, "SHOW MEASUREMENTS", "viewer", "viewer-6")
    assert status == 200
    assert addon.supervision.run_oneshot("influxdb-setup") == 0  # back to OPTIONS
