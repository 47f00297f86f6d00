"""The aiohttp application: routes, token check, size and connection limits."""

from __future__ import annotations

import errno
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from ..auth import token_matches
from ..config import ApiConfig
from ..errors import StartupError
from ..updates.downloads import PATH_PREFIX, ROUTE
from . import page, rest, ws
from .errors import HttpLogger, reject

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..commands import Commands

_LOGGER = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/", "/health"})

type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiServer:
    """Serves the WebSocket and REST APIs on one port."""

    def __init__(self, config: ApiConfig, token: str, commands: Commands, events: EventBus) -> None:
        self.config = config
        self.token = token
        self.commands = commands
        self.events = events
        self.clients: set[ws.WebSocketClient] = set()
        self.errors: Counter[str] = Counter()  # rejected requests and commands by error code
        self._coalesced_closed = 0  # field values coalesced for connections that have ended
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def client_count(self) -> int:
        """Open WebSocket connections."""
        return len(self.clients)

    @property
    def coalesced(self) -> int:
        """Queued field values replaced by a newer value of the same field (slow clients)."""
        return self._coalesced_closed + sum(c.outbox.coalesced for c in self.clients)

    def make_app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(
            middlewares=[self._auth_middleware],
            client_max_size=self.config.max_message_bytes,
        )
        app.router.add_get("/", page.handler(self.commands))
        app.router.add_get("/health", rest.health)
        app.router.add_get("/api/v1/ws", self._websocket)
        rest.add_routes(app, self.commands, self.errors)
        app.router.add_get(ROUTE, self.commands.gateway.downloads.handle)  # token in the path
        return app

    async def start(self) -> None:
        """Listen on the configured host and port (port 0 picks a free one)."""
        # aiohttp arms keepalive_timeout when a connection opens and after each response, and
        # closes the connection if no complete request head has arrived by then: this is the
        # header read timeout (slowloris) and the idle keep-alive timeout in one.
        self._runner = web.AppRunner(
            self.make_app(),
            access_log=None,
            keepalive_timeout=self.config.header_timeout,
            logger=HttpLogger(self.errors),
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as err:
            raise _bind_error(self.config.host, self.config.port, err) from err
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        _LOGGER.info("API listening on %s:%s", self.config.host, self.port)

    async def stop(self) -> None:
        """Close every client and stop listening."""
        for client in list(self.clients):
            await client.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or request.path.startswith(PATH_PREFIX):
            return await handler(request)
        if not token_matches(self.token, request.headers.get("Authorization")):
            reject(self.errors, "invalid_auth", logging.WARNING,
                   "Rejected %s %.200s from %s: missing or wrong token",
                   request.method, request.path, request.remote)  # fmt: skip
            return web.json_response(
                {"error_code": "invalid_auth", "message": "missing or wrong token"}, status=401
            )
        return await handler(request)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if len(self.clients) >= self.config.max_connections:
            reject(self.errors, "too_many_connections", logging.WARNING,
                   "Refused WebSocket from %s: %d connections open",
                   request.remote, len(self.clients))  # fmt: skip
            return web.json_response(
                {"error_code": "too_many_connections", "message": "connection limit reached"},
                status=503,
            )
        client = ws.WebSocketClient(self.commands, self.events, self.config, self.errors)
        self.clients.add(client)
        try:
            return await client.serve(request)
        finally:
            self.clients.discard(client)
            self._coalesced_closed += client.outbox.coalesced


def _bind_error(host: str, port: int, err: OSError) -> StartupError:
    where = f"port {port} on {host}"
    match err.errno:
        case errno.EADDRINUSE:
            return StartupError(f"{where} is in use", "stop the other process or set [api] port")
        case errno.EACCES:
            return StartupError(
                f"no permission to listen on {where}",
                "set [api] port to 1024 or above, or run the gateway with that permission",
            )
        case errno.EADDRNOTAVAIL:
            return StartupError(
                f"cannot listen on {where}: {host} is not an address of this machine",
                "set [api] host to one of its addresses, or 0.0.0.0 for all",
            )
    reason = err.strerror or str(err)
    return StartupError(f"cannot listen on {where}: {reason}", "check [api] host and port")
