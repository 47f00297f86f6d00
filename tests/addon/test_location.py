"""The add-on takes Home Assistant's location from Core's /api/config (via the Supervisor)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.addon_options import main as addon_options_main
from edgeiot_gateway.config import parse_config

HA_CONFIG = {"latitude": 52.52, "longitude": 13.405, "elevation": 34, "unit_system": {},
             "time_zone": "Europe/Berlin", "location_name": "Home"}  # fmt: skip


class FakeCore:
    """A real HTTP server answering GET /core/api/config like the Supervisor's proxy."""

    def __init__(self) -> None:
        self.body: bytes = json.dumps(HA_CONFIG).encode()
        self.status = 200
        self.auth: list[str | None] = []
        core = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                core.auth.append(self.headers.get("Authorization"))
                self.send_response(core.status if self.path == "/core/api/config" else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(core.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/core/api/config"


@pytest.fixture
def core(socket_enabled: None) -> Iterator[FakeCore]:
    fake = FakeCore()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def run_options(tmp_path: Path, url: str) -> dict[str, Any]:
    options, output = tmp_path / "options.json", tmp_path / "out.json"
    options.write_text(json.dumps({"log_level": "info"}))
    (tmp_path / "mqtt").write_text("m\n")
    (tmp_path / "influx").write_text("i\n")
    addon_options_main(["--options", str(options), "--mqtt-password-file", str(tmp_path / "mqtt"),
                        "--influxdb-password-file", str(tmp_path / "influx"),
                        "--data-dir", str(tmp_path / "gw"), "--output", str(output),
                        "--homeassistant-config-url", url])  # fmt: skip
    config: dict[str, Any] = json.loads(output.read_text())
    return config


def test_location_from_home_assistant(
    tmp_path: Path, core: FakeCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERVISOR_TOKEN", "supervisor-token")
    config = run_options(tmp_path, core.url)
    assert config["location"] == {"latitude": 52.52, "longitude": 13.405, "elevation": 34,
                                  "time_zone": "Europe/Berlin"}  # fmt: skip
    assert core.auth == ["Bearer supervisor-token"]
    parsed = parse_config(config, tmp_path)
    assert parsed.location is not None
    assert (parsed.location.tz, parsed.location.elevation) == ("Europe/Berlin", 34.0)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"message": "unauthorized"}'),
        (200, b"not json"),
        (200, json.dumps(HA_CONFIG | {"latitude": None}).encode()),
        (200, json.dumps(HA_CONFIG | {"time_zone": "Mars/Olympus"}).encode()),
    ],
)
def test_without_a_usable_answer_the_gateway_runs_without_location(
    tmp_path: Path, core: FakeCore, status: int, body: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    core.status, core.body = status, body
    config = run_options(tmp_path, core.url)
    assert "location" not in config
    assert parse_config(config, tmp_path).location is None
    assert "Home Assistant's location is unknown" in capsys.readouterr().err


def test_unreachable_supervisor(tmp_path: Path, socket_enabled: None) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    config = run_options(tmp_path, f"http://127.0.0.1:{port}/core/api/config")
    assert "location" not in config
