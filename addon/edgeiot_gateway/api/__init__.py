"""The gateway's aiohttp API: WebSocket (live) and REST, behind a bearer token."""

from .server import ApiServer

__all__ = ["ApiServer"]
