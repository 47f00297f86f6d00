"""Waiting helpers for tests against live processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from homeassistant.core import HomeAssistant


async def wait_until(hass: HomeAssistant, predicate: Callable[[], Any], timeout: float = 15) -> Any:
    """Let HA run until predicate() is truthy (events from the gateway arrive over the socket)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await hass.async_block_till_done()
        if result := predicate():
            return result
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {predicate}")


def state_of(hass: HomeAssistant, entity_id: str) -> str | None:
    """The entity's state string, or None when it does not exist."""
    state = hass.states.get(entity_id)
    return None if state is None else state.state


async def poll_until(predicate: Callable[[], Any], timeout: float = 15) -> Any:
    """Like wait_until without async_block_till_done, which would wait for a running service
    call (an update.install waiting for its job) to return."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        await asyncio.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {predicate}")
