"""The demo's files and ports across restarts (no servers started)."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from .test_demo import _demo_module


def test_configuration_is_written_once_and_includes_ui_automations(tmp_path: Path) -> None:
    """A user's edit to configuration.yaml survives a restart; UI automations are included."""
    demo = _demo_module().Demo(1, state=tmp_path / "state", ha_config=tmp_path / "ha")
    demo.write_ha_config()
    configuration = tmp_path / "ha" / "configuration.yaml"
    text = configuration.read_text()
    for line in ("automation: !include automations.yaml", "script: !include scripts.yaml",
                 "scene: !include scenes.yaml"):  # fmt: skip
        assert line in text
    assert yaml.safe_load((tmp_path / "ha" / "automations.yaml").read_text()) == []
    configuration.write_text(text + "input_boolean:\n  mine:\n")
    (tmp_path / "ha" / "automations.yaml").write_text("- id: '1'\n  alias: mine\n")
    demo.write_ha_config()
    assert configuration.read_text().endswith("input_boolean:\n  mine:\n")
    assert "alias: mine" in (tmp_path / "ha" / "automations.yaml").read_text()


def test_ports_are_kept_across_a_quick_restart(tmp_path: Path, socket_enabled: None) -> None:
    """A port the stopped broker left in TIME_WAIT is the port it gets again."""
    demo_module = _demo_module()
    port = demo_module.stored_port(tmp_path, "mosquitto", 0)
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its port stays in TIME_WAIT
        client.close()
    assert demo_module.stored_port(tmp_path, "mosquitto", 0) == port
