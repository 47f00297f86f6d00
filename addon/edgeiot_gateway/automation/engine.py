"""The automation engine: a bus listener that runs tasks and forwards at the edge.

Per task, in order: trigger (the index) → validity window → conditions → hysteresis latch →
dampening → `for` (the match must last; a timer, cancelled when the match ends, its deadline
kept in `snapshot()` so a restart re-arms it) → rising edge or every match → the execution
mode → the handler calls (concurrent, each with its timeout) → the run history.

An alarm task is raised when that signal turns true and cleared when it turns false; both run
the task's actions (variable `alarm`: "raised" or "cleared"), and the alarm's state (active
since, acknowledged) is part of the snapshot.

Forwards are run by forwards.Forwards. A task that would run more than RATE_MAX times within
RATE_WINDOW seconds (a runaway: two tasks setting each other's fields, a flapping input) is held
there: the runs beyond are skipped and counted as the drop `automation_rate_limited` (logged like
every drop) in the gateway's diagnostics.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
import zoneinfo
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import bus
from ..diagnostics import DropCounter
from ..supervision import LoopHealth
from .clock import Clock, SystemClock
from .conditions import Dampening, Edge, Hysteresis
from .forwards import Forwards
from .handlers import HandlerContext, run_calls
from .location import Location
from .model import Compiled, Forward, Task
from .scheduler import Scheduler
from .triggers import Hit, TriggerIndex

_LOGGER = logging.getLogger(__name__)

RATE_WINDOW = 10.0  # seconds
RATE_MAX = 100  # runs of one task per RATE_WINDOW
AUTOMATION_RATE_LIMITED = "automation_rate_limited"
# The variables of a run that its history keeps as what triggered it.
TRIGGER_KEYS = (
    "trigger",
    "node",
    "source",
    "field",
    "event",
    "figure",
    "value",
    "alarm",
    "planned",
)


@dataclass(slots=True)
class TaskState:
    """What a task remembers between triggers (persisted through snapshot/restore)."""

    task: Task
    latch: Hysteresis | None
    dampening: Dampening | None
    edge: Edge = field(default_factory=Edge)
    matched: bool = False  # the signal after `for`
    hold_deadline: float | None = None
    hold_handle: asyncio.TimerHandle | None = None
    hold_hit: Hit | None = None
    disabled_until: float | None = None  # auto-disabled; None = enabled
    reenable_handle: asyncio.TimerHandle | None = None
    running: set[asyncio.Task[None]] = field(default_factory=set)
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    history: deque[dict[str, Any]] = field(default_factory=deque)
    runs: int = 0
    failures: int = 0
    alarm_since: float | None = None
    alarm_acknowledged: bool = False
    window_start: float = float("-inf")  # the rate limit's window (monotonic) and its runs
    window_runs: int = 0


class Engine:
    """Runs the enabled definitions; `set`/`remove` change them live."""

    def __init__(
        self,
        events: bus.EventBus,
        context: HandlerContext,
        location: Location | None = None,
        health: LoopHealth | None = None,
        *,
        clock: Clock | None = None,
        drops: DropCounter | None = None,
    ) -> None:
        self.events = events
        self.drops = drops or DropCounter()
        self.context = context
        self.zone = zoneinfo.ZoneInfo(location.tz if location else "UTC")
        # The schedules and the run times follow `clock` (a ManualClock in tests); `for` and
        # re-enable timers are the event loop's, with delays computed from it.
        clock = clock or SystemClock()
        self.clock = clock.time
        self.scheduler = Scheduler(clock, location, health)
        self._scheduler_task: asyncio.Task[None] | None = None
        self.index = TriggerIndex()
        self.tasks: dict[str, TaskState] = {}
        self.stats = {"runs": 0, "failures": 0, "skipped": 0, "forwarded": 0, "loops": 0}
        self.forwarding = Forwards(context, self.stats, self.drops)
        self.forwards = self.forwarding.states
        self._retired: dict[str, TaskState] = {}  # what a replaced task keeps
        self.on_state_change: Callable[[], None] = lambda: None  # run state worth saving
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.events.subscribe(self._on_event)
        self._scheduler_task = asyncio.get_running_loop().create_task(
            self.scheduler.run(), name="edgeiot-automation-scheduler"
        )

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        running = [run for state in self.tasks.values() for run in state.running]
        for state in self.tasks.values():
            self._cancel_timers(state)
        running.extend(self.forwarding.stop())
        if self._scheduler_task is not None:
            running.append(self._scheduler_task)
            self._scheduler_task = None
        for run in running:
            run.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    # Definitions ---------------------------------------------------------------------------------

    def set(self, compiled: Compiled, enabled: bool) -> None:
        """Add or replace a definition; a disabled one keeps its history but never fires."""
        self.remove(compiled.id, keep_history=True)
        old = self._retired.pop(compiled.id, None)  # also when a task becomes a forward
        if isinstance(compiled, Forward):
            if enabled:
                self.forwarding.set(compiled)
            return
        latch = None if compiled.hysteresis is None else Hysteresis(*compiled.hysteresis)
        task_state = TaskState(compiled, latch, compiled.new_dampening())
        if old is not None:  # a changed task keeps its history, counters and raised alarm
            task_state.history = deque(old.history, maxlen=compiled.history)
            task_state.runs, task_state.failures = old.runs, old.failures
            if compiled.severity is not None and old.alarm_since is not None:
                task_state.alarm_since = old.alarm_since
                task_state.alarm_acknowledged = old.alarm_acknowledged
                task_state.matched = True  # so the condition's end clears it
                if latch is not None:
                    latch.state = True
        else:
            task_state.history = deque(maxlen=compiled.history)
        self.tasks[compiled.id] = task_state
        if not enabled:
            task_state.disabled_until = float("inf")
        elif compiled.schedule is not None:
            self.scheduler.set(compiled.id, compiled.schedule, self._scheduled)
        else:
            self.index.add(compiled.id, compiled.trigger)

    def remove(self, automation_id: str, keep_history: bool = False) -> None:
        if (state := self.tasks.pop(automation_id, None)) is not None:
            self.index.remove(automation_id)
            self.scheduler.remove(automation_id)
            self._cancel_timers(state)
            for run in state.running:
                run.cancel()
            if keep_history:
                self._retired[automation_id] = state
        self.forwarding.remove(automation_id)

    # Persistence ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The tasks' state as JSON: what a restart must not forget."""
        return {
            task_id: {
                "latch": state.latch.state if state.latch else None,
                "dampening": list(state.dampening.history) if state.dampening else None,
                "edge": state.edge.last,
                "matched": state.matched,
                "hold": None if state.hold_deadline is None or state.hold_hit is None
                else {"deadline": state.hold_deadline, "hit": _hit_json(state.hold_hit)},
                # JSON has no infinity: "off until enabled again" is disabled with no time.
                "disabled": state.disabled_until is not None,
                "disabled_until": finite(state.disabled_until),
                "alarm_since": state.alarm_since,
                "alarm_acknowledged": state.alarm_acknowledged,
                "history": list(state.history),
                "schedule": None if state.task.schedule is None else {
                    "runs": self.scheduler.runs(task_id),
                    "next": self.scheduler.next_run(task_id),
                },
            }
            for task_id, state in self.tasks.items()
        }  # fmt: skip

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Take back a snapshot's state for the tasks that still exist; a `for` timer that
        was running goes on for the time it had left (at once if that passed while down)."""
        for task_id, saved in snapshot.items():
            state = self.tasks.get(task_id)
            if state is None:
                continue
            if state.latch is not None and saved.get("latch") is not None:
                state.latch.state = bool(saved["latch"])
            if state.dampening is not None and saved.get("dampening") is not None:
                state.dampening.history.extend(bool(m) for m in saved["dampening"])
            state.edge.last = bool(saved.get("edge"))
            state.matched = bool(saved.get("matched"))
            state.alarm_since = saved.get("alarm_since")
            state.alarm_acknowledged = bool(saved.get("alarm_acknowledged"))
            state.history.extend(saved.get("history", ()))
            until = saved.get("disabled_until")
            if saved.get("disabled") and until is None:
                until = math.inf
            if until is not None and state.disabled_until is None:
                state.disabled_until = until
                self.index.remove(task_id)
                if until != float("inf"):
                    delay = max(until - self.clock(), 0.0)
                    self._plan_reenable(state, delay)
            spec, times = state.task.schedule, saved.get("schedule")
            if spec is not None and times is not None and state.disabled_until is None:
                self.scheduler.set(task_id, spec, self._scheduled, runs=int(times["runs"]),
                                   last_planned=times["next"])  # fmt: skip
            if (hold := saved.get("hold")) is not None and state.disabled_until is None:
                hit = hold["hit"]
                restored = Hit(hit["kind"], tuple(hit["ids"]), hit["value"], hit["previous"])
                self._arm_hold(state, float(hold["deadline"]), restored)

    # Events --------------------------------------------------------------------------------------

    def _on_event(self, event: bus.Event) -> None:
        if event.name == bus.FIELD_VALUE and self.forwards:
            self.forwarding.on_value(event.data)
        if event.name == bus.GATEWAY_STATUS:
            for figure, value in event.data["status"].items():
                if isinstance(value, int | float | str | bool):
                    for task_id, hit in self.index.match_figure(figure, value):
                        self._evaluate(self.tasks[task_id], hit)
            return
        if event.name == bus.NODE_REMOVED:
            self.index.forget(event.data["node_id"])
            return
        for task_id, hit in self.index.match(event):
            self._evaluate(self.tasks[task_id], hit)

    def _evaluate(self, state: TaskState, hit: Hit) -> None:
        now = self.clock()
        if state.disabled_until is not None:
            if now < state.disabled_until:
                return
            state.disabled_until = None  # re-enabled after its delay
        task = state.task
        values = _Values(hit.value, hit.previous, now, self.context)
        matched = True
        if task.validity is not None:
            matched = task.validity.contains(dt.datetime.fromtimestamp(now, self.zone))
        if matched and task.condition is not None:
            matched = task.condition(values)
        if state.latch is not None:
            latched = state.latch.state
            matched = matched and state.latch(values)
            if state.latch.state != latched:
                self.on_state_change()
        if state.dampening is not None:
            matched = state.dampening(matched)
        if task.hold <= 0:
            self._signal(state, matched, hit)
        elif not matched:
            self._cancel_hold(state)
            self._signal(state, False, hit)
        elif state.hold_deadline is None:
            self._arm_hold(state, now + task.hold, hit)
        else:
            state.hold_hit = hit  # still holding: the newest values go with the run

    def _arm_hold(self, state: TaskState, deadline: float, hit: Hit) -> None:
        state.hold_deadline, state.hold_hit = deadline, hit
        self.on_state_change()
        loop = asyncio.get_running_loop()
        delay = max(deadline - self.clock(), 0.0)
        state.hold_handle = loop.call_later(delay, self._held, state)

    def _held(self, state: TaskState) -> None:
        hit = state.hold_hit
        state.hold_deadline = state.hold_handle = state.hold_hit = None
        if hit is not None and state.task.id in self.tasks:
            self._signal(state, True, hit)

    def _cancel_timers(self, state: TaskState) -> None:
        if state.reenable_handle is not None:
            state.reenable_handle.cancel()
            state.reenable_handle = None
        self._cancel_hold(state)

    def _cancel_hold(self, state: TaskState) -> None:
        if state.hold_handle is not None:
            state.hold_handle.cancel()
            self.on_state_change()
        state.hold_deadline = state.hold_handle = state.hold_hit = None

    def _signal(self, state: TaskState, matched: bool, hit: Hit) -> None:
        task = state.task
        was, state.matched = state.matched, matched
        if was != matched:
            self.on_state_change()
        if task.severity is not None:
            if matched and not was:
                state.alarm_since, state.alarm_acknowledged = self.clock(), False
                self._alarm_changed(state)
                self._fire(state, hit, {"alarm": "raised"})
            elif was and not matched:
                self._fire(state, hit, {"alarm": "cleared"})
                state.alarm_since = None
                self._alarm_changed(state)
            return
        fire = state.edge(matched) if task.rising else matched
        if fire:
            self._fire(state, hit, {})

    def _scheduled(self, schedule_id: str, planned: float) -> None:
        state = self.tasks.get(schedule_id)
        if state is None or state.disabled_until is not None:
            return
        condition = state.task.condition
        if condition is not None and not condition(_Values(None, None, self.clock(), self.context)):
            self._skipped(state, {"trigger": "schedule", "planned": planned}, "conditions not met")
            return
        self._start_run(state, {"trigger": "schedule", "planned": planned})

    # Runs ----------------------------------------------------------------------------------------

    def run_now(self, automation_id: str) -> None:
        """Run a task's actions at once (the `automation_run` command): `trigger` is "manual",
        `value` the trigger field's current value, `alarm` "test" for an alarm."""
        state = self.tasks.get(automation_id)
        if state is None:
            raise KeyError(automation_id)
        trigger = state.task.trigger
        value = None
        if trigger.kind == "field" and trigger.exact:  # the value it would see now
            value = self.context.field(".".join(trigger.ids))[0]
        variables: dict[str, Any] = {"trigger": "manual", "value": value, "previous": None}
        if state.task.severity is not None:
            variables["alarm"] = "test"
        self._start_run(state, variables)

    def _fire(self, state: TaskState, hit: Hit, extra: dict[str, Any]) -> None:
        task = state.task
        if task.auto_disable:
            self.on_state_change()
            self.index.remove(task.id)
            state.disabled_until = (
                float("inf") if task.reenable_after is None else self.clock() + task.reenable_after
            )
            if task.reenable_after is not None:
                self._plan_reenable(state, task.reenable_after)
        self._start_run(state, {**hit.variables(), **extra})

    def _plan_reenable(self, state: TaskState, delay: float) -> None:
        loop = asyncio.get_running_loop()
        state.reenable_handle = loop.call_later(delay, self._reenable, state)

    def _reenable(self, state: TaskState) -> None:
        state.reenable_handle = None
        self.on_state_change()
        if self.tasks.get(state.task.id) is state and state.disabled_until != float("inf"):
            state.disabled_until = None
            self.index.add(state.task.id, state.task.trigger)

    def _start_run(self, state: TaskState, variables: dict[str, Any]) -> None:
        task = state.task
        variables = {"automation_id": task.id, "name": task.name, **variables}
        if self._rate_limited(state, variables):
            return
        if state.running:
            if task.mode == "single":
                self._skipped(state, variables, "already running (mode single)")
                return
            if task.mode == "restart":
                for run in state.running:
                    run.cancel()
            elif task.mode == "queued":
                if len(state.queue) >= task.max_runs:
                    self._skipped(state, variables, f"queue full ({task.max_runs})")
                else:
                    state.queue.append(variables)
                return
            elif len(state.running) >= task.max_runs:
                self._skipped(state, variables, f"{task.max_runs} runs at once (mode parallel)")
                return
        self._spawn(state, variables)

    def _rate_limited(self, state: TaskState, variables: dict[str, Any]) -> bool:
        """Count the run against the task's rate limit; True (counted, skipped) past it."""
        now = time.monotonic()
        if now - state.window_start >= RATE_WINDOW:
            state.window_start, state.window_runs = now, 0
        state.window_runs += 1
        if state.window_runs <= RATE_MAX:
            return False
        why = f"rate limited: more than {RATE_MAX} runs in {RATE_WINDOW:g} s"
        self.drops.drop(AUTOMATION_RATE_LIMITED, f"task {state.task.id}", why)
        if state.window_runs == RATE_MAX + 1:  # the window's first skipped run is in the history
            self._skipped(state, variables, why)
        else:
            self.stats["skipped"] += 1
        return True

    def _spawn(self, state: TaskState, variables: dict[str, Any]) -> None:
        run = asyncio.get_running_loop().create_task(
            self._run(state, variables), name=f"edgeiot-automation-{state.task.id}"
        )
        state.running.add(run)
        run.add_done_callback(lambda done: self._run_done(state, done))

    def _run_done(self, state: TaskState, run: asyncio.Task[None]) -> None:
        state.running.discard(run)
        if state.queue and self.tasks.get(state.task.id) is state and state.disabled_until is None:
            self._spawn(state, state.queue.popleft())

    async def _run(self, state: TaskState, variables: dict[str, Any]) -> None:
        started, clock = time.monotonic(), self.clock()
        try:
            results = await run_calls(state.task.actions, self.context, variables)
        except asyncio.CancelledError:
            self._record(state, when=clock, variables=variables, result="cancelled",
                         duration=time.monotonic() - started)  # fmt: skip
            raise
        failed = [r for r in results if not r.ok]
        error = "; ".join(f"{r.handler}: {r.error}" for r in failed) or None
        state.runs += 1
        self.stats["runs"] += 1
        if failed:
            state.failures += 1
            self.stats["failures"] += 1
        self._record(
            state, when=clock, variables=variables, result="error" if failed else "ok",
            error=error, duration=time.monotonic() - started,
            calls=[r.as_dict() for r in results],
        )  # fmt: skip

    def _skipped(self, state: TaskState, variables: dict[str, Any], why: str) -> None:
        self.stats["skipped"] += 1
        self._record(state, when=self.clock(), variables=variables, result="skipped", error=why)

    def _record(
        self,
        state: TaskState,
        *,
        when: float,
        variables: Mapping[str, Any],
        result: str,
        error: str | None = None,
        duration: float = 0.0,
        calls: list[dict[str, Any]] | None = None,
    ) -> None:
        run = {
            "time": when,
            "trigger": {k: variables[k] for k in TRIGGER_KEYS if variables.get(k) is not None},
            "result": result,
            "error": error,
            "duration": round(duration, 4),
            "calls": calls or [],
        }  # fmt: skip
        state.history.append(run)
        data: dict[str, Any] = {"id": state.task.id, "run": run}
        if state.task.schedule is not None:  # planned already (scheduler.py)
            data["next_run"] = self.scheduler.next_run(state.task.id)
        self.events.emit(bus.AUTOMATION_RUN, data)

    # Alarms --------------------------------------------------------------------------------------

    def alarm(self, automation_id: str) -> dict[str, Any]:
        state = self.tasks[automation_id]
        return {
            "id": automation_id,
            "name": state.task.name,
            "severity": state.task.severity,
            "active": state.alarm_since is not None,
            "since": state.alarm_since,
            "acknowledged": state.alarm_acknowledged,
        }

    def alarms(self) -> list[dict[str, Any]]:
        return [self.alarm(i) for i, s in self.tasks.items() if s.task.severity is not None]

    def acknowledge(self, automation_id: str) -> None:
        state = self.tasks[automation_id]
        if state.alarm_since is not None and not state.alarm_acknowledged:
            state.alarm_acknowledged = True
            self._alarm_changed(state)

    def _alarm_changed(self, state: TaskState) -> None:
        self.events.emit(bus.ALARM_UPDATED, {"alarm": self.alarm(state.task.id)})


def finite(value: float | None) -> float | None:
    """`value`, or None when it is None or infinite (never as JSON's missing `Infinity`)."""
    return value if value is not None and math.isfinite(value) else None


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {"kind": hit.kind, "ids": list(hit.ids), "value": hit.value, "previous": hit.previous}


class _Values:
    """The Values of a condition: the hit, and fields read through the context."""

    __slots__ = ("context", "now", "previous", "trigger")

    def __init__(self, trigger: Any, previous: Any, now: float, context: HandlerContext) -> None:
        self.trigger, self.previous, self.now, self.context = trigger, previous, now, context

    def field(self, path: str) -> tuple[Any, float | None]:
        return self.context.field(path)
