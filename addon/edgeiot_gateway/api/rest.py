"""REST API: the same resources and commands as the WebSocket API, plus /health."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import __version__
from ..commands import (
    BUSY,
    FIRMWARE_TOO_LARGE,
    IN_USE,
    INTERNAL_ERROR,
    INVALID_BACKUP,
    INVALID_FIRMWARE,
    INVALID_MESSAGE,
    INVALID_VALUE,
    MESSAGE_TOO_LARGE,
    NOT_FOUND,
    NOT_SUPPORTED,
    NOT_WRITABLE,
    PROVIDER_UNAVAILABLE,
    UNSUPPORTED_ACTION,
    CommandError,
    Commands,
)
from . import codec
from .errors import reject

HTTP_STATUS = {
    NOT_FOUND: 404,
    INVALID_MESSAGE: 400,
    INVALID_VALUE: 400,
    INVALID_BACKUP: 400,
    NOT_WRITABLE: 409,
    UNSUPPORTED_ACTION: 409,
    PROVIDER_UNAVAILABLE: 503,
    MESSAGE_TOO_LARGE: 413,
    INVALID_FIRMWARE: 400,
    FIRMWARE_TOO_LARGE: 413,
    IN_USE: 409,
    BUSY: 409,
    NOT_SUPPORTED: 409,
}
UPLOAD_READ_BYTES = 256 * 1024

type Route = Callable[[web.Request], Awaitable[Any]]


async def health(_request: web.Request) -> web.Response:
    """Liveness for supervisors and load balancers; needs no token."""
    return web.json_response({"status": "ok", "version": __version__})


def _endpoint(
    func: Route, errors: Counter[str]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Wrap a handler: JSON result on success, a structured, counted and logged error otherwise."""

    def error(
        request: web.Request, code: str, message: str, *, failed: bool = False
    ) -> web.Response:
        reject(errors, code, logging.ERROR if failed else logging.INFO,
               "REST %s %.200s rejected: %s: %.200s", request.method, request.path, code, message,
               exc_info=failed)  # fmt: skip
        return web.json_response(
            {"error_code": code, "message": message}, status=HTTP_STATUS.get(code, 500)
        )

    async def handle(request: web.Request) -> web.Response:
        try:
            result = await func(request)
            # Large results (backup, nodes) are encoded in slices, never stalling the loop.
            return web.Response(text=await codec.dumps(result), content_type="application/json")
        except CommandError as err:
            return error(request, err.code, err.message)
        except web.HTTPException:
            raise
        except Exception as err:
            return error(request, INTERNAL_ERROR, repr(err)[:200], failed=True)

    return handle


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = codec.loads(await request.read())
    except web.HTTPRequestEntityTooLarge as err:
        raise CommandError(MESSAGE_TOO_LARGE, err.text or "body too large") from None
    except codec.InvalidJsonError as err:
        raise CommandError(INVALID_MESSAGE, f"body is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise CommandError(INVALID_MESSAGE, "body must be a JSON object")
    return body


def add_routes(app: web.Application, commands: Commands, errors: Counter[str]) -> None:
    """Register every /api/v1 REST route."""

    async def info(_r: web.Request) -> Any:
        return commands.info()

    async def nodes(_r: web.Request) -> Any:
        return commands.state()["nodes"]

    async def node(r: web.Request) -> Any:
        return commands.node(r.match_info["node_id"]).as_dict()

    async def rename(r: web.Request) -> Any:
        body = await _json_object(r)
        name = body.get("name")
        if "name" not in body or not (name is None or isinstance(name, str)):
            raise CommandError(INVALID_MESSAGE, 'expected {"name": string or null}')
        return commands.rename_node(r.match_info["node_id"], name)

    async def remove(r: web.Request) -> Any:
        commands.remove_node(r.match_info["node_id"])
        return {}

    async def set_field(r: web.Request) -> Any:
        body = await _json_object(r)
        if "value" not in body:
            raise CommandError(INVALID_MESSAGE, 'expected {"value": ...}')
        info = r.match_info
        value = await commands.set_field(
            info["node_id"], info["source_id"], info["field_id"], body["value"]
        )
        return {"value": value}

    async def action(r: web.Request) -> Any:
        await commands.node_action(r.match_info["node_id"], r.match_info["action"])
        return {}

    async def backup(_r: web.Request) -> Any:
        return commands.backup()

    async def restore(r: web.Request) -> Any:
        return await commands.restore(await _json_object(r))

    async def diagnostics(_r: web.Request) -> Any:
        return commands.diagnostics()

    library = commands.gateway.firmware

    async def firmware_upload(r: web.Request) -> Any:
        return await library.add(_firmware_meta(r), r.content.iter_chunked(UPLOAD_READ_BYTES))

    async def firmware_list(_r: web.Request) -> Any:
        return {"firmware": library.list()}

    async def firmware_get(r: web.Request) -> Any:
        return library.get(r.match_info["id"])

    async def firmware_delete(r: web.Request) -> Any:
        await library.delete(r.match_info["id"])
        return {}

    base = "/api/v1"
    app.router.add_get(f"{base}/info", _endpoint(info, errors))
    app.router.add_get(f"{base}/nodes", _endpoint(nodes, errors))
    app.router.add_get(f"{base}/nodes/{{node_id}}", _endpoint(node, errors))
    app.router.add_patch(f"{base}/nodes/{{node_id}}", _endpoint(rename, errors))
    app.router.add_delete(f"{base}/nodes/{{node_id}}", _endpoint(remove, errors))
    app.router.add_put(
        f"{base}/nodes/{{node_id}}/fields/{{source_id}}/{{field_id}}", _endpoint(set_field, errors)
    )
    app.router.add_post(f"{base}/nodes/{{node_id}}/actions/{{action}}", _endpoint(action, errors))
    app.router.add_get(f"{base}/backup", _endpoint(backup, errors))
    app.router.add_post(f"{base}/restore", _endpoint(restore, errors))
    app.router.add_get(f"{base}/diagnostics", _endpoint(diagnostics, errors))
    app.router.add_post(f"{base}/firmware", _endpoint(firmware_upload, errors))
    app.router.add_get(f"{base}/firmware", _endpoint(firmware_list, errors))
    app.router.add_get(f"{base}/firmware/{{id}}", _endpoint(firmware_get, errors))
    app.router.add_delete(f"{base}/firmware/{{id}}", _endpoint(firmware_delete, errors))


def _firmware_meta(request: web.Request) -> dict[str, Any]:
    """An upload's metadata from the query string (numbers parsed, unknown keys refused)."""
    query = dict(request.query)
    unknown = set(query) - {"name", "version", "target", "format", "sha256", "release_notes",
                            "offset", "mysensors_type", "mysensors_version"}  # fmt: skip
    if unknown:
        raise CommandError(INVALID_MESSAGE, f"unknown query keys {sorted(unknown)}")
    meta: dict[str, Any] = {k: v for k, v in query.items() if not k.startswith("mysensors_")}
    try:
        if "offset" in meta:
            meta["offset"] = int(meta["offset"], 0)
        if "mysensors_type" in query or "mysensors_version" in query:
            meta["mysensors"] = {"type": int(query.get("mysensors_type", "")),
                                 "version": int(query.get("mysensors_version", ""))}  # fmt: skip
    except ValueError:
        raise CommandError(INVALID_VALUE, "offset and mysensors_* must be numbers") from None
    return meta
