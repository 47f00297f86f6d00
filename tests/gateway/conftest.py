"""Fixtures: a gateway in-process on a real broker, a simulated node and an API client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .harness import ApiClient, NodeSimulator


@pytest.fixture
async def api(gateway: Gateway) -> AsyncIterator[ApiClient]:
    """An authenticated API client connected over WebSocket."""
    client = await ApiClient.of(gateway)
    yield client
    await client.close()


@pytest.fixture
def node(mosquitto: Mosquitto) -> Iterator[NodeSimulator]:
    """A connected node simulator (not yet announced)."""
    sim = NodeSimulator(mosquitto, "greenhouse-1").start()
    yield sim
    sim.stop()
