"""The API token: a long random secret generated on first start and kept in the data dir."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

TOKEN_FILE = "api_token"


def load_or_create_token(data_dir: Path) -> tuple[str, bool]:
    """Return (token, created): the stored token, or a new one written with mode 0600."""
    path = data_dir / TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if len(token) >= 32:
            return token, False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token, True


def token_matches(expected: str, header: str | None) -> bool:
    """Whether an `Authorization: Bearer <token>` header carries the expected token."""
    if not header or not header.startswith("Bearer "):
        return False
    # Header bytes that are not UTF-8 arrive as surrogates; they can only mismatch.
    given = header[len("Bearer ") :].encode(errors="surrogateescape")
    return hmac.compare_digest(given, expected.encode())
