"""Trigger index: which tasks a bus event fires, found in O(1) for exact ids.

Triggers (a task's `trigger`):

    {"type": "field", "node": "greenhouse", "source": "climate", "field": "temperature",
     "on": "change" | "update"}                 # default change
    {"type": "status", "node": "gh-*", "to": "online" | "offline"}   # `to` optional
    {"type": "event", "node": "*", "source": "button", "event": "pressed"}
    {"type": "gateway", "figure": "dropped"}    # a figure of `gateway status` changed

Ids may use the wildcards `*` and `?`. Exact subscriptions sit in a dict keyed by ids; the
wildcard ones are matched once per key and the answer is cached until they change.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import bus
from .errors import DefinitionError

_ID_GLOB = re.compile(r"^[A-Za-z0-9_*?-]{1,64}$")
_KEYS = {
    "field": ("node", "source", "field"),
    "status": ("node",),
    "event": ("node", "source", "event"),
    "gateway": ("figure",),
}
_OPTIONS = {"field": {"on"}, "status": {"to"}, "event": set(), "gateway": set()}
_EVENT_KIND = {bus.FIELD_VALUE: "field", bus.NODE_STATUS: "status", bus.NODE_EVENT: "event"}
MAX_CACHED_KEYS = 100_000


@dataclass(slots=True, frozen=True)
class Trigger:
    kind: str
    ids: tuple[str, ...]  # patterns, in the order of _KEYS[kind]
    on_change: bool = True  # field: only when the value differs from the previous one
    to: str | None = None  # status: only this transition

    @property
    def exact(self) -> bool:
        return not any("*" in i or "?" in i for i in self.ids)


@dataclass(slots=True, frozen=True)
class Hit:
    """What fired a task: the variables a run sees."""

    kind: str
    ids: tuple[str, ...]  # the event's ids
    value: Any
    previous: Any

    def variables(self) -> dict[str, Any]:
        names = dict(zip(_KEYS[self.kind], self.ids, strict=True))
        return {"trigger": self.kind, **names, "value": self.value, "previous": self.previous}


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type: 1, 1.0 and True are three different values."""
    return bool(a == b) and type(a) is type(b)


def parse_trigger(spec: object, where: str = "trigger") -> Trigger:
    """A trigger from its definition; DefinitionError names the place of a mistake."""
    if not isinstance(spec, Mapping):
        raise DefinitionError(f"{where}: expected an object")
    kind = spec.get("type")
    if kind not in _KEYS:
        raise DefinitionError(f"{where}.type: expected one of {', '.join(_KEYS)}")
    extra = set(spec) - {"type", *_KEYS[kind], *_OPTIONS[kind]}
    if extra:
        raise DefinitionError(f"{where}: unexpected {', '.join(sorted(map(str, extra)))}")
    ids = []
    for key in _KEYS[kind]:
        value = spec.get(key, "*")
        if not isinstance(value, str) or not _ID_GLOB.match(value):
            raise DefinitionError(f"{where}.{key}: expected an id (wildcards * and ? allowed)")
        ids.append(value)
    on = spec.get("on", "change")
    if on not in ("change", "update"):
        raise DefinitionError(f"{where}.on: expected change or update")
    to = spec.get("to")
    if to not in (None, "online", "offline"):
        raise DefinitionError(f"{where}.to: expected online or offline")
    return Trigger(kind, tuple(ids), on == "change", to)


class TriggerIndex:
    """Tasks by trigger; `match` gives the tasks an event fires, with what fired them."""

    def __init__(self) -> None:
        self._exact: dict[tuple[str, tuple[str, ...]], dict[str, Trigger]] = {}
        self._wild: dict[str, tuple[Trigger, tuple[re.Pattern[str], ...]]] = {}
        self._wild_cache: dict[tuple[str, tuple[str, ...]], tuple[tuple[str, Trigger], ...]] = {}
        self._triggers: dict[str, Trigger] = {}
        self._last: dict[tuple[str, tuple[str, ...]], Any] = {}  # previous values seen

    def __len__(self) -> int:
        return len(self._triggers)

    def add(self, task_id: str, trigger: Trigger) -> None:
        self.remove(task_id)
        self._triggers[task_id] = trigger
        if trigger.exact:
            self._exact.setdefault((trigger.kind, trigger.ids), {})[task_id] = trigger
        else:
            patterns = tuple(re.compile(fnmatch.translate(i)) for i in trigger.ids)
            self._wild[task_id] = (trigger, patterns)
            self._wild_cache.clear()

    def remove(self, task_id: str) -> None:
        trigger = self._triggers.pop(task_id, None)
        if trigger is None:
            return
        if trigger.exact:
            key = (trigger.kind, trigger.ids)
            tasks = self._exact[key]
            del tasks[task_id]
            if not tasks:
                del self._exact[key]
        else:
            del self._wild[task_id]
            self._wild_cache.clear()

    def match(self, event: bus.Event) -> list[tuple[str, Hit]]:
        """The tasks `event` fires (gateway figures go through `match_figure`)."""
        kind = _EVENT_KIND.get(event.name)
        if kind is None:
            return []
        data = event.data
        if kind == "field":
            ids: tuple[str, ...] = (data["node_id"], data["source_id"], data["field_id"])
            value = data["value"]
        elif kind == "status":
            ids, value = (data["node_id"],), "online" if data["online"] else "offline"
        else:
            ids, value = (data["node_id"], data["source_id"], data["event_type"]), data["data"]
        return self._fire(kind, ids, value)

    def match_figure(self, figure: str, value: Any) -> list[tuple[str, Hit]]:
        return self._fire("gateway", (figure,), value)

    def _fire(self, kind: str, ids: tuple[str, ...], value: Any) -> list[tuple[str, Hit]]:
        key = (kind, ids)
        candidates = self._candidates(key)
        if not candidates:
            return []
        previous = self._last.get(key)
        self._last[key] = value
        hit = Hit(kind, ids, value, previous)
        changed = not same_value(value, previous)
        fired = []
        for task_id, trigger in candidates:
            if kind == "field" and trigger.on_change and not changed:
                continue
            if kind in ("status", "gateway") and not changed:
                continue  # a status or figure repeated is no transition
            if trigger.to is not None and value != trigger.to:
                continue
            fired.append((task_id, hit))
        return fired

    def _candidates(self, key: tuple[str, tuple[str, ...]]) -> list[tuple[str, Trigger]]:
        exact = self._exact.get(key)
        if not self._wild:
            return list(exact.items()) if exact else []
        wild = self._wild_cache.get(key)
        if wild is None:
            kind, ids = key
            wild = tuple(
                (task_id, trigger)
                for task_id, (trigger, patterns) in self._wild.items()
                if trigger.kind == kind
                and all(p.match(i) for p, i in zip(patterns, ids, strict=True))
            )
            if len(self._wild_cache) >= MAX_CACHED_KEYS:
                self._wild_cache.clear()
            self._wild_cache[key] = wild
        if exact is None:
            return list(wild)
        return [*exact.items(), *wild]

    def forget(self, node_id: str) -> None:
        """A node was removed: its previous values go too."""
        for key in [k for k in self._last if k[1][0] == node_id and k[0] != "gateway"]:
            del self._last[key]
