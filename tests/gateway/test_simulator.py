"""The demo's simulated nodes speak the protocol: announce, values, commands echoed back."""

from __future__ import annotations

import threading

from edgeiot_gateway import simulator
from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import wait_for


async def test_simulated_nodes_follow_the_protocol(gateway: Gateway, mosquitto: Mosquitto) -> None:
    """Two simulated nodes announce, report readings and apply a set like real firmware."""
    stop = threading.Event()
    thread = threading.Thread(
        target=simulator.run,
        kwargs={
            "host": mosquitto.host,
            "port": mosquitto.port,
            "prefix": "edgeiot/v1",
            "count": 2,
            "interval": 0.1,
            "stop": stop,
        },
    )
    thread.start()
    try:
        nodes = gateway.processor.nodes
        await wait_for(lambda: {"sim-1", "sim-2"} <= nodes.keys() and nodes["sim-2"].online)
        await wait_for(lambda: nodes["sim-1"].field("climate", "temperature").value is not None)
        assert 14 <= nodes["sim-1"].field("climate", "temperature").value <= 28
        await gateway.commands.set_field("sim-2", "vent", "mode", "manual")
        await wait_for(lambda: nodes["sim-2"].field("vent", "mode").value == "manual")
        assert gateway.drops.total == 0
    finally:
        stop.set()
        await wait_for(lambda: not thread.is_alive())
    await wait_for(lambda: not nodes["sim-1"].online, what="offline status on stop")
