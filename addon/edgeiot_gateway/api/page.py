"""The public page at `/`: what this gateway is and how to use its API (no token needed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import TYPE_CHECKING

from aiohttp import web

from .. import __version__

if TYPE_CHECKING:
    from ..commands import Commands

DOCS_URL = "https://github.com/edgeiot/edgeiot/blob/main/docs/protocol.md#3-gateway-api"
# A static page: no scripts, no external resources, nothing framed or sniffed.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>EdgeIoT gateway {gateway_id}</title>
<style>body{{font-family:sans-serif;max-width:42em;margin:2em auto;padding:0 1em}}
code{{background:#eee;padding:0 .2em}}</style>
</head>
<body>
<h1>EdgeIoT gateway <code>{gateway_id}</code></h1>
<p>Version {version}, {nodes} nodes.</p>
<h2>API</h2>
<ul>
<li>WebSocket: <code>/api/v1/ws</code></li>
<li>REST: <code>/api/v1/</code> (<code>info</code>, <code>nodes</code>, <code>backup</code>,
<code>restore</code>, <code>diagnostics</code>)</li>
<li>Liveness: <code>/health</code> (no token)</li>
</ul>
<p>Documentation: <a href="{docs}">the EdgeIoT protocol, section 3 (Gateway API)</a>.</p>
<h2>Token</h2>
<p>Every API request needs the header <code>Authorization: Bearer &lt;token&gt;</code>.
The token is the configured <code>api.token</code>, else the one in the file
<code>api_token</code> of the gateway's data directory (<code>/data/gateway/api_token</code> in the
Home Assistant add-on, which hands it to the integration through discovery); a standalone
gateway prints it in its log on its first start.</p>
</body>
</html>
"""


def render(gateway_id: str, nodes: int) -> str:
    """The page's HTML; every value in it is escaped."""
    return _TEMPLATE.format(
        gateway_id=escape(gateway_id),
        version=escape(__version__),
        nodes=nodes,
        docs=escape(DOCS_URL),
    )


def handler(commands: Commands) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route handler for `/`."""

    async def page(_request: web.Request) -> web.Response:
        html = render(commands.gateway.gateway_id, len(commands.gateway.processor.nodes))
        return web.Response(text=html, content_type="text/html", headers=HEADERS)

    return page
