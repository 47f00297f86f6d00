"""docs/automation.md's Home Assistant examples, pasted as scripts, against a real gateway."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.script import Script
from homeassistant.util.yaml import parse_yaml
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN

from ..gateway.harness import NodeSimulator
from ..servers import Mosquitto
from .conftest import GatewayProcess
from .helpers import wait_until

DOCS = Path(__file__).parents[2] / "docs" / "automation.md"


def _node(source: str, field: str, kind: str, writable: bool) -> dict[str, Any]:
    return {"v": 1, "name": source, "sources": [{"id": source, "name": source, "fields": [
        {"id": field, "name": field, "type": kind, "writable": writable}]}]}  # fmt: skip


@pytest.fixture
def example_nodes(
    mosquitto: Mosquitto, gateway_process: GatewayProcess
) -> Iterator[list[NodeSimulator]]:
    """The nodes the examples name besides greenhouse-1."""
    sims = [
        NodeSimulator(mosquitto, "relay-board", _node("relay-1", "on", "bool", True)).start(),
        NodeSimulator(mosquitto, "can-vehicle", _node("wheel_speed", "speed", "float", False)),
        NodeSimulator(mosquitto, "dash", _node("display", "speed", "float", True)),
    ]
    for sim in sims[1:]:
        sim.start()
    for sim in sims:
        sim.announce()
    yield sims
    for sim in sims:
        sim.stop()


def _examples() -> list[Any]:
    text = DOCS.read_text().split("\n## Examples\n", 1)[1]
    return [parse_yaml(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


async def test_the_examples_work_as_scripts(
    hass: HomeAssistant,
    integration: MockConfigEntry,
    node: NodeSimulator,
    example_nodes: list[NodeSimulator],
) -> None:
    fields = integration.runtime_data.fields
    await wait_until(hass, lambda: {"relay-board.relay-1.on", "dash.display.speed"} <= set(fields))
    examples = _examples()
    assert len(examples) == 4
    for example in examples:
        sequence = cv.SCRIPT_SCHEMA(example["sequence"])
        await Script(hass, sequence, "docs example", DOMAIN).async_run(context=Context())
    listing = await hass.services.async_call(
        DOMAIN, "list_automations", {}, blocking=True, return_response=True
    )
    assert listing is not None
    stored = {a["id"]: a for a in listing["automations"]}  # type: ignore[union-attr]
    assert set(stored) == {"frost", "vent-open", "vent-close", "dusk-lights", "speed-to-dash"}
    assert stored["frost"]["hysteresis"] == {
        "on": {"op": "<", "to": 2},
        "off": {"op": ">", "to": 4},
    }
    assert stored["frost"]["actions"][1]["params"]["message"] == "Frost {{ alarm }}: {{ value }} °C"
    assert stored["speed-to-dash"]["transform"] == "{{ (value * 3.6) | round(1) }}"
    assert stored["dusk-lights"]["actions"][0]["params"]["field"] == "on"
