"""The scheduler loop on a manual clock: firing, restarts with each missed-run policy, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

from edgeiot_gateway.automation.clock import ManualClock, SystemClock
from edgeiot_gateway.automation.scheduler import Location, Scheduler, ScheduleSpec, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


class Recorder:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float, float]] = []

    def __call__(self, schedule_id: str, planned: float) -> None:
        self.calls.append((schedule_id, planned, self.clock.time()))


@asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[Scheduler]:
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0)
    try:
        yield scheduler
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_fires_on_time_in_order() -> None:
    clock = ManualClock(local("2026-05-01T07:00"))
    record = Recorder(clock)
    async with running(Scheduler(clock)) as scheduler:
        scheduler.set("a", parse_schedule({"every": 600}), record)
        scheduler.set("b", parse_schedule({"daily": "07:15", "tz": "Europe/Berlin"}), record)
        await clock.advance(1800)
    assert [(sid, planned) for sid, planned, _ in record.calls] == [
        ("a", local("2026-05-01T07:10")), ("b", local("2026-05-01T07:15")),
        ("a", local("2026-05-01T07:20")), ("a", local("2026-05-01T07:30")),
    ]  # fmt: skip
    assert all(planned == fired for _, planned, fired in record.calls)  # no jitter on this clock


async def test_set_replaces_and_remove_stops() -> None:
    clock = ManualClock(0)
    record = Recorder(clock)
    async with running(Scheduler(clock)) as scheduler:
        scheduler.set("a", parse_schedule({"every": 10}), record)
        await clock.advance(25)
        scheduler.set("a", parse_schedule({"every": 100}), record)
        assert scheduler.next_run("a") == 100
        await clock.advance(100)
        scheduler.remove("a")
        assert scheduler.next_run("a") is None
        await clock.advance(1000)
    assert [planned for _, planned, _ in record.calls] == [10, 20, 100]


async def test_repeat_count_ends_the_schedule() -> None:
    clock = ManualClock(0)
    record = Recorder(clock)
    async with running(Scheduler(clock)) as scheduler:
        scheduler.set("a", parse_schedule({"every": 60, "repeat_count": 3}), record)
        await clock.advance(3600)
        assert scheduler.next_run("a") is None
        assert scheduler.runs("a") == 3
        # After a restart with the count restored, nothing more runs.
        assert scheduler.set("a", parse_schedule({"every": 60, "repeat_count": 3}), record,
                             runs=3) is None  # fmt: skip
    assert [planned for _, planned, _ in record.calls] == [60, 120, 180]


async def test_validity_window() -> None:
    clock = ManualClock(local("2026-05-01T00:00"))
    record = Recorder(clock)
    window = {"from": "2026-05-01T08:00", "until": "2026-05-01T11:00"}
    spec = parse_schedule({"every": 3600, "tz": "Europe/Berlin", "valid": window})
    async with running(Scheduler(clock)) as scheduler:
        scheduler.set("w", spec, record)
        await clock.advance(86400)
    assert [planned for _, planned, _ in record.calls] == [
        local("2026-05-01T08:00"), local("2026-05-01T09:00"), local("2026-05-01T10:00"),
    ]  # fmt: skip


async def restart_after_downtime(spec: dict[str, object], down_until: str) -> Recorder:
    """Run until 07:00, stop the gateway, start again at `down_until`; the calls after."""
    clock = ManualClock(local("2026-05-01T06:00"))
    before = Recorder(clock)
    parsed = parse_schedule(spec)
    async with running(Scheduler(clock)) as first:
        first.set("s", parsed, before)
        await clock.advance(3600)
        stored_next = first.next_run("s")  # what the engine keeps in its store
    assert before.calls == []
    assert stored_next == local("2026-05-01T07:30")
    await clock.advance(local(down_until) - clock.time())  # the gateway is down
    after = Recorder(clock)
    async with running(Scheduler(clock)) as second:
        second.set("s", parsed, after, last_planned=stored_next)
        await clock.advance(1)
    return after


async def test_missed_skip() -> None:
    after = await restart_after_downtime(
        {"daily": "07:30", "tz": "Europe/Berlin"}, "2026-05-01T07:35"
    )
    assert after.calls == []


async def test_missed_run_once_within_grace() -> None:
    after = await restart_after_downtime(
        {"daily": "07:30", "tz": "Europe/Berlin", "missed": "run_once", "grace": 600},
        "2026-05-01T07:35",
    )
    assert [(planned, fired) for _, planned, fired in after.calls] == [
        (local("2026-05-01T07:30"), local("2026-05-01T07:35"))
    ]


async def test_missed_run_once_outside_grace() -> None:
    after = await restart_after_downtime(
        {"daily": "07:30", "tz": "Europe/Berlin", "missed": "run_once", "grace": 600},
        "2026-05-01T07:45",
    )
    assert after.calls == []


async def test_survives_callbacks_that_raise() -> None:
    clock = ManualClock(0)
    good = Recorder(clock)

    def bad(schedule_id: str, planned: float) -> None:
        raise RuntimeError("handler exploded")

    async def bad_async(schedule_id: str, planned: float) -> None:
        await asyncio.sleep(0)
        raise ValueError("async handler exploded")

    async with running(Scheduler(clock)) as scheduler:
        scheduler.set("bad", parse_schedule({"every": 10}), bad)
        scheduler.set("bad_async", parse_schedule({"every": 10}), bad_async)
        scheduler.set("good", parse_schedule({"every": 10}), good)
        await clock.advance(50)
        assert scheduler.errors == {"bad": 5, "bad_async": 5}
        assert scheduler.health.problems() == []  # the loop itself never failed
    assert [planned for _, planned, _ in good.calls] == [10, 20, 30, 40, 50]


async def test_a_schedule_that_cannot_plan_ends_alone() -> None:
    clock = ManualClock(0)
    record = Recorder(clock)

    class Broken(ScheduleSpec):
        def next_after(
            self, t: float, location: Location | None = None, runs: int = 0
        ) -> float | None:
            if runs:
                raise OverflowError("rule broke")
            return super().next_after(t, None, runs)

    every = parse_schedule({"every": 10})
    async with running(Scheduler(clock)) as scheduler:
        scheduler.set("broken", Broken(every.kind, every.rule), record)
        scheduler.set("good", parse_schedule({"every": 10}), record)
        await clock.advance(30)
        assert scheduler.next_run("broken") is None
        assert scheduler.errors == {"broken": 1}
    assert [sid for sid, _, _ in record.calls] == ["broken", "good", "good", "good"]


async def test_loop_waits_for_new_schedules_and_idles_without_any() -> None:
    clock = ManualClock(0)
    record = Recorder(clock)
    async with running(Scheduler(clock)) as scheduler:
        await clock.advance(100)
        assert clock.sleepers() == 0  # nothing scheduled: it waits for `set`, not the clock
        scheduler.set("later", parse_schedule({"once": "1970-01-01T00:05:00+00:00"}), record)
        await clock.advance(0)  # lets the loop run
        assert clock.sleepers() == 1
        await clock.advance(1000)
    assert [planned for _, planned, _ in record.calls] == [300]


async def test_system_clock() -> None:
    clock = SystemClock()
    assert abs(clock.time() - datetime.now().timestamp()) < 5
    start = clock.monotonic()
    await clock.sleep_until(clock.time() + 0.02)
    await clock.sleep(0.01)
    await clock.sleep_until(0)  # in the past: returns at once
    assert clock.monotonic() - start >= 0.03


async def test_manual_clock() -> None:
    clock = ManualClock(1000)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.time()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 20), ("a", 10), ("c", 0))]
    cancelled = asyncio.create_task(sleeper("x", 15))
    await clock.advance(0)
    cancelled.cancel()
    await clock.advance(30)
    await asyncio.gather(*tasks)
    assert woke == [("c", 1000), ("a", 1010), ("b", 1020)]  # each at its deadline, in order
    assert (clock.time(), clock.monotonic(), clock.sleepers()) == (1030, 30, 0)


async def test_stopping_cancels_running_callbacks() -> None:
    clock = ManualClock(0)
    started = asyncio.Event()

    async def slow(schedule_id: str, planned: float) -> None:
        started.set()
        await asyncio.Event().wait()  # never finishes by itself

    scheduler = Scheduler(clock)
    async with running(scheduler):
        scheduler.set("slow", parse_schedule({"every": 10}), slow)
        await clock.advance(10)
        assert started.is_set()
        (task,) = scheduler._tasks
    await asyncio.sleep(0)
    assert task.cancelled()


def test_replaced_and_removed_schedules_do_not_pile_up_in_the_heap() -> None:
    scheduler = Scheduler(ManualClock(1_000_000.0))
    spec = parse_schedule({"once": "2030-01-01T00:00:00", "tz": "UTC"})
    for _ in range(1000):
        scheduler.set("far", spec, lambda _id, _planned: None)
    scheduler.set("other", spec, lambda _id, _planned: None)
    scheduler.remove("far")
    assert len(scheduler._heap) <= 2 * 1 + 64
    assert scheduler.next_run("other") is not None
