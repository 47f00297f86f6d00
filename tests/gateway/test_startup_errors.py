"""Start-up and operator errors: one line saying what is wrong and what to do, no traceback.

Each case runs the real gateway (`python -m edgeiot_gateway`). Tests run as root, which
ignores file modes, so read-only cases use the immutable attribute (`chattr +i`) or run the
gateway as `nobody` (`setpriv`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.config import ConfigError, parse_config
from edgeiot_gateway.errors import EXIT_CONFIG, EXIT_STARTUP
from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import gateway_config

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def _config(data_dir: Path, providers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return gateway_config(data_dir, None) | {"providers": providers or []}


def _run(config: dict[str, Any], where: Path, prefix: list[str] | None = None) -> str:
    """Start a gateway that is expected to fail; returns its output (stdout and stderr)."""
    path = where / "gateway.json"
    path.write_text(json.dumps(config))
    path.chmod(0o644)
    result = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "edgeiot_gateway", "--config", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    messages = [line for line in result.stderr.splitlines() if line.startswith("edgeiot-gateway:")]
    assert len(messages) == 1, output
    expected = EXIT_CONFIG if "invalid configuration" in messages[0] else EXIT_STARTUP
    assert result.returncode == expected, output
    return output


def _message(output: str) -> str:
    return next(line for line in output.splitlines() if line.startswith("edgeiot-gateway:"))


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Paths appended get `chattr +i` from the test (skipped where unsupported), undone after."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def _make_immutable(paths: list[Path], path: Path) -> None:
    if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
        pytest.skip("this filesystem has no immutable attribute")
    paths.append(path)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temp dir `nobody` can enter (pytest's own tmp dirs are private to root)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the gateway as nobody")
    path = Path(tempfile.mkdtemp(prefix="edgeiot-startup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs holding an API token file, then filled up (skipped where mount is denied)."""
    mount = tmp_path / "full"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        pytest.skip("needs permission to mount a tmpfs")
    try:
        (mount / "data").mkdir()
        (mount / "data" / "api_token").write_text("t" * 43 + "\n")
        with contextlib.suppress(OSError), (mount / "filler").open("wb", buffering=0) as filler:
            while True:
                filler.write(b"\0" * 4096)
        yield mount / "data"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_port_in_use(tmp_path: Path, socket_enabled: None) -> None:
    """A port held by another process: named, with what to change; the token is shown later."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        config = _config(tmp_path / "data")
        config["api"]["port"] = port
        output = _run(config, tmp_path)
    assert _message(output) == f"edgeiot-gateway: port {port} on 127.0.0.1 is in use"
    assert "set [api] port" in output
    # The token was created before the bind failed and never printed: the next start prints it.
    token = (tmp_path / "data" / "api_token").read_text().strip()
    assert token not in output
    config["api"]["port"] = 0
    for printed in (True, False):
        (tmp_path / "gateway.json").write_text(json.dumps(config))
        with subprocess.Popen(
            [sys.executable, "-m", "edgeiot_gateway", "--config", str(tmp_path / "gateway.json")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        ) as proc:  # fmt: skip
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "ready on API port" in line:
                    break
            proc.terminate()
        assert "ready on API port" in lines[-1], lines
        assert (f"API token {token}" in "".join(lines)) is printed, lines


def test_unknown_provider_type(tmp_path: Path) -> None:
    """An unknown `type` names the known ones."""
    output = _run(_config(tmp_path / "data", providers=[{"type": "zigbee"}]), tmp_path)
    assert _message(output) == "edgeiot-gateway: unknown provider type 'zigbee'"
    assert "can, mqtt, mysensors" in output


def test_invalid_provider_options(tmp_path: Path) -> None:
    """Options a provider refuses are a configuration error (exit 2) naming the provider."""
    providers = [{"type": "mqtt", "name": "broker", "hots": "127.0.0.1"}]
    output = _run(_config(tmp_path / "data", providers=providers), tmp_path)
    assert "invalid configuration: provider 'broker': extra keys not allowed" in output


@pytest.mark.parametrize(
    "content",
    [b"garbage " * 1000, b"SQLite format 3\x00" + b"\xff" * 4080],
    ids=["garbage", "damaged-header"],
)
def test_damaged_store(tmp_path: Path, content: bytes) -> None:
    """A store file that is not a database: named, with how to restore a backup."""
    store = tmp_path / "data" / "edgeiot.db"
    store.parent.mkdir()
    store.write_bytes(content)
    output = _run(_config(tmp_path / "data"), tmp_path)
    assert _message(output).startswith(f"edgeiot-gateway: {store} is damaged")
    assert f"move {store} away" in output
    assert "/api/v1/restore" in output
    assert store.read_bytes() == content  # left as it was


def test_damaged_recorder_journal(tmp_path: Path) -> None:
    """The recorder's queue file damaged: named, with what moving it away costs."""
    journal = tmp_path / "data" / "recorder.db"
    journal.parent.mkdir()
    journal.write_bytes(b"garbage " * 1000)
    config = _config(tmp_path / "data") | {"recorder": {"url": "http://127.0.0.1:9"}}
    output = _run(config, tmp_path)
    assert _message(output).startswith(f"edgeiot-gateway: {journal} is damaged")
    assert "points it holds for InfluxDB are then lost" in output


def test_read_only_store(tmp_path: Path, immutable: list[Path]) -> None:
    """A store file the gateway cannot write: named, with what to make writable."""
    data = tmp_path / "data"
    config = _config(data)
    data.mkdir()
    store = data / "edgeiot.db"
    store.write_bytes(b"")  # an empty file is a valid, empty database
    store.chmod(0o400)
    _make_immutable(immutable, store)
    output = _run(config, tmp_path)
    assert _message(output).startswith(f"edgeiot-gateway: cannot write {store}")
    assert "readonly database" in output
    assert f"make {store} and its directory {data} writable" in output


def test_full_disk(tmp_path: Path, full_disk: Path) -> None:
    """No space left for the store: said so, with where to free space."""
    output = _run(_config(full_disk), tmp_path)
    assert _message(output) == f"edgeiot-gateway: no space left for {full_disk / 'edgeiot.db'}"
    assert f"free space on the disk of {full_disk}" in output


def test_read_only_data_dir(tmp_path: Path, immutable: list[Path]) -> None:
    """A data dir nothing can be written in: named, before anything else is tried."""
    data = tmp_path / "data"
    data.mkdir()
    _make_immutable(immutable, data)
    output = _run(_config(data), tmp_path)
    assert _message(output) == (
        f"edgeiot-gateway: cannot write in the data directory {data}: Operation not permitted"
    )
    assert "--data-dir" in output


def test_data_dir_of_another_user(shared_dir: Path) -> None:
    """The gateway running as a user that may not write its data dir."""
    data = shared_dir / "data"
    data.mkdir(mode=0o755)
    output = _run(_config(data), shared_dir, AS_NOBODY)
    assert _message(output) == (
        f"edgeiot-gateway: cannot write in the data directory {data}: Permission denied"
    )


def test_store_of_another_user(shared_dir: Path) -> None:
    """A store file (mode 0400, root's) in a data dir the gateway's user owns."""
    data = shared_dir / "data"
    data.mkdir()
    token = data / "api_token"
    token.write_text("t" * 43 + "\n")
    store = data / "edgeiot.db"
    store.write_bytes(b"")
    store.chmod(0o400)
    shutil.chown(data, "nobody", "nogroup")
    shutil.chown(token, "nobody", "nogroup")
    output = _run(_config(data), shared_dir, AS_NOBODY)
    assert _message(output).startswith(f"edgeiot-gateway: cannot write {store}")


def test_token_file_of_another_user(shared_dir: Path) -> None:
    """An API token file the gateway's user cannot read."""
    data = shared_dir / "data"
    data.mkdir()
    shutil.chown(data, "nobody", "nogroup")
    token = data / "api_token"
    token.write_text("t" * 43 + "\n")
    token.chmod(0o600)
    output = _run(_config(data), shared_dir, AS_NOBODY)
    assert _message(output) == (
        f"edgeiot-gateway: cannot use the API token file {token}: Permission denied"
    )
    assert "delete it to have a new token created" in output


@pytest.mark.parametrize("kind", ["directory", "binary"])
def test_unreadable_token_file(tmp_path: Path, kind: str) -> None:
    """A token file that is a directory or not text: named, and left alone."""
    token = tmp_path / "data" / "api_token"
    if kind == "directory":
        token.mkdir(parents=True)
        reason = "Is a directory"
    else:
        token.parent.mkdir()
        token.write_bytes(b"\xff\xfe" * 32)
        reason = "it is not a text file"
    output = _run(_config(tmp_path / "data"), tmp_path)
    assert _message(output) == f"edgeiot-gateway: cannot use the API token file {token}: {reason}"
    assert token.is_dir() if kind == "directory" else token.read_bytes() == b"\xff\xfe" * 32


async def test_failed_start_stops_what_started(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A provider failing to start: those started before are stopped, the API and store closed."""
    config = gateway_config(tmp_path / "data", mosquitto)
    config["providers"].append(
        {"type": "can", "interface": "virtual", "channel": "startup", "dbc": "missing.dbc"}
    )
    gateway = Gateway(parse_config(config, tmp_path))
    with pytest.raises(ConfigError, match=r"missing\.dbc"):
        await gateway.start()
    mqtt = gateway.providers["mqtt"]
    assert not mqtt.connected
    assert getattr(mqtt, "_stopped", None) is True
    assert not gateway.store._worker.is_open
    assert gateway.api is not None
    assert gateway.api.port is not None
    with pytest.raises(OSError, match="refused"):
        socket.create_connection(("127.0.0.1", gateway.api.port), timeout=5).close()
