"""Errors every module may raise; this module imports nothing of the gateway."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

# Exit codes of `edgeiot-gateway` (1 stays Python's own: an unexpected error with a traceback).
EXIT_CONFIG = 2
EXIT_STARTUP = 3

# What opening a SQLite file of the gateway raises when the file or its directory is at fault.
DATABASE_ERRORS = (sqlite3.Error, OSError, ValueError)


class StartupError(Exception):
    """The gateway cannot start for a reason the operator can fix: what happened, what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def database_error(path: Path, err: Exception, damaged_hint: str) -> StartupError:
    """The StartupError for a SQLite file that cannot be opened; `damaged_hint`: how to recover."""
    name = getattr(err, "sqlite_errorname", "")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        return StartupError(f"{path} is damaged ({err})", damaged_hint)
    if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM") or isinstance(
        err, PermissionError
    ):
        return StartupError(
            f"cannot write {path} ({err})",
            f"make {path} and its directory {path.parent} writable for the user the gateway runs"
            " as (the directory must be on a writable filesystem)",
        )
    if name == "SQLITE_FULL" or getattr(err, "errno", None) == errno.ENOSPC:
        return StartupError(f"no space left for {path}", f"free space on the disk of {path.parent}")
    return StartupError(f"cannot open {path} ({err})", damaged_hint)
