"""Automation bench: ingest with 10,000 tasks and 1,000 schedules against the same gateway
with no rules, trigger → handler latency, schedule jitter and memory per 1,000 tasks.

The gateway runs in-process (no providers); field updates enter where providers hand them
over (`Gateway.submit`), so the figures are the automation engine's cost on the ingest path.
A handler registered by this bench (`probe`) records when it is called.

Phases:
1. no rules: as many updates as possible in `--seconds`, in batches of 500 with a loop turn
   in between (the figure `baseline_updates_per_s`);
2. the same with `--tasks` field-triggered tasks (a threshold every `--fire-every`-th update
   crosses) and `--schedules` schedules firing every second (`updates_per_s`);
3. `--rate` updates/s paced for `--seconds`: trigger → handler latency and schedule jitter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import voluptuous as vol

from edgeiot_gateway.automation.handlers import Handler, HandlerContext, register_handler
from edgeiot_gateway.automation.model import parse_definition
from edgeiot_gateway.config import parse_config
from edgeiot_gateway.gateway import Gateway
from edgeiot_gateway.messages import FieldValues, NodeAnnounced
from edgeiot_gateway.models import node_from_dict

NODES = 1000
FIELDS = 10  # per node: 10,000 fields


@register_handler
class Probe(Handler):
    """Records the delay between a value's timestamp and this call."""

    name = "probe"
    schema = vol.Schema({})
    latencies: ClassVar[list[float]] = []
    jitter: ClassVar[list[float]] = []

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Any
    ) -> dict[str, Any] | None:
        now = time.time()
        if variables.get("trigger") == "schedule":
            Probe.jitter.append(now - variables["planned"])
        elif isinstance(variables.get("value"), float):
            Probe.latencies.append(now - variables["value"] % 1e6 - Probe.base)
        return None

    base: ClassVar[float] = 0.0


def install(gateway: Gateway, definition: dict[str, Any]) -> None:
    """Straight into the engine: the bench measures running rules, not storing 11,000."""
    _, compiled = parse_definition(definition)
    gateway.automations.engine.set(compiled, True)


def rss_mb() -> float:
    """The resident set now (not the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def log(text: str) -> None:
    print(f"automation: {text}", file=sys.stderr, flush=True)


async def make_gateway(data_dir: Path) -> Gateway:
    config = parse_config(
        {"gateway_id": "bench", "data_dir": str(data_dir),
         "api": {"host": "127.0.0.1", "port": 0, "advertise": False},
         "store": {"flush_interval": 1.0}},
        data_dir,
    )  # fmt: skip
    gateway = Gateway(config)
    await gateway.start()
    for n in range(NODES):
        node = node_from_dict({
            "id": f"n{n}", "provider": "bench", "name": f"Node {n}",
            "sources": [{"id": "s", "name": "S", "fields": [
                {"id": f"f{f}", "name": f"F{f}", "type": "float"} for f in range(FIELDS)]}],
        })  # fmt: skip
        gateway.submit(NodeAnnounced(node), "bench")
    return gateway


async def flood(gateway: Gateway, seconds: float) -> float:
    """Updates/s the gateway takes when fed as fast as it goes."""
    sent, value = 0, 0.0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for _ in range(500):
            value += 1.0
            index = sent % (NODES * FIELDS)
            gateway.submit(FieldValues(f"n{index // FIELDS}", "s", {f"f{index % FIELDS}": value}),
                           "bench")  # fmt: skip
            sent += 1
        await asyncio.sleep(0)
    return sent / (time.perf_counter() - started)


async def paced(gateway: Gateway, rate: int, seconds: float, tasks: int) -> tuple[int, int]:
    """`rate` updates/s for `seconds`; each value carries its send time. Returns (updates sent,
    handler calls due: updates of a field with a task whose value passes its threshold)."""
    sent, due_calls, tick = 0, 0, 0.01
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            index = (sent * 7919) % (NODES * FIELDS)
            value = (time.time() - Probe.base) + 1e6 * (sent % 2 + 1)  # crosses 1.5e6 half the time
            due_calls += index < tasks and sent % 2 == 1
            gateway.submit(FieldValues(f"n{index // FIELDS}", "s", {f"f{index % FIELDS}": value}),
                           "bench")  # fmt: skip
            sent += 1
        await asyncio.sleep(tick)
    return sent, due_calls


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * share), len(ordered) - 1)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgeiot-bench-") as tmp:
        gateway = await make_gateway(Path(tmp) / "plain")
        log("phase 1: no rules")
        baseline = max([await flood(gateway, args.seconds) for _ in range(args.rounds)])
        await gateway.stop()

        gateway = await make_gateway(Path(tmp) / "rules")
        Probe.base = time.time()
        before = rss_mb()
        probe = [{"handler": "probe", "params": {}}]
        for t in range(args.tasks):
            field = t % (NODES * FIELDS)
            install(gateway, {
                "id": f"t{t}", "kind": "task", "fire": "every",
                "trigger": {"type": "field", "node": f"n{field // FIELDS}", "source": "s",
                            "field": f"f{field % FIELDS}", "on": "update"},
                "conditions": {"op": ">", "to": 1.5e6}, "actions": probe, "history": 5,
            })  # fmt: skip
        memory = (rss_mb() - before) / (args.tasks / 1000)
        for s in range(args.schedules):
            install(
                gateway,
                {
                    "id": f"s{s}",
                    "kind": "schedule",
                    "schedule": {"every": 1},
                    "actions": probe,
                    "history": 5,
                },
            )
        log(f"phase 2: {args.tasks} tasks, {args.schedules} schedules")
        with_rules = max([await flood(gateway, args.seconds) for _ in range(args.rounds)])
        Probe.latencies.clear()
        Probe.jitter.clear()
        log(f"phase 3: {args.rate} updates/s for {args.seconds} s")
        sent, due_calls = await paced(gateway, args.rate, args.seconds, args.tasks)
        await asyncio.sleep(1.5)
        runs = gateway.automations.engine.stats
        lost = due_calls - len(Probe.latencies)
        await gateway.stop()
    return {
        "baseline_updates_per_s": round(baseline),
        "updates_per_s": round(with_rules),
        "ratio_to_no_rules": round(with_rules / baseline, 3),
        "paced_updates": sent,
        "handler_calls": len(Probe.latencies),
        "trigger_p99_ms": round(percentile(Probe.latencies, 0.99) * 1000, 2),
        "schedule_runs": len(Probe.jitter),
        "jitter_p99_ms": round(percentile(Probe.jitter, 0.99) * 1000, 2),
        "rss_mb_per_1000_tasks": round(memory, 2),
        "runs": runs["runs"],
        "skipped": runs["skipped"],
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--schedules", type=int, default=1_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    goals = {
        "ratio_to_no_rules": figures["ratio_to_no_rules"] >= 0.8,
        "trigger_p99_ms": figures["trigger_p99_ms"] < 20,
        "jitter_p99_ms": figures["jitter_p99_ms"] < 50,
    }
    for name, met in goals.items():
        print(f"{name}: {figures[name]} ({'met' if met else 'MISSED'})")
    for name, value in figures.items():
        if name not in goals:
            print(f"{name}: {value}")
    print(json.dumps(figures | {"goals_met": sum(goals.values())}))


if __name__ == "__main__":
    main()
