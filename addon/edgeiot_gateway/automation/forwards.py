"""Forwards: a field's value, optionally transformed by a template, copied to other fields.

At most once per `min_interval` (the newest value is sent when the interval ends), on every
report or only on a change. A forward chain that comes back to a field it started from within
LOOP_WINDOW seconds is a loop: counted as the drop `automation_loop` (logged like every drop)
and held to one hop per LOOP_WINDOW. Writes run as tasks, each bounded by FORWARD_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import DropCounter
from .handlers import HandlerContext
from .handlers.gateway_calls import rendered_value
from .model import Forward
from .triggers import same_value

_LOGGER = logging.getLogger(__name__)

LOOP_WINDOW = 1.0  # seconds
FORWARD_TIMEOUT = 30.0  # seconds a forward's write to one field may take
MAX_HOPS = 10_000  # fields remembered as set by a forward before old ones are dropped
AUTOMATION_LOOP = "automation_loop"

type FieldKey = tuple[str, str, str]


@dataclass(slots=True)
class ForwardState:
    forward: Forward
    last_sent: float = float("-inf")
    last_value: Any = None  # the source's value last seen (`on: change`)
    seen: bool = False
    pending: tuple[Any, Any] | None = None  # (value, previous) waiting for min_interval
    handle: asyncio.TimerHandle | None = None
    sent: int = 0
    failures: int = 0
    in_flight: set[tuple[str, str, str]] = field(default_factory=set)


class Forwards:
    """The enabled forwards, by id and by source field."""

    def __init__(self, context: HandlerContext, stats: dict[str, int], drops: DropCounter) -> None:
        self.context = context
        self.stats = stats  # the engine's: `forwarded`, `loops`
        self.drops = drops
        self.states: dict[str, ForwardState] = {}
        self._by_source: dict[FieldKey, dict[str, ForwardState]] = {}
        self._hops: dict[FieldKey, float] = {}  # field → when a forward set it
        self._writes: set[asyncio.Task[None]] = set()  # field writes in flight

    def set(self, forward: Forward) -> None:
        """Enable a forward (the engine removed an earlier one of the same id)."""
        state = ForwardState(forward)
        self.states[forward.id] = state
        self._by_source.setdefault(forward.source, {})[forward.id] = state

    def remove(self, forward_id: str) -> None:
        if (state := self.states.pop(forward_id, None)) is None:
            return
        if state.handle is not None:
            state.handle.cancel()
        by_source = self._by_source[state.forward.source]
        del by_source[forward_id]
        if not by_source:
            del self._by_source[state.forward.source]

    def stop(self) -> list[asyncio.Task[None]]:
        """Cancel the waiting sends; returns the writes in flight (for the caller to cancel)."""
        for state in self.states.values():
            if state.handle is not None:
                state.handle.cancel()
        return list(self._writes)

    def on_value(self, data: dict[str, Any]) -> None:
        """A `field value` event's data: run the forwards from that field."""
        forwards = self._by_source.get((data["node_id"], data["source_id"], data["field_id"]))
        if not forwards:
            return
        value = data["value"]
        for state in tuple(forwards.values()):
            unchanged = state.seen and same_value(state.last_value, value)
            state.seen, state.last_value = True, value
            if not (unchanged and state.forward.on_change):
                self._forward(state, value)

    def _forward(self, state: ForwardState, value: Any) -> None:
        now = time.monotonic()
        forward = state.forward
        if self._hops.get(forward.source, float("-inf")) > now - LOOP_WINDOW and any(
            self._hops.get(t, float("-inf")) > now - LOOP_WINDOW for t in forward.targets
        ):
            # The source was itself set by a forward a moment ago and sets it back: a loop.
            self.stats["loops"] += 1
            self.drops.drop(AUTOMATION_LOOP, f"forward {forward.id}",
                            f"part of a loop: held to one hop per {LOOP_WINDOW:g} s")  # fmt: skip
            wait = LOOP_WINDOW
        else:
            wait = forward.min_interval
        if now - state.last_sent >= wait and state.handle is None:
            self._send(state, value, now)
        else:
            state.pending = (value, None)
            if state.handle is None:
                delay = max(state.last_sent + wait - now, 0.0)
                state.handle = asyncio.get_running_loop().call_later(
                    delay, self._send_pending, state
                )

    def _send_pending(self, state: ForwardState) -> None:
        state.handle = None
        if state.pending is not None and self.states.get(state.forward.id) is state:
            value, _ = state.pending
            state.pending = None
            self._send(state, value, time.monotonic())

    def _send(self, state: ForwardState, value: Any, now: float) -> None:
        state.last_sent = now
        forward = state.forward
        if forward.transform is not None:
            try:
                value = rendered_value(self.context, forward.transform, {"value": value})
            except Exception as err:  # a template that fails on this value
                state.failures += 1
                _LOGGER.warning("Forward %s: transform failed on %r: %s", forward.id, value, err)
                return
        self._prune_hops(now)
        for target in forward.targets:
            self._hops[target] = now
            if target in state.in_flight:
                state.failures += 1  # the previous write to it has not finished: skip this one
                continue
            state.in_flight.add(target)
            write = asyncio.get_running_loop().create_task(self._set(state, target, value))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
        state.sent += 1
        self.stats["forwarded"] += 1

    async def _set(self, state: ForwardState, target: tuple[str, str, str], value: Any) -> None:
        try:
            async with asyncio.timeout(FORWARD_TIMEOUT):
                await self.context.set_field(*target, value)
        except Exception as err:  # an offline target, a value it refuses, a timeout
            state.failures += 1
            _LOGGER.warning("Forward %s to %s failed: %r", state.forward.id, ".".join(target), err)
        finally:
            state.in_flight.discard(target)

    def _prune_hops(self, now: float) -> None:
        if len(self._hops) > MAX_HOPS:
            self._hops = {k: t for k, t in self._hops.items() if t > now - LOOP_WINDOW}
