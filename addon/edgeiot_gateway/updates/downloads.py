"""Firmware downloads for OTA jobs: `GET /api/v1/ota/<token>` with resumable ranges.

A token is random, valid for one job only, and expires OTA_IDLE_SECONDS after its last request
(or after it was issued, if the node never asks); it is the only authentication the route has.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ..advertise import lan_addresses
from ..commands import INVALID_VALUE, CommandError

ROUTE = "/api/v1/ota/{token}"
PATH_PREFIX = "/api/v1/ota/"
OTA_IDLE_SECONDS = 600.0
MAX_TOKENS = 1024  # tokens at once (each job holds one)


@dataclass(slots=True)
class _Download:
    path: Path
    touched: float = field(default_factory=time.monotonic)


def base_url(configured: str | None, bind_host: str, port: int | None) -> str | None:
    """The API's base URL as nodes reach it: `[firmware] ota_url`, else the bound address, else
    the first LAN address (the one zeroconf advertises); None when there is none."""
    if configured:
        return configured
    if port is None:
        return None
    if bind_host not in ("", "0.0.0.0"):
        host = bind_host
    elif addresses := lan_addresses(bind_host):
        host = addresses[0]
    else:
        return None
    if ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class OtaDownloads:
    """The tokens of running OTA jobs and the route that serves their files."""

    def __init__(self) -> None:
        self.base_url: str | None = None  # set once the API listens
        self.idle_seconds = OTA_IDLE_SECONDS
        self.requests = 0
        self._downloads: dict[str, _Download] = {}

    def issue(self, path: Path) -> tuple[str, str]:
        """A new token for `path`: (token, URL for the node)."""
        if self.base_url is None:
            raise CommandError(
                INVALID_VALUE,
                "the gateway knows no address nodes can download from: set [firmware] ota_url",
            )
        self._expire()
        if len(self._downloads) >= MAX_TOKENS:
            raise CommandError(INVALID_VALUE, f"{MAX_TOKENS} downloads are already open")
        token = secrets.token_urlsafe(24)
        self._downloads[token] = _Download(path)
        return token, f"{self.base_url}{PATH_PREFIX}{token}"

    def revoke(self, token: str) -> None:
        """End a token (its job has ended)."""
        self._downloads.pop(token, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for token, download in list(self._downloads.items()):
            if now - download.touched > self.idle_seconds:
                del self._downloads[token]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve a token's file; `Range: bytes=N-` answers 206 (aiohttp's FileResponse)."""
        self.requests += 1
        self._expire()
        download = self._downloads.get(request.match_info["token"])
        if download is None:
            return web.json_response(
                {"error_code": "not_found", "message": "unknown or expired download"}, status=404
            )
        download.touched = time.monotonic()
        return web.FileResponse(download.path, headers={"Content-Type": "application/octet-stream"})
