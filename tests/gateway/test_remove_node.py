"""remove_node sticks: a retained announce does not bring a removed node back; a live one does."""

from __future__ import annotations

from pathlib import Path

from ..servers import Mosquitto
from .harness import NodeSimulator, gateway_config, start_gateway, wait_for

NODE = "greenhouse-1"


async def test_removed_node_stays_removed_across_restarts(
    tmp_path: Path, mosquitto: Mosquitto, node: NodeSimulator
) -> None:
    config = gateway_config(tmp_path / "gw", mosquitto)
    gateway = await start_gateway(config)
    node.announce()  # retained: the broker replays it to every new subscription
    await wait_for(lambda: NODE in gateway.processor.nodes, what="announce")
    gateway.commands.remove_node(NODE)
    await gateway.stop()

    gateway = await start_gateway(config)
    try:
        await wait_for(lambda: gateway.drops.counts["removed_node"] == 1, what="replayed announce")
        assert NODE not in gateway.processor.nodes
        node.state("climate", temperature=20.0)
        # (its retained status was dropped too)
        await wait_for(lambda: gateway.drops.counts["unknown_node"] == 2, what="state dropped")

        node.announce()  # the node itself speaks again: it is back
        await wait_for(lambda: NODE in gateway.processor.nodes, what="live announce")
    finally:
        await gateway.stop()

    gateway = await start_gateway(config)  # and stays back: the tombstone is gone
    try:
        assert NODE in gateway.processor.nodes
        await wait_for(lambda: gateway.processor.nodes[NODE].online, what="retained status")
        assert gateway.drops.counts["removed_node"] == 0
    finally:
        await gateway.stop()
