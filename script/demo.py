"""The EdgeIoT demo: Mosquitto, InfluxDB, the gateway, simulated nodes and Home Assistant.

Run by `script/develop`. State lives in .cache/demo (servers, gateway) and config/ (HA), so a
second start keeps nodes, history and the HA login. Ctrl-C stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".cache" / "demo"
HA_CONFIG = ROOT / "config"
HA_PORT = 8123
# (domain, entity key, label) of each simulated node's row on the demo dashboard.
DASHBOARD_ROWS = [
    ("sensor", "climate_temperature", "Temperature"), ("sensor", "climate_humidity", "Humidity"),
    ("switch", "vent_open", "Vent open"), ("number", "vent_position", "Vent position"),
    ("select", "vent_mode", "Vent mode"), ("event", "button", "Button"),
    ("sensor", "battery", "Battery"), ("button", "identify", "Identify"),
]  # fmt: skip
DEMO_USER, DEMO_PASSWORD = "demo", "edgeiot-demo"
GATEWAY_PORT = 8099
HA_CONFIGURATION = """\
# EdgeIoT demo configuration, written by script/develop on the first start only: edit it freely.
# A curated subset of default_config: no voice/media stacks that need native builds.
{http}automation: !include automations.yaml
script: !include scripts.yaml
scene: !include scenes.yaml
frontend:
config:
api:
history:
logbook:
system_health:
lovelace:
  dashboards:
    edgeiot-demo:
      mode: yaml
      title: EdgeIoT
      icon: mdi:access-point-network
      show_in_sidebar: true
      filename: edgeiot-dashboard.yaml
logger:
  default: warning
  logs:
    custom_components.edgeiot: info
"""


def free_port(preferred: int) -> int:
    """`preferred` when it is free on loopback, else any free port.

    SO_REUSEADDR, as the servers themselves bind: a port a stopped server left in TIME_WAIT is
    free to them, so a quick restart keeps its port.
    """
    for port in (preferred, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def stored_port(state: Path, name: str, default: int) -> int:
    """The port `name` had on the last start (else `default`) if still free; remembered."""
    path = state / "ports.json"
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    port = free_port(ports.get(name, default))
    ports[name] = port
    path.write_text(json.dumps(ports, indent=2) + "\n")
    return port


def wait_http(url: str, what: str, timeout: float = 120) -> None:
    """Until `url` answers anything over HTTP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.5)
        else:
            return
    raise TimeoutError(f"{what} did not come up at {url}")


def wait_tcp(port: int, what: str, timeout: float = 30) -> None:
    """Until something listens on the loopback port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
        else:
            return
    raise TimeoutError(f"{what} did not listen on {port}")


def request(
    base: str, path: str, data: Any = None, token: str | None = None, form: bool = False
) -> Any:
    """JSON (or form) request to HA at `base`; returns the decoded JSON answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"{base}{path}", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.load(response)


class Demo:
    """Starts and stops the demo's processes."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        state: Path = STATE,
        ha_config: Path = HA_CONFIG,
        ha_port: int = HA_PORT,
        interval: float = 3.0,
    ) -> None:
        self.nodes = nodes
        self.state = state
        self.ha_config = ha_config
        self.ha_url = f"http://127.0.0.1:{ha_port}"
        self.client_id = f"{self.ha_url}/"  # IndieAuth client id of the demo's own logins
        self.ha_port = ha_port
        self.interval = interval
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.python = str(ROOT / ".venv" / "bin" / "python")
        self.mqtt_port = self.gateway_port = 0
        self.gateway_token = ""
        self.influx_url: str | None = None

    def start(self) -> None:
        """Start everything and make sure HA has the EdgeIoT integration."""
        self.state.mkdir(parents=True, exist_ok=True)
        self.mqtt_port = self.start_mosquitto()
        self.influx_url = self.start_influxdb()
        self.gateway_port, self.gateway_token = self.start_gateway(self.mqtt_port, self.influx_url)
        self.start_simulator(self.mqtt_port)
        self.start_home_assistant()
        self.configure_integration(self.ha_token())

    def request(
        self, path: str, data: Any = None, token: str | None = None, form: bool = False
    ) -> Any:
        """A request to this demo's Home Assistant."""
        return request(self.ha_url, path, data, token, form)

    def spawn(self, name: str, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.state / log).open("ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append((name, proc))
        print(f"demo: started {name} (pid {proc.pid}, log {self.state / log})", flush=True)
        return proc

    def start_mosquitto(self) -> int:
        port = stored_port(self.state, "mosquitto", 1883)
        data = self.state / "mosquitto"
        data.mkdir(parents=True, exist_ok=True)
        conf = data / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            f"persistence true\npersistence_location {data}/\n"
        )
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.spawn("mosquitto", [binary, "-c", str(conf)], "mosquitto.log")
        wait_tcp(port, "mosquitto")
        return port

    def start_influxdb(self) -> str | None:
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        if not Path(binary).exists():
            print("demo: influxd not installed, recording disabled", flush=True)
            return None
        port = free_port(8086)
        data = self.state / "influxdb"
        data.mkdir(parents=True, exist_ok=True)
        conf = data / "influxdb.conf"
        conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{free_port(8088)}"\n'
            f'[meta]\n  dir = "{data}/meta"\n[data]\n  dir = "{data}/data"\n'
            f'  wal-dir = "{data}/wal"\n  query-log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{port}"\n  log-enabled = false\n'
        )
        self.spawn("influxd", [binary, "-config", str(conf)], "influxdb.log")
        wait_http(f"http://127.0.0.1:{port}/ping", "influxd", timeout=60)
        return f"http://127.0.0.1:{port}"

    def start_gateway(self, mqtt_port: int, influx_url: str | None) -> tuple[int, str]:
        port = stored_port(self.state, "gateway", GATEWAY_PORT)
        config = self.state / "gateway.toml"
        text = (
            'gateway_id = "demo"\ndata_dir = "gateway"\n'
            f'[api]\nhost = "127.0.0.1"\nport = {port}\nadvertise = false\n'
            f'[[providers]]\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
        )
        if influx_url:
            text += f'[recorder]\nurl = "{influx_url}"\ndatabase = "edgeiot"\n'
        config.write_text(text)
        self.spawn("gateway", [self.python, "-m", "edgeiot_gateway", "--config", str(config)],
                   "gateway.log")  # fmt: skip
        wait_http(f"http://127.0.0.1:{port}/health", "gateway", timeout=30)
        token = (self.state / "gateway" / "api_token").read_text().strip()
        return port, token

    def start_simulator(self, mqtt_port: int) -> None:
        self.spawn("simulated nodes", [self.python, "-m", "edgeiot_gateway.simulator",
                                       "--port", str(mqtt_port), "--nodes", str(self.nodes),
                                       "--interval", str(self.interval)],
                   "simulator.log")  # fmt: skip

    def write_ha_config(self) -> None:
        """configuration.yaml (and the files it includes) on the first start only, so the
        user's changes and the automations, scripts and scenes saved in the UI stay; the
        dashboard file belongs to the demo and follows the node count."""
        self.ha_config.mkdir(parents=True, exist_ok=True)
        configuration = self.ha_config / "configuration.yaml"
        if not configuration.exists():
            # Only a non-default port is configured: HA asks to confirm any http change.
            http = "" if self.ha_port == HA_PORT else f"http:\n  server_port: {self.ha_port}\n"
            configuration.write_text(HA_CONFIGURATION.format(http=http))
        for name in ("automations.yaml", "scripts.yaml", "scenes.yaml"):
            if not (self.ha_config / name).exists():
                (self.ha_config / name).write_text("[]\n" if name != "scripts.yaml" else "{}\n")
        (self.ha_config / "edgeiot-dashboard.yaml").write_text(self.dashboard())

    def start_home_assistant(self) -> None:
        self.write_ha_config()
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        with (self.state / "home-assistant.log").open("ab") as out:
            proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "hass"), "--config",
                                     str(self.ha_config)], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=ROOT, env=env)  # fmt: skip
        self.procs.append(("Home Assistant", proc))
        print(f"demo: started Home Assistant (pid {proc.pid}), waiting for {self.ha_url}",
              flush=True)  # fmt: skip
        wait_http(f"{self.ha_url}/manifest.json", "Home Assistant", timeout=600)

    def dashboard(self) -> str:
        """A Lovelace dashboard (YAML) with every simulated node's fields and the gateway."""
        cards = []
        for index in range(1, self.nodes + 1):
            node = f"greenhouse_{index}"
            entities = [{"entity": f"{domain}.{node}_{key}", "name": name}
                        for domain, key, name in DASHBOARD_ROWS]  # fmt: skip
            cards.append({"type": "entities", "title": f"Greenhouse {index}",
                          "entities": entities})  # fmt: skip
        temperatures = [
            f"sensor.greenhouse_{i}_climate_temperature" for i in range(1, self.nodes + 1)
        ]
        cards.append({"type": "history-graph", "title": "Temperatures", "hours_to_show": 1,
                      "entities": temperatures})  # fmt: skip
        gateway = [{"entity": f"sensor.edgeiot_gateway_demo_{key}", "name": name} for key, name in
                   (("dropped_messages", "Dropped messages"), ("recorder_queue", "Recorder queue"),
                    ("recorder_points_written", "Points recorded"))]  # fmt: skip
        cards.append({"type": "entities", "title": "EdgeIoT gateway", "entities": gateway})
        view = {"title": "EdgeIoT", "path": "nodes", "cards": cards}
        return json.dumps({"title": "EdgeIoT demo", "views": [view]}, indent=2) + "\n"

    def ha_token(self) -> str:
        """Onboard HA with the demo user on first start, else log in; returns an access token."""
        try:
            onboarding = self.request("/api/onboarding")
        except urllib.error.HTTPError as err:  # 404: onboarding is over, its views are gone
            if err.code != 404:
                raise
            onboarding = [{"step": "user", "done": True}]
        if not next(step["done"] for step in onboarding if step["step"] == "user"):
            code = self.request("/api/onboarding/users", {
                "client_id": self.client_id, "name": "Demo", "username": DEMO_USER,
                "password": DEMO_PASSWORD, "language": "en"})["auth_code"]  # fmt: skip
            token = self.exchange(code)
            self.request("/api/onboarding/core_config", {}, token)
            self.request("/api/onboarding/analytics", {}, token)
            redirect = {
                "client_id": self.client_id,
                "redirect_uri": f"{self.ha_url}/?auth_callback=1",
            }
            self.request("/api/onboarding/integration", redirect, token)
            print(f"demo: Home Assistant onboarded with user {DEMO_USER!r}", flush=True)
            return token
        start = {"client_id": self.client_id, "handler": ["homeassistant", None],
                 "redirect_uri": f"{self.ha_url}/?auth_callback=1"}  # fmt: skip
        flow = self.request("/auth/login_flow", start)
        login = {"client_id": self.client_id, "username": DEMO_USER, "password": DEMO_PASSWORD}
        result = self.request(f"/auth/login_flow/{flow['flow_id']}", login)
        return self.exchange(result["result"])

    def exchange(self, code: str) -> str:
        """Trade an auth code for an access token."""
        data = {"grant_type": "authorization_code", "code": code, "client_id": self.client_id}
        return str(self.request("/auth/token", data, form=True)["access_token"])

    def configure_integration(self, token: str) -> None:
        """Add the EdgeIoT entry through HA's config-flow API, unless HA already has one."""
        entries = self.request("/api/config/config_entries/entry?domain=edgeiot", token=token)
        if entries:
            return
        flow = self.request("/api/config/config_entries/flow", {"handler": "edgeiot"}, token)
        answer = {"host": "127.0.0.1", "port": self.gateway_port, "token": self.gateway_token}
        result = self.request(f"/api/config/config_entries/flow/{flow['flow_id']}", answer, token)
        if result.get("type") != "create_entry":
            raise RuntimeError(f"adding the EdgeIoT integration failed: {result}")
        print("demo: EdgeIoT integration added to Home Assistant", flush=True)

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                print(f"demo: stopped {name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=3, help="simulated MQTT nodes")
    args = parser.parse_args()
    demo = Demo(args.nodes)
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        demo.start()
        print(
            f"\nEdgeIoT demo is running:\n"
            f"  Home Assistant  {demo.ha_url}  (login {DEMO_USER} / {DEMO_PASSWORD})\n"
            f"  Gateway API     http://127.0.0.1:{demo.gateway_port}  (token in "
            f".cache/demo/gateway/api_token)\n"
            f"  MQTT broker     127.0.0.1:{demo.mqtt_port}\n"
            f"  InfluxDB        {demo.influx_url or 'not running'}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while all(proc.poll() is None for _, proc in demo.procs):
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    else:
        dead = [name for name, proc in demo.procs if proc.poll() is not None]
        print(f"demo: {', '.join(dead)} exited; see .cache/demo/*.log", flush=True)
        return 1
    finally:
        demo.stop()


if __name__ == "__main__":
    sys.exit(main())
