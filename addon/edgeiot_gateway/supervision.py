"""Long-running loops that survive every error: logged, counted, visible, backed off, resumed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

_LOGGER = logging.getLogger(__name__)

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
# Tracebacks logged per loop: the first ones, then one in every LOG_EVERY failures.
LOG_FIRST = 5
LOG_EVERY = 100


@dataclass(slots=True)
class LoopState:
    """The health of one loop."""

    errors: int = 0
    last_error: str | None = None
    failing_since: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "last_error": self.last_error,
            "failing_since": self.failing_since,
        }


class LoopHealth:
    """Errors of the gateway's loops, by loop name: what diagnostics and the status show."""

    def __init__(self) -> None:
        self.loops: dict[str, LoopState] = {}

    def failed(self, name: str, err: BaseException) -> None:
        """Record a failure (logged with its traceback, rate-limited)."""
        state = self.loops.setdefault(name, LoopState())
        state.errors += 1
        state.last_error = f"{type(err).__name__}: {err}"[:300]
        if state.failing_since is None:
            state.failing_since = time.time()
        if state.errors <= LOG_FIRST or state.errors % LOG_EVERY == 0:
            _LOGGER.error("%s failed (#%d), retrying with backoff", name, state.errors,
                          exc_info=err)  # fmt: skip

    def recovered(self, name: str) -> None:
        """The loop did its work again."""
        state = self.loops.get(name)
        if state is not None and state.failing_since is not None:
            _LOGGER.warning("%s works again after %.0f s", name, time.time() - state.failing_since)
            state.failing_since = None

    def failing(self, name: str) -> bool:
        """Whether the loop's last attempt failed."""
        state = self.loops.get(name)
        return state is not None and state.failing_since is not None

    def problems(self) -> list[dict[str, Any]]:
        """The loops failing now: what the gateway status shows (HA repairs persistent ones)."""
        return [
            {"loop": name, "error": state.last_error, "since": state.failing_since}
            for name, state in self.loops.items()
            if state.failing_since is not None
        ]

    def as_dict(self) -> dict[str, Any]:
        """Every loop that ever failed, with its figures."""
        return {name: state.as_dict() for name, state in self.loops.items()}


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` failures in a row: 0.5 s doubling to 30 s."""
    return min(BACKOFF_MIN * 2.0 ** min(failures - 1, 16), BACKOFF_MAX)


async def keep_running(name: str, step: Callable[[], Awaitable[None]], health: LoopHealth) -> None:
    """Run `step` again and again until cancelled; an error is recorded and backed off."""
    failures = 0
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            failures += 1
            health.failed(name, err)
            await asyncio.sleep(backoff(failures))
        else:
            if failures:
                failures = 0
                health.recovered(name)
