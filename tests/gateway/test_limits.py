"""Configured limits: an announce past one is dropped and counted, the known nodes stay."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from edgeiot_gateway.limits import Budget, LimitReached, Limits
from edgeiot_gateway.models import node_from_dict

from ..servers import Mosquitto
from .harness import ANNOUNCE, NodeSimulator, gateway_config, start_gateway, wait_for


def _with_fields(count: int) -> dict[str, Any]:
    announce = copy.deepcopy(ANNOUNCE)
    announce["sources"] = [
        {"id": "s", "fields": [{"id": f"f{i}", "type": "int"} for i in range(count)]}
    ]
    return announce


async def test_announces_past_the_limits_are_dropped(tmp_path: Path, mosquitto: Mosquitto) -> None:
    limits = {"max_nodes": 2, "max_fields_per_node": 10, "max_fields": 15}
    config = gateway_config(tmp_path / "gw", mosquitto, limits=limits)
    gateway = await start_gateway(config)
    nodes = [NodeSimulator(mosquitto, f"n{i}", _with_fields(8)).start() for i in range(3)]
    big = NodeSimulator(mosquitto, "n0", _with_fields(11)).start()
    try:
        nodes[0].announce()
        await wait_for(lambda: "n0" in gateway.processor.nodes, what="n0")
        nodes[1].announce()  # 8 + 8 fields > max_fields 15
        await wait_for(lambda: gateway.drops.counts["limit_reached"] == 1, what="max_fields")
        big.publish("announce", _with_fields(11))  # n0 redefined past max_fields_per_node
        await wait_for(lambda: gateway.drops.counts["limit_reached"] == 2, what="per node")
        assert len(gateway.processor.nodes["n0"].sources["s"].fields) == 8  # unchanged

        nodes[1].publish("announce", _with_fields(7))  # 8 + 7 fits
        await wait_for(lambda: "n1" in gateway.processor.nodes, what="n1")
        nodes[2].publish("announce", _with_fields(0))  # a third node > max_nodes 2
        await wait_for(lambda: gateway.drops.counts["limit_reached"] == 3, what="max_nodes")
        assert sorted(gateway.processor.nodes) == ["n0", "n1"]

        gateway.commands.remove_node("n1")  # removing frees the budget
        nodes[2].publish("announce", _with_fields(0))
        await wait_for(lambda: "n2" in gateway.processor.nodes, what="n2 after a removal")
        assert gateway.processor.budget.fields == 8
    finally:
        for sim in [*nodes, big]:
            sim.stop()
        await gateway.stop()


def test_definition_size_limits() -> None:
    """Per node and in total, the JSON size of definitions is bounded."""
    node = node_from_dict(_with_fields(60) | {"id": "n", "provider": "mqtt"})
    _fields, size = Budget.usage(node)
    assert Budget(Limits(max_definition_bytes=size)).check(node, known=False)
    with pytest.raises(LimitReached, match="max_definition_bytes"):
        Budget(Limits(max_definition_bytes=size - 1)).check(node, known=False)
    budget = Budget(Limits(max_total_definition_bytes=size * 2))
    budget.take("n", budget.check(node, known=False))
    other = node_from_dict(_with_fields(60) | {"id": "m", "provider": "mqtt"})
    budget.take("m", budget.check(other, known=False))
    third = node_from_dict(_with_fields(60) | {"id": "o", "provider": "mqtt"})
    with pytest.raises(LimitReached, match="max_total_definition_bytes"):
        budget.check(third, known=False)
