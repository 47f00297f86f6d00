"""The `webhook` handler: an HTTP request with a templated body, retried with backoff when the
server cannot be reached or answers 429/5xx; any other status is the call's result."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import voluptuous as vol
from yarl import URL

from .base import Handler, HandlerContext, HandlerError, register_handler

MAX_BODY_BYTES = 256 * 1024
MAX_RESPONSE_BYTES = 64 * 1024  # read at most this much of an answer
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def _http_url(value: object) -> str:
    url = URL(str(value))
    if url.scheme not in ("http", "https") or not url.host:
        raise vol.Invalid("expected an http:// or https:// URL")
    return str(value)


@register_handler
class Webhook(Handler):
    name = "webhook"
    schema = vol.Schema(
        {
            vol.Required("url"): vol.All(str, vol.Length(max=2048), _http_url),
            vol.Optional("method", default="POST"): vol.In(
                ["GET", "POST", "PUT", "PATCH", "DELETE"]
            ),
            vol.Optional("headers", default=dict): vol.Schema(
                {vol.All(str, vol.Length(min=1, max=256)): vol.All(str, vol.Length(max=4096))}
            ),
            vol.Optional("body"): vol.All(str, vol.Length(max=MAX_BODY_BYTES)),
            vol.Optional("request_timeout", default=10.0): vol.All(
                vol.Coerce(float), vol.Range(min=0.1, max=300)
            ),
            vol.Optional("retries", default=2): vol.All(int, vol.Range(min=0, max=10)),
            vol.Optional("backoff", default=1.0): vol.All(
                vol.Coerce(float), vol.Range(min=0, max=60)
            ),
        }
    )

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = ctx.render(params["body"], variables).encode() if "body" in params else None
        timeout = aiohttp.ClientTimeout(total=params["request_timeout"])
        attempts = params["retries"] + 1
        for attempt in range(1, attempts + 1):
            try:
                async with ctx.http.request(
                    params["method"], params["url"], headers=params["headers"], data=body,
                    timeout=timeout, allow_redirects=False,
                ) as response:  # fmt: skip
                    text = (await response.content.read(MAX_RESPONSE_BYTES)).decode(
                        "utf-8", "replace"
                    )
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as err:
                failure = str(err) or type(err).__name__
            else:
                if status not in RETRY_STATUSES:
                    if status >= 400:
                        raise HandlerError(f"{params['method']} {params['url']}: HTTP {status}")
                    return {"status": status, "attempts": attempt, "response": text[:255]}
                failure = f"HTTP {status}"
            if attempt < attempts:
                await asyncio.sleep(params["backoff"] * 2 ** (attempt - 1))
        where = f"{params['method']} {params['url']}"
        raise HandlerError(f"{where} failed after {attempts} attempts: {failure}")
