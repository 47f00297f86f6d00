"""Real Mosquitto and InfluxDB 1.x servers for tests: loopback, free ports, temp dirs."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _wait(
    ready: callable, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
        if ready():
            return
        time.sleep(0.02)
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{log.read_text()}")


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class ServerProcess:
    """A server subprocess with a log file, started and stopped by the tests."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 20) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        _wait(self.ready, self.name, self.proc, self.log, timeout)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Mosquitto(ServerProcess):
    """Mosquitto on a free loopback port.

    By default sessions persist on disk across restarts; benches turn persistence off and the
    per-client queue bound (0 = none), so a subscriber that falls behind builds a backlog to
    measure instead of losing messages at the broker.
    """

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        *,
        persistent: bool = True,
        max_queued: int = 100_000,
        max_inflight: int = 20,  # Mosquitto's default
    ):
        super().__init__(workdir)
        self.host = LOOPBACK
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        persistence = (
            f"persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
            if persistent
            else "persistence false\n"
        )
        self.conf.write_text(
            f"listener {self.port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            # Run as the current user: mosquitto drops root to `mosquitto`, which cannot write here.
            f"user {getpass.getuser()}\n"
            f"{persistence}"
            f"max_queued_messages {max_queued}\n"
            f"max_inflight_messages {max_inflight}\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )

    def command(self) -> list[str]:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        return [binary, "-c", str(self.conf)]

    def ready(self) -> bool:
        return _tcp_open(self.port)


class InfluxDB(ServerProcess):
    """InfluxDB 1.x (`influxd`) with its HTTP API on a free loopback port."""

    name = "influxd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.conf = workdir / "influxdb.conf"
        self.conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "{LOOPBACK}:{free_port()}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
            "  query-log-enabled = false\n"
            "[monitor]\n  store-enabled = false\n"
            f'[http]\n  bind-address = "{LOOPBACK}:{self.port}"\n  log-enabled = false\n'
        )

    def command(self) -> list[str]:
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        return [binary, "-config", str(self.conf)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                return bool(response.status == 204)
        except OSError:
            return False
