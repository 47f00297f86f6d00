"""LittleFS images with littlefs-python, configured as MicroPython 1.26's VfsLfs2 mounts them."""

from __future__ import annotations

from collections.abc import Iterable

from littlefs import LittleFS, LittleFSError, UserContext

from .sources import AppFile, BuildError
from .targets import (
    BLOCK_SIZE,
    LFS_BLOCK_CYCLES,
    LFS_DISK_VERSION,
    LFS_LOOKAHEAD,
    LFS_PROG_SIZE,
    LFS_READ_SIZE,
)


def _filesystem(block_count: int, buffer: bytearray | None = None) -> LittleFS:
    if buffer is None:
        buffer = bytearray(b"\xff" * (block_count * BLOCK_SIZE))  # erased flash
    return LittleFS(
        UserContext(buffer=buffer), mount=False, block_size=BLOCK_SIZE, block_count=block_count,
        read_size=LFS_READ_SIZE, prog_size=LFS_PROG_SIZE, lookahead_size=LFS_LOOKAHEAD,
        cache_size=min(BLOCK_SIZE, 4 * max(LFS_READ_SIZE, LFS_PROG_SIZE)),
        block_cycles=LFS_BLOCK_CYCLES, disk_version=LFS_DISK_VERSION,
    )  # fmt: skip


def build(files: Iterable[AppFile], block_count: int) -> bytes:
    """A formatted LittleFS image of `block_count` 4 KiB blocks holding `files`."""
    fs = _filesystem(block_count)
    fs.format()
    fs.mount()
    for entry in files:
        folder = entry.path.rpartition("/")[0]
        try:
            if folder:
                fs.makedirs(folder, exist_ok=True)
            with fs.open(entry.path, "wb") as out:
                out.write(entry.data)
        except LittleFSError as err:
            raise BuildError(
                f"filesystem ({block_count} blocks of {BLOCK_SIZE} bytes): cannot write"
                f" {entry.path} ({err})"
            ) from None
    fs.unmount()
    return bytes(fs.context.buffer)
