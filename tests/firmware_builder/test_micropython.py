"""The built filesystem image on MicroPython 1.26's unix port: mounted with its own VfsLfs2 over a
block device of the partition's size (as the ESP ports mount theirs), the .mpy files imported."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import Built

RUNNER = Path(__file__).parents[2] / "script" / "micropython"  # the node firmware's unix port

MOUNT = """
import os, sys, vfs

class Flash:  # a RAM copy of the partition, 4 KiB blocks, erase-before-write like flashbdev
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
    def readblocks(self, n, buf, off=0):
        start = n * 4096 + off
        buf[:] = self.data[start:start + len(buf)]
    def writeblocks(self, n, buf, off=None):
        if off is None:
            self.ioctl(6, n)
            off = 0
        start = n * 4096 + off
        self.data[start:start + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // 4096
        if op == 5:
            return 4096
        if op == 6:
            self.data[arg * 4096:(arg + 1) * 4096] = b"\\xff" * 4096
        return 0

vfs.mount(vfs.VfsLfs2(Flash(sys.argv[1])), "/fs")
os.chdir("/fs")
sys.path.insert(0, "/fs")
with open("config.good.json", "w") as f:  # the node writes its own files next to the firmware
    f.write("{}")
print("files", sorted(os.listdir("/fs")), sorted(os.listdir("/fs/edgeiot")))
from edgeiot import app, VERSION
config = app.run()
print("version", VERSION, "id", config["node_id"])
"""


def test_image_mounts_and_imports_on_the_unix_port(built: Built, tmp_path: Path) -> None:
    if not RUNNER.exists():
        pytest.skip("script/micropython (the node firmware's unix-port runner) is not here")
    script = tmp_path / "mount.py"
    script.write_text(MOUNT)
    result = subprocess.run(
        [str(RUNNER), "-X", "heapsize=32M", str(script), str(built.out / "littlefs.bin")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "files ['boot.py', 'config.good.json', 'config.json', 'edgeiot', 'main.py']"
        " ['__init__.mpy', 'app.mpy', 'drivers']",
        "node kitchen-1 drivers 2 relay",
        "version 0.3.1 id kitchen-1",
    ]
