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
HA_URL = "http://127.0.0.1:8123"
CLIENT_ID = f"{HA_URL}/"
DEMO_USER, DEMO_PASSWORD = "demo", "edgeiot-demo"
GATEWAY_PORT = 8099
HA_CONFIGURATION = """\
# EdgeIoT demo configuration (written by script/develop)
# A curated subset of default_config: no voice/media stacks that need native builds.
frontend:
config:
api:
history:
logbook:
system_health:
logger:
  default: warning
  logs:
    custom_components.edgeiot: info
"""


def free_port(preferred: int) -> int:
    """`preferred` when it is free on loopback, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


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


def request(path: str, data: Any = None, token: str | None = None, form: bool = False) -> Any:
    """JSON (or form) request to HA; returns the decoded JSON answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = None
    if data is not None:
        if form:
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(data).encode()
            headers["Content-Type"] = "application/json"
    req = urllib.request.Request(f"{HA_URL}{path}", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.load(response)


class Demo:
    """Starts and stops the demo's processes."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.python = str(ROOT / ".venv" / "bin" / "python")

    def spawn(self, name: str, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (STATE / log).open("ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append((name, proc))
        print(f"demo: started {name} (pid {proc.pid}, log .cache/demo/{log})", flush=True)
        return proc

    def start_mosquitto(self) -> int:
        port = free_port(1883)
        data = STATE / "mosquitto"
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
        data = STATE / "influxdb"
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
        port = free_port(GATEWAY_PORT)
        config = STATE / "gateway.toml"
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
        token = (STATE / "gateway" / "api_token").read_text().strip()
        return port, token

    def start_simulator(self, mqtt_port: int) -> None:
        self.spawn("simulated nodes", [self.python, "-m", "edgeiot_gateway.simulator",
                                       "--port", str(mqtt_port), "--nodes", str(self.nodes),
                                       "--interval", "3"], "simulator.log")  # fmt: skip

    def start_home_assistant(self) -> None:
        HA_CONFIG.mkdir(exist_ok=True)
        configuration = HA_CONFIG / "configuration.yaml"
        if not configuration.exists():
            configuration.write_text(HA_CONFIGURATION)
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        with (STATE / "home-assistant.log").open("ab") as out:
            proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "hass"), "--config",
                                     str(HA_CONFIG)], stdout=out, stderr=subprocess.STDOUT,
                                    cwd=ROOT, env=env)  # fmt: skip
        self.procs.append(("Home Assistant", proc))
        print(f"demo: started Home Assistant (pid {proc.pid}), waiting for {HA_URL}", flush=True)
        wait_http(f"{HA_URL}/manifest.json", "Home Assistant", timeout=300)

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                print(f"demo: stopped {name}", flush=True)


def ha_token() -> str:
    """Onboard HA with the demo user on first start, else log in; returns an access token."""
    onboarding = request("/api/onboarding")
    if not next(step["done"] for step in onboarding if step["step"] == "user"):
        code = request("/api/onboarding/users", {
            "client_id": CLIENT_ID, "name": "Demo", "username": DEMO_USER,
            "password": DEMO_PASSWORD, "language": "en"})["auth_code"]  # fmt: skip
        token = exchange(code)
        request("/api/onboarding/core_config", {}, token)
        request("/api/onboarding/analytics", {}, token)
        redirect = {"client_id": CLIENT_ID, "redirect_uri": f"{HA_URL}/?auth_callback=1"}
        request("/api/onboarding/integration", redirect, token)
        print(f"demo: Home Assistant onboarded with user {DEMO_USER!r}", flush=True)
        return token
    start = {"client_id": CLIENT_ID, "handler": ["homeassistant", None],
             "redirect_uri": f"{HA_URL}/?auth_callback=1"}  # fmt: skip
    flow = request("/auth/login_flow", start)
    login = {"client_id": CLIENT_ID, "username": DEMO_USER, "password": DEMO_PASSWORD}
    result = request(f"/auth/login_flow/{flow['flow_id']}", login)
    return exchange(result["result"])


def exchange(code: str) -> str:
    """Trade an auth code for an access token."""
    data = {"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID}
    return str(request("/auth/token", data, form=True)["access_token"])


def configure_integration(token: str, gateway_port: int, gateway_token: str) -> None:
    """Add (or point at the demo gateway) the EdgeIoT entry through HA's config flow API."""
    entries = request("/api/config/config_entries/entry?domain=edgeiot", token=token)
    if entries:
        return
    flow = request("/api/config/config_entries/flow", {"handler": "edgeiot"}, token)
    answer = {"host": "127.0.0.1", "port": gateway_port, "token": gateway_token}
    result = request(f"/api/config/config_entries/flow/{flow['flow_id']}", answer, token)
    if result.get("type") != "create_entry":
        raise RuntimeError(f"adding the EdgeIoT integration failed: {result}")
    print("demo: EdgeIoT integration added to Home Assistant", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=3, help="simulated MQTT nodes")
    args = parser.parse_args()
    STATE.mkdir(parents=True, exist_ok=True)
    demo = Demo(args.nodes)
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        mqtt_port = demo.start_mosquitto()
        influx_url = demo.start_influxdb()
        gateway_port, gateway_token = demo.start_gateway(mqtt_port, influx_url)
        demo.start_simulator(mqtt_port)
        demo.start_home_assistant()
        configure_integration(ha_token(), gateway_port, gateway_token)
        print(
            f"\nEdgeIoT demo is running:\n"
            f"  Home Assistant  {HA_URL}  (login {DEMO_USER} / {DEMO_PASSWORD})\n"
            f"  Gateway API     http://127.0.0.1:{gateway_port}  (token in "
            f".cache/demo/gateway/api_token)\n"
            f"  MQTT broker     127.0.0.1:{mqtt_port}\n"
            f"  InfluxDB        {influx_url or 'not running'}\n"
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
