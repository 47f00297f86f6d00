"""The add-on's s6 services run as shipped, on this machine, for tests.

- Paths: the rootfs is copied with its absolute roots (`ROOTS`: /command, /data, /etc/s6-overlay,
  /run) moved under a temp dir, which is all a chroot would change; `absolute_paths` lets a
  test prove that the scripts use no other. `/command/with-contenv`, `bashio` and s6's `halt`
  are the stand-ins in tests/addon/stubs.
- Network: every process runs in a user and network namespace of its own (`unshare`), so the
  add-on's fixed ports (1883, 8086, 8088, 8099) are on a loopback of its own, free whatever else
  runs here. `Sandbox.call` runs a test function in there, `Sandbox.spawn` a server.
- s6: `Supervision` starts the services in dependency order as s6-rc does (a longrun is up
  once spawned, a oneshot once it succeeded) and, like s6-supervise, runs a longrun's `finish`
  with its exit code and signal (256 and the signal when killed) and starts it again 1 s later.
- Command lines: the external commands the scripts run are shims that record their arguments
  (`argv.log`) before running the real program, so a test can check that no secret is there.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).parents[2]
ADDON_ROOTFS = REPOSITORY / "addon" / "rootfs"
STUBS = Path(__file__).parent / "stubs"
ROOTS = ("/command", "/data", "/etc/s6-overlay", "/run")
_ABSOLUTE = re.compile(r"(?<![\w.:}/$@-])(/[\w.-]+)+")
RECORDED_COMMANDS = (
    *("curl", "jq", "mosquitto_passwd", "mosquitto", "influxd", "grep", "head", "od", "tr"),
    *("mv", "date", "sleep", "seq", "hostname", "mkdir", "rm"),
)


def absolute_paths(text: str) -> set[str]:
    """The absolute paths a script names."""
    return {match.group(0) for match in _ABSOLUTE.finditer(text)}


class Sandbox:
    """A temp root for the add-on's paths and a user + network namespace for its processes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.run = tmp / "run"
        self.bin = tmp / "bin"
        self.logs = tmp / "logs"
        self.s6 = tmp / "root" / "etc" / "s6-overlay" / "s6-rc.d"
        self.halt_log = self.logs / "halt.log"
        self.argv_log = self.logs / "argv.log"
        for path in (self.data, self.run / "s6-linux-init-container-results",
                     self.run / "s6" / "basedir" / "bin", self.bin, self.logs,
                     tmp / "command"):  # fmt: skip
            path.mkdir(parents=True, exist_ok=True)
        self._install_rootfs()
        (tmp / "command" / "with-contenv").symlink_to(STUBS / "with-contenv")
        (self.run / "s6" / "basedir" / "bin" / "halt").symlink_to(STUBS / "halt")
        (self.bin / "bashio").symlink_to(STUBS / "bashio")
        self._shim("python3", sys.executable)
        for command in RECORDED_COMMANDS:
            real = shutil.which(command, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
            assert real is not None, f"{command} is needed to run the add-on"
            self._shim(command, real)
        self._holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--net", "sleep", "infinity"]
        )
        deadline = time.monotonic() + 10
        while Path(f"/proc/{self._holder.pid}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.01)
        subprocess.run(["ip", "link", "set", "lo", "up"], preexec_fn=self.enter, check=True)
        self._spawned: list[subprocess.Popen[bytes]] = []

    def path(self, shipped: str) -> Path:
        """Where a path of the add-on (/data/...) is in the sandbox."""
        return Path(self.rewrite(shipped))

    def rewrite(self, text: str) -> str:
        """The text with the add-on's absolute roots moved under the sandbox."""
        for root in ROOTS:
            target = self.tmp / ("root" + root if root == "/etc/s6-overlay" else root[1:])
            text = re.sub(rf"(?<![\w.:}}/$@-]){re.escape(root)}(?=[/\s\"']|$)", str(target), text)
        return text

    def _install_rootfs(self) -> None:
        for source in ADDON_ROOTFS.rglob("*"):
            target = self.tmp / "root" / source.relative_to(ADDON_ROOTFS)
            if source.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.write_text(self.rewrite(source.read_text()))
                shutil.copymode(source, target)

    def _shim(self, name: str, real: str) -> None:
        shim = self.bin / name
        log = f'printf "%s\\n" "{name} $*" >> "{self.argv_log}"'
        shim.write_text(f'#!/bin/sh\n{log}\nexec "{real}" "$@"\n')
        shim.chmod(0o755)

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment s6 would give the add-on's scripts, plus the stand-ins' settings."""
        return {
            "PATH": f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.tmp),
            "BASHIO_TEST_OPTIONS": str(self.data / "options.json"),
            "HALT_TEST_LOG": str(self.halt_log),
            **extra,
        }

    def enter(self) -> None:
        """Join the namespaces: a `preexec_fn`, as setns() into a user namespace needs a
        single-threaded process; it makes only system calls between fork and exec."""
        for kind, flag in (("user", os.CLONE_NEWUSER), ("net", os.CLONE_NEWNET)):
            fd = os.open(f"/proc/{self._holder.pid}/ns/{kind}", os.O_RDONLY)
            try:
                os.setns(fd, flag)
            finally:
                os.close(fd)

    def call[T](self, function: Callable[..., T], *args: Any, timeout: float = 60) -> T:
        """function(*args) in a Python process inside the namespaces; its result or its error.

        `function` and the arguments are pickled, so the function is a module-level one.
        """
        result = self.tmp / f"call-{time.monotonic_ns()}.pickle"
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(result)], input=pickle.dumps((function, args)),
            capture_output=True, cwd=REPOSITORY, timeout=timeout, check=False,
            preexec_fn=self.enter,
        )  # fmt: skip
        if proc.returncode:
            raise AssertionError(f"in the sandbox:\n{proc.stderr.decode(errors='replace')}")
        value: T = pickle.loads(result.read_bytes())
        result.unlink()
        return value

    def spawn(self, function: Callable[..., None], *args: Any) -> subprocess.Popen[bytes]:
        """function(*args) in a Python process inside the namespaces, until `close`."""
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, os.devnull], stdin=subprocess.PIPE, cwd=REPOSITORY,
            preexec_fn=self.enter,  # noqa: PLW1509 - only setns() calls, before exec
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps((function, args)))
        proc.stdin.close()
        self._spawned.append(proc)
        return proc

    def close(self) -> None:
        """Stop the spawned processes and leave the namespaces to the kernel."""
        for proc in self._spawned:
            proc.kill()
            proc.wait()
        self._holder.kill()
        self._holder.wait()


# Runs a pickled (function, args) from stdin; pickles the result into the file argv[1].
_RUNNER = """import pickle, sys
function, args = pickle.load(sys.stdin.buffer)
result = function(*args)
with open(sys.argv[1], "wb") as file:
    pickle.dump(result, file)
"""


@dataclass
class Service:
    """One s6-rc service of the add-on."""

    name: str
    kind: str
    directory: Path
    dependencies: list[str]
    up: threading.Event = field(default_factory=threading.Event)
    proc: subprocess.Popen[bytes] | None = None
    finishes: list[tuple[int, int]] = field(default_factory=list)  # (exit code, signal)
    spawns: int = 0
    result: int | None = None  # a oneshot's exit code


class Supervision:
    """The add-on's services under a small stand-in for s6-rc and s6-supervise."""

    def __init__(self, sandbox: Sandbox, environment: dict[str, str]) -> None:
        self.sandbox = sandbox
        self.environment = environment
        self.stopping = threading.Event()
        self.services: dict[str, Service] = {}
        for directory in sorted(sandbox.s6.iterdir()):
            if directory.name == "user":
                continue
            dependencies = [d.name for d in (directory / "dependencies.d").iterdir()
                            if d.name != "base"]  # fmt: skip
            kind = (directory / "type").read_text().strip()
            self.services[directory.name] = Service(directory.name, kind, directory, dependencies)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Bring every service up (in the background) in dependency order."""
        for service in self.services.values():
            thread = threading.Thread(target=self._supervise, args=(service,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def log(self, name: str) -> str:
        """Everything a service printed so far."""
        path = self.sandbox.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def run_oneshot(self, name: str) -> int:
        """Run a oneshot again (as the next start of the add-on would); its exit code."""
        service = self.services[name]
        command = (service.directory / "up").read_text().split()
        return self._spawn(service, command).wait(timeout=60)

    def _spawn(self, service: Service, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.sandbox.logs / f"{service.name}.log").open("ab") as log:
            return subprocess.Popen(
                command, cwd=service.directory, env=self.environment, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=self.sandbox.enter,  # noqa: PLW1509 - as in Sandbox.call
            )  # fmt: skip

    def _supervise(self, service: Service) -> None:
        for dependency in service.dependencies:
            while not self.services[dependency].up.wait(0.2):
                if self.stopping.is_set():
                    return
        if service.kind == "oneshot":
            command = (service.directory / "up").read_text().split()
            service.proc = self._spawn(service, command)
            service.result = service.proc.wait()
            if service.result == 0:
                service.up.set()
            return
        while not self.stopping.is_set():
            service.proc = self._spawn(service, [str(service.directory / "run")])
            service.spawns += 1
            service.up.set()
            code = service.proc.wait()
            if self.stopping.is_set():
                return
            status = (256, -code) if code < 0 else (code, 0)
            service.finishes.append(status)
            finish = service.directory / "finish"
            if finish.exists():
                proc = self._spawn(service, [str(finish), *map(str, status)])
                try:
                    proc.wait(timeout=5)  # s6's default timeout-finish
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            time.sleep(1)  # s6-supervise spawns a service at most once a second

    def stop(self) -> None:
        """Stop the longruns (SIGTERM, as s6 does) and wait for them."""
        self.stopping.set()
        for service in reversed(list(self.services.values())):
            if service.proc is not None and service.proc.poll() is None:
                os.killpg(service.proc.pid, signal.SIGTERM)
                try:
                    service.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(service.proc.pid, signal.SIGKILL)
                    service.proc.wait()
        for thread in self._threads:
            thread.join(timeout=15)
