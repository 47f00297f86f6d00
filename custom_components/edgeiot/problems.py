"""Repair issues for the gateway's loops that keep failing (`problems` of `gateway status`).

A loop failing for a moment (a broker restart, a short InfluxDB outage) is normal and shows on
the gateway's diagnostics only; one failing for longer than PROBLEM_GRACE raises a repair issue
naming the loop and its last error, deleted as soon as the gateway reports the loop working.
"""

from __future__ import annotations

import time
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later

from .const import DOMAIN

PROBLEM_GRACE = 300.0  # seconds a loop may fail before the user is told


class LoopProblems:
    """Tracks the failing loops of one gateway and keeps their repair issues in step."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self.hass = hass
        self.entry_id = entry_id
        self.gateway_id = ""
        self._failing: dict[str, tuple[float, str]] = {}  # loop → (first seen, last error)
        self._raised: set[str] = set()
        self._timer: CALLBACK_TYPE | None = None

    def _issue_id(self, loop: str) -> str:
        return f"loop_failing_{self.entry_id}_{loop}"

    @callback
    def update(self, gateway_id: str, problems: list[dict[str, Any]]) -> None:
        """The gateway's current `problems`: loops that are no longer there are fixed."""
        self.gateway_id = gateway_id
        now = time.monotonic()
        current = {str(p["loop"]): str(p.get("error") or "unknown error") for p in problems}
        for loop in set(self._failing) - set(current):
            del self._failing[loop]
            if loop in self._raised:
                self._raised.discard(loop)
                ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(loop))
        for loop, error in current.items():
            first = self._failing.get(loop, (now, error))[0]
            self._failing[loop] = (first, error)
        self._check()

    @callback
    def _check(self, _now: Any = None) -> None:
        if self._timer is not None:
            self._timer()  # one timer at a time (a no-op when it is the one firing)
            self._timer = None
        now = time.monotonic()
        due: list[float] = []
        for loop, (first, error) in self._failing.items():
            if now - first >= PROBLEM_GRACE:
                self._raise(loop, error)
            else:
                due.append(first + PROBLEM_GRACE - now)
        if due:
            self._timer = async_call_later(self.hass, min(due), self._check)

    @callback
    def _raise(self, loop: str, error: str) -> None:
        self._raised.add(loop)
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(loop),
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="loop_failing",
            translation_placeholders={
                "gateway": self.gateway_id, "loop": loop, "error": error,
                "minutes": f"{PROBLEM_GRACE / 60:g}",
            },
        )  # fmt: skip

    @callback
    def stop(self) -> None:
        """The entry unloads: no more checks, and its issues go (they come back if still true)."""
        if self._timer is not None:
            self._timer()
            self._timer = None
        for loop in self._raised:
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(loop))
        self._raised.clear()
        self._failing.clear()
