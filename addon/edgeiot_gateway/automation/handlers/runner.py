"""Running a definition's handler calls: all at once, each with its own timeout, so a slow or
failing handler never delays or stops the others. Nothing here raises but cancellation."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...commands import CommandError
from .base import Handler, HandlerContext, HandlerError

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0  # seconds
MAX_TIMEOUT = 3600.0
MAX_RESULT_BYTES = 4096  # a call's result as kept in the run history
MAX_ERROR_CHARS = 255


@dataclass(slots=True, frozen=True)
class Call:
    """A validated handler call of a definition."""

    handler: Handler
    params: dict[str, Any]
    timeout: float = DEFAULT_TIMEOUT


@dataclass(slots=True, frozen=True)
class CallResult:
    handler: str
    ok: bool
    duration: float  # seconds
    error: str | None = None
    result: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "handler": self.handler,
            "ok": self.ok,
            "duration": round(self.duration, 4),
            "error": self.error,
            "result": self.result,
        }


async def run_calls(
    calls: Sequence[Call], ctx: HandlerContext, variables: Mapping[str, Any]
) -> list[CallResult]:
    """The results of every call, in the order of `calls`."""
    return list(await asyncio.gather(*(_run(call, ctx, variables) for call in calls)))


async def _run(call: Call, ctx: HandlerContext, variables: Mapping[str, Any]) -> CallResult:
    name = call.handler.name
    started = time.monotonic()
    error: str | None
    try:
        async with asyncio.timeout(call.timeout):
            result = await call.handler.call(ctx, call.params, variables)
    except TimeoutError:
        error = f"timed out after {call.timeout:g} s"
    except HandlerError as err:
        error = str(err)
    except CommandError as err:
        error = f"{err.code}: {err.message}"
    except Exception as err:  # a handler's bug: the run records it, the others go on
        _LOGGER.exception("Handler %s failed", name)
        error = f"internal error: {err!r}"
    else:
        return CallResult(name, True, time.monotonic() - started, result=_bounded(result))
    return CallResult(name, False, time.monotonic() - started, error=error[:MAX_ERROR_CHARS])


def _bounded(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    size = len(json.dumps(result, default=str))
    if size > MAX_RESULT_BYTES:
        return {"truncated": True, "bytes": size}
    return result
