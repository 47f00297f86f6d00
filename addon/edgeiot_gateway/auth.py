"""The API token: a long random secret generated on first start and kept in the data dir."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from .errors import StartupError

_LOGGER = logging.getLogger(__name__)

TOKEN_FILE = "api_token"
SHOWN_FILE = "api_token.shown"  # exists once the token in TOKEN_FILE was printed


def load_or_create_token(data_dir: Path) -> tuple[str, bool]:
    """Return (token, unshown): the stored token, or a new one written with mode 0600.

    `unshown` stays true, start after start, until `mark_token_shown` records that the token
    was printed, so a crash between creating and printing it cannot hide it for good.
    Raises StartupError when the token file cannot be read or written.
    """
    path = data_dir / TOKEN_FILE
    shown = data_dir / SHOWN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip() if path.exists() else ""
        if len(token) < 32:
            token = secrets.token_urlsafe(32)
            data_dir.mkdir(parents=True, exist_ok=True)
            shown.unlink(missing_ok=True)
            temporary = path.with_name(f".{TOKEN_FILE}.new")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(token + "\n")
                os.fsync(file.fileno())
            os.replace(temporary, path)
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "it is not a text file"
        raise StartupError(
            f"cannot use the API token file {path}: {reason}",
            f"make {path} a text file holding the token, readable by the gateway, or delete it"
            " to have a new token created (Home Assistant then asks for the new one)",
        ) from err
    return token, not shown.exists()


def mark_token_shown(data_dir: Path) -> None:
    """Record that the token was printed (best effort: else it is printed again next start)."""
    try:
        (data_dir / SHOWN_FILE).touch()
    except OSError as err:
        _LOGGER.warning("Cannot record that the API token was shown: %s", err)


def token_matches(expected: str, header: str | None) -> bool:
    """Whether an `Authorization: Bearer <token>` header carries the expected token."""
    if not header or not header.startswith("Bearer "):
        return False
    # Header bytes that are not UTF-8 arrive as surrogates; they can only mismatch.
    given = header[len("Bearer ") :].encode(errors="surrogateescape")
    return hmac.compare_digest(given, expected.encode())
