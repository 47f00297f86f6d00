"""The automation engine on a real event bus and event loop: thresholds with hysteresis and
`for` (also across a restart), dampening, rising vs every, execution modes, auto-disable,
alarms, forwards with transform and rate limit, and a forward loop held back."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeiot_gateway import bus
from edgeiot_gateway.automation.clock import ManualClock
from edgeiot_gateway.automation.engine import RATE_MAX, RATE_WINDOW, Engine
from edgeiot_gateway.automation.forwards import LOOP_WINDOW
from edgeiot_gateway.automation.model import parse_definition

from .automation_support import Context

TEMPERATURE = {"type": "field", "node": "gh", "source": "climate", "field": "temperature",
               "on": "update"}  # fmt: skip
PUBLISH = [{"handler": "publish_mqtt", "params": {"topic": "out", "payload": "{{ value }}"}}]


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[Context]:
    async with aiohttp.ClientSession() as http:
        yield Context(tmp_path, http)


@pytest.fixture
async def engine(ctx: Context) -> AsyncIterator[Engine]:
    events = bus.EventBus()
    engine = Engine(events, ctx)
    engine.start()
    yield engine
    await engine.stop()


def add(engine: Engine, **definition: Any) -> None:
    spec = {"id": "t", "kind": "task", "trigger": TEMPERATURE, "actions": PUBLISH} | definition
    canonical, compiled = parse_definition(spec)
    engine.set(compiled, canonical["enabled"])


def temperature(engine: Engine, value: Any, node: str = "gh") -> None:
    engine.events.emit(
        bus.FIELD_VALUE,
        {"node_id": node, "source_id": "climate", "field_id": "temperature", "value": value,
         "updated": 0.0},
    )  # fmt: skip


async def settle(seconds: float = 0.02) -> None:
    await asyncio.sleep(seconds)


def published(ctx: Context) -> list[bytes]:
    return [c[2] for c in ctx.calls if c[0] == "publish_mqtt"]


async def test_threshold_rising_vs_every(engine: Engine, ctx: Context) -> None:
    add(engine, conditions={"op": ">", "to": 25})
    add(
        engine,
        id="every",
        conditions={"op": ">", "to": 25},
        fire="every",
        actions=[{"handler": "publish_mqtt", "params": {"topic": "e", "payload": "{{ value }}"}}],
    )
    for value in (20, 26, 27, 24, 28):
        temperature(engine, value)
        await settle()
    rising = [c[2] for c in ctx.calls if c[1] == "out"]
    every = [c[2] for c in ctx.calls if c[1] == "e"]
    assert rising == [b"26", b"28"]
    assert every == [b"26", b"27", b"28"]
    history = list(engine.tasks["t"].history)
    assert [run["result"] for run in history] == ["ok", "ok"]
    assert history[0]["trigger"] == {"trigger": "field", "node": "gh", "source": "climate",
                                     "field": "temperature", "value": 26}  # fmt: skip


async def test_hysteresis_with_for_and_cancel(engine: Engine, ctx: Context) -> None:
    add(
        engine, hysteresis={"on": {"op": "<", "to": 2}, "off": {"op": ">", "to": 4}}, **{"for": 0.2}
    )
    temperature(engine, 1)
    await settle(0.1)
    temperature(engine, 5)  # stops holding before 0.2 s: cancelled
    await settle(0.25)
    assert published(ctx) == []
    temperature(engine, 1.5)
    await settle(0.1)
    temperature(engine, 3)  # between the thresholds: the latch holds
    await settle(0.2)
    assert published(ctx) == [b"3"]  # the newest values go with the run


async def test_for_timer_survives_a_restart(ctx: Context) -> None:
    first = Engine(bus.EventBus(), ctx)
    first.start()
    add(first, conditions={"op": "<", "to": 2}, **{"for": 0.3})
    temperature(first, 1)
    await settle(0.1)
    snapshot = first.snapshot()
    await first.stop()
    assert snapshot["t"]["hold"]["hit"]["value"] == 1

    second = Engine(bus.EventBus(), ctx)
    second.start()
    add(second, conditions={"op": "<", "to": 2}, **{"for": 0.3})
    second.restore(snapshot)
    await settle(0.1)
    assert published(ctx) == []
    await settle(0.2)  # 0.3 s after the first match, not 0.3 s after the restart
    assert published(ctx) == [b"1"]
    await second.stop()


async def test_dampening(engine: Engine, ctx: Context) -> None:
    add(engine, conditions={"op": ">", "to": 25}, dampening={"count": 3}, fire="every")
    for value in (26, 27, 20, 26, 27, 28, 29):
        temperature(engine, value)
        await settle()
    assert published(ctx) == [b"28", b"29"]


@pytest.mark.parametrize(
    ("mode", "expected_results", "expected_published"),
    [
        ("single", ["skipped", "skipped", "ok"], [b"1"]),
        ("restart", ["cancelled", "cancelled", "ok"], [b"3"]),
        ("queued", ["ok", "ok", "ok"], [b"1", b"2", b"3"]),
        ("parallel", ["skipped", "ok", "ok"], [b"1", b"2"]),
    ],
)
async def test_execution_modes(
    engine: Engine, ctx: Context, mode: str, expected_results: list[str],
    expected_published: list[bytes],
) -> None:  # fmt: skip
    ctx.delay = 0.15
    add(engine, mode=mode, max=2, fire="every")
    for value in (1, 2, 3):
        temperature(engine, value)
        await settle(0.01)
    await settle(0.6)
    assert sorted(run["result"] for run in engine.tasks["t"].history) == sorted(expected_results)
    assert published(ctx) == expected_published


async def test_auto_disable_and_reenable(engine: Engine, ctx: Context) -> None:
    add(engine, fire="every", auto_disable={"reenable_after": 0.2})
    temperature(engine, 1)
    await settle()
    temperature(engine, 2)  # disabled
    await settle(0.25)
    temperature(engine, 3)  # enabled again
    await settle()
    assert published(ctx) == [b"1", b"3"]


async def test_alarm_raise_acknowledge_clear(engine: Engine, ctx: Context) -> None:
    updates: list[dict[str, Any]] = []
    engine.events.subscribe(lambda e: updates.append(e.data["alarm"]) if e.name == "alarm updated"
                            else None)  # fmt: skip
    add(
        engine,
        id="frost",
        alarm={"severity": "critical"},
        hysteresis={"on": {"op": "<", "to": 2}, "off": {"op": ">", "to": 4}},
        actions=[{"handler": "notify", "params": {"message": "{{ alarm }} {{ value }}"}}],
    )
    for value in (5, 1, 0, 3):
        temperature(engine, value)
        await settle()
    [alarm] = engine.alarms()
    assert alarm["active"]
    assert not alarm["acknowledged"]
    engine.acknowledge("frost")
    assert engine.alarm("frost")["acknowledged"]
    temperature(engine, 4.5)
    await settle()
    assert not engine.alarm("frost")["active"]
    assert [e[1]["message"] for e in ctx.events] == ["raised 1", "cleared 4.5"]
    assert [(u["active"], u["acknowledged"]) for u in updates] == [
        (True, False), (True, True), (False, True),
    ]  # fmt: skip


async def test_failures_are_in_the_history(engine: Engine, ctx: Context) -> None:
    add(engine, fire="every", actions=[
        {"handler": "set_field", "params": {"node": "n", "source": "s", "field": "readonly",
                                            "value": 1}},
        {"handler": "publish_mqtt", "params": {"topic": "out", "payload": "ok"}},
    ])  # fmt: skip
    temperature(engine, 1)
    await settle()
    [run] = engine.tasks["t"].history
    assert run["result"] == "error"
    assert run["error"] == "set_field: not_writable: n.s.readonly is not writable"
    assert [c["ok"] for c in run["calls"]] == [False, True]
    assert published(ctx) == [b"ok"]
    assert engine.stats["failures"] == 1


async def test_history_is_bounded_and_kept_across_a_change(engine: Engine) -> None:
    add(engine, fire="every", history=3)
    for value in range(5):
        temperature(engine, value)
        await settle(0.01)
    assert [r["trigger"]["value"] for r in engine.tasks["t"].history] == [2, 3, 4]
    add(engine, fire="every", history=2, conditions={"op": ">", "to": 100})
    assert [r["trigger"]["value"] for r in engine.tasks["t"].history] == [3, 4]


async def test_disabled_and_removed_tasks_do_not_fire(engine: Engine, ctx: Context) -> None:
    add(engine, enabled=False)
    temperature(engine, 1)
    add(engine, id="gone")
    engine.remove("gone")
    temperature(engine, 2)
    await settle()
    assert published(ctx) == []


async def test_forward_transform_and_min_interval(engine: Engine, ctx: Context) -> None:
    _, forward = parse_definition(
        {"id": "f", "kind": "forward", "from": "gh.climate.temperature",
         "to": ["dash.show.temperature", "log.show.temperature"],
         "transform": "{{ (value * 9 / 5 + 32) | round(1) }}", "min_interval": 0.2}
    )  # fmt: skip
    engine.set(forward, True)
    temperature(engine, 20)
    await settle()
    temperature(engine, 21)  # within 0.2 s: held, then replaced by the newest
    temperature(engine, 22)
    await settle()
    sets = [c[1:] for c in ctx.calls if c[0] == "set_field"]
    assert sets == [("dash", "show", "temperature", 68.0), ("log", "show", "temperature", 68.0)]
    await settle(0.25)
    sets = [c[1:] for c in ctx.calls if c[0] == "set_field"]
    assert sets[2:] == [("dash", "show", "temperature", 71.6), ("log", "show", "temperature", 71.6)]


async def test_a_forward_loop_is_held_back(engine: Engine, ctx: Context) -> None:
    ctx.echo = engine.events  # a set value comes back as the node's report
    for spec in (
        {"id": "a-to-b", "from": "a.s.v", "to": "b.s.v", "transform": "{{ value + 1 }}"},
        {"id": "b-to-a", "from": "b.s.v", "to": "a.s.v", "transform": "{{ value + 1 }}"},
    ):
        engine.set(parse_definition({"kind": "forward", **spec})[1], True)
    engine.events.emit(bus.FIELD_VALUE, {"node_id": "a", "source_id": "s", "field_id": "v",
                                         "value": 0, "updated": 0.0})  # fmt: skip
    await settle(LOOP_WINDOW * 1.5)
    hops = len([c for c in ctx.calls if c[0] == "set_field"])
    assert engine.stats["loops"] >= 1
    assert engine.drops.counts["automation_loop"] == engine.stats["loops"]
    assert 2 <= hops <= 4  # without the guard: thousands


async def test_a_runaway_pair_of_tasks_is_rate_limited(engine: Engine, ctx: Context) -> None:
    """Two tasks that set each other's field (through a node echoing it) would run forever:
    each is held to RATE_MAX runs per RATE_WINDOW, the rest counted as drops, the first refused
    run in the history; after the window it may run again."""
    ctx.echo = engine.events
    for name, source, target in (("ping", "a", "b"), ("pong", "b", "a")):
        trigger = {"type": "field", "node": source, "source": "s", "field": "v", "on": "update"}
        params = {"node": target, "source": "s", "field": "v", "value_template": "{{ value + 1 }}"}
        call = {"handler": "set_field", "params": params}
        add(engine, id=name, trigger=trigger, actions=[call], fire="every", mode="parallel", max=10)
    engine.events.emit(bus.FIELD_VALUE, {"node_id": "a", "source_id": "s", "field_id": "v",
                                         "value": 0, "updated": 0.0})  # fmt: skip
    await settle(1.0)
    ping, pong = engine.tasks["ping"], engine.tasks["pong"]
    assert ping.runs + pong.runs <= 2 * RATE_MAX  # without the limit: thousands in a second
    assert ping.runs >= RATE_MAX - 1
    assert engine.drops.counts["automation_rate_limited"] >= 1
    skipped = [r for r in ping.history if r["result"] == "skipped"]
    assert len(skipped) == 1
    assert skipped[0]["error"] == f"rate limited: more than {RATE_MAX} runs in {RATE_WINDOW:g} s"
    before = ping.runs
    ping.window_start -= RATE_WINDOW  # its window has passed (pong's has not)
    engine.events.emit(bus.FIELD_VALUE, {"node_id": "a", "source_id": "s", "field_id": "v",
                                         "value": 0, "updated": 0.0})  # fmt: skip
    await settle()
    assert ping.runs == before + 1


async def test_a_schedule_runs_at_its_times_with_conditions(engine: Engine, ctx: Context) -> None:
    ctx.fields["gh.vent.open"] = (False, 0.0)
    _, schedule = parse_definition(
        {"id": "tick", "kind": "schedule", "schedule": {"every": 1},
         "conditions": {"value": {"field": "gh.vent.open"}, "op": "==", "to": False},
         "actions": [{"handler": "publish_mqtt",
                      "params": {"topic": "tick", "payload": "{{ trigger }}"}}]}
    )  # fmt: skip
    engine.set(schedule, True)
    await asyncio.sleep(1.3)
    before = [run["result"] for run in engine.tasks["tick"].history]
    assert before
    assert set(before) == {"ok"}
    ctx.fields["gh.vent.open"] = (True, 0.0)  # the condition stops holding: runs are skipped
    await asyncio.sleep(1.0)
    after = [run["result"] for run in engine.tasks["tick"].history][len(before) :]
    assert after
    assert set(after) == {"skipped"}
    assert published(ctx) == [b"schedule"] * len(before)
    snapshot = engine.snapshot()["tick"]["schedule"]
    assert snapshot["runs"] == len(before) + len(after)


async def test_schedules_follow_an_injected_clock(ctx: Context) -> None:
    """On a ManualClock, three days of a daily 07:30 schedule (Europe/Berlin) pass without
    waiting: three runs, each at its planned time, the run times from the same clock."""
    start = dt.datetime(2026, 3, 27, 12, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))
    clock = ManualClock(start.timestamp())
    engine = Engine(bus.EventBus(), ctx, clock=clock)
    engine.start()
    try:
        daily = {"daily": "07:30", "tz": "Europe/Berlin"}
        definition = {"id": "morning", "kind": "schedule", "schedule": daily, "actions": PUBLISH}
        engine.set(parse_definition(definition)[1], True)
        await clock.advance(3 * 86400)
        runs = list(engine.tasks["morning"].history)
        planned = [run["trigger"]["planned"] for run in runs]
        local = [dt.datetime.fromtimestamp(p, start.tzinfo) for p in planned]
        # 28 March, 29 March (the day DST starts: still 07:30 local), 30 March.
        assert [(t.day, t.hour, t.minute) for t in local] == [(28, 7, 30), (29, 7, 30), (30, 7, 30)]
        assert [run["time"] for run in runs] == planned
        assert engine.scheduler.runs("morning") == 3
    finally:
        await engine.stop()


async def test_a_schedule_counts_its_runs_across_a_restart(ctx: Context) -> None:
    definition = {"id": "twice", "kind": "schedule",
                  "schedule": {"every": 1, "repeat_count": 2}, "actions": PUBLISH}  # fmt: skip
    first = Engine(bus.EventBus(), ctx)
    first.start()
    first.set(parse_definition(definition)[1], True)
    await asyncio.sleep(1.2)
    snapshot = first.snapshot()
    await first.stop()
    second = Engine(bus.EventBus(), ctx)
    second.start()
    second.set(parse_definition(definition)[1], True)
    second.restore(snapshot)
    await asyncio.sleep(2.3)  # one more run, not two: repeat_count holds across the restart
    assert second.scheduler.runs("twice") == 2
    assert second.scheduler.next_run("twice") is None
    await second.stop()
    assert len(published(ctx)) == 2


async def test_forward_on_change_skips_repeated_values(engine: Engine, ctx: Context) -> None:
    _, forward = parse_definition(
        {"id": "f", "kind": "forward", "from": "gh.climate.temperature", "to": "d.s.t"}
    )
    engine.set(forward, True)
    for value in (20, 20, 21, 21, 20):
        temperature(engine, value)
        await settle()
    assert [c[4] for c in ctx.calls if c[0] == "set_field"] == [20, 21, 20]


async def test_a_changed_alarm_task_stays_raised(engine: Engine, ctx: Context) -> None:
    alarm = {"id": "frost", "alarm": {"severity": "warning"},
             "hysteresis": {"on": {"op": "<", "to": 2}, "off": {"op": ">", "to": 4}}}  # fmt: skip
    add(engine, **alarm)
    temperature(engine, 1)
    await settle()
    engine.acknowledge("frost")
    add(engine, **alarm, history=5)  # edited while raised: still raised, still acknowledged
    assert engine.alarm("frost")["active"]
    assert engine.alarm("frost")["acknowledged"]
    assert engine.tasks["frost"].runs == 1
    temperature(engine, 5)
    await settle()
    assert not engine.alarm("frost")["active"]
    assert published(ctx) == [b"1", b"5"]  # raised once, cleared once
