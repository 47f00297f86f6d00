"""The real node firmware (firmware/node) built with its MQTT library, mounted on MicroPython 1.26's
unix port, and its own config loader run on the config the builder accepted: no problems."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgeiot_gateway.updates.images import check_bundle

from .conftest import SECRETS, node_config, run_cli
from .test_micropython import MOUNT, RUNNER

ROOT = Path(__file__).parents[2]
FIRMWARE = ROOT / "firmware" / "node"
LIBRARIES = ROOT / "script" / "micropython-lib"  # fetches umqtt.simple, prints its directory

CHECK = (
    MOUNT.split("from edgeiot import app")[0]
    + """
sys.path.insert(0, "/fs/lib")  # "/lib" is on the ESP ports' default sys.path
from edgeiot import VERSION
from edgeiot.config import load
from umqtt.simple import MQTTClient
config, problems = load("config.json")
print(VERSION, config["node_id"], [d["id"] for d in config["drivers"]], problems)
"""
)


@pytest.mark.parametrize("target", ["esp32", "esp8266"])
def test_node_firmware_builds_and_reads_its_config(target: str, tmp_path: Path) -> None:
    if not (FIRMWARE / "edgeiot" / "config.py").exists() or not RUNNER.exists():
        pytest.skip("firmware/node or script/micropython is not here")
    libs = subprocess.run([str(LIBRARIES)], capture_output=True, text=True, timeout=120,
                          check=True).stdout.strip()  # fmt: skip
    (tmp_path / "node.json").write_text(json.dumps(node_config()))
    result = run_cli("build", "--config", tmp_path / "node.json", "--target", target,
                     "--src", FIRMWARE, "--lib", libs, "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = [
        f["path"] for f in json.loads((tmp_path / "out" / "manifest.json").read_text())["files"]
    ]
    assert {"boot.py", "main.py", "edgeiot/config.mpy", "lib/umqtt/simple.mpy"} <= set(files)
    (tmp_path / "check.py").write_text(CHECK)
    check = subprocess.run(
        [str(RUNNER), "-X", "heapsize=32M", str(tmp_path / "check.py"),
         str(tmp_path / "out" / "littlefs.bin")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    version = run_cli("bundle", "--target", target, "--src", FIRMWARE, "--lib", libs,
                      "--out", tmp_path).stdout  # fmt: skip
    bundled = check_bundle(next(tmp_path.glob("*.bundle")).read_bytes())["files"]
    paths = {f["path"] for f in bundled}
    assert {"edgeiot/config.mpy", "umqtt/simple.mpy"} <= paths  # the slot's top is on sys.path
    assert not paths & {"boot.py", "main.py", "config.json"}
    assert check.stdout.splitlines()[-1] == (
        f"{version.split('version ')[1].strip()} kitchen-1 ['relay', 'climate'] []"
    )
    for secret in SECRETS:
        assert secret not in check.stdout + result.stdout + result.stderr
