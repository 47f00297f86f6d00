"""Update entity edge cases a healthy gateway rarely produces, scripted with the fake gateway:
a job that ends in the same write burst as its start, malformed answers."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import ATTR_ENTITY_ID, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .fake_gateway import FakeGateway, fake_node
from .helpers import state_of, wait_until

UPDATE = "update.bench_firmware"
ENTRY = {"id": "e1", "name": "bench", "version": "1.1", "target": "esp32", "format": "esp-image",
         "release_notes": None, "uploaded_at": 2.0}  # fmt: skip


async def _install(hass: HomeAssistant) -> None:
    await hass.services.async_call("update", "install", {ATTR_ENTITY_ID: UPDATE}, blocking=True)


@pytest.fixture
async def updatable(
    hass: HomeAssistant, fake_entry: MockConfigEntry, fake: FakeGateway
) -> dict[str, Any]:
    """The fake node announces an ota block; the library has one fitting entry (and junk)."""
    fake.nodes = [fake_node(ota={"target": "esp32", "formats": ["esp-image"]}, firmware="1.0")]
    fake.results["firmware_list"] = {"firmware": [ENTRY, {"id": "junk"}, "junk"]}
    fake.results["firmware_jobs"] = {"jobs": "not a list"}
    await fake.drop()  # the reconnect reads nodes, library and jobs again
    await wait_until(hass, lambda: state_of(hass, UPDATE) == STATE_ON)
    return ENTRY


async def test_job_ending_with_its_start(
    hass: HomeAssistant, fake: FakeGateway, updatable: dict[str, Any]
) -> None:
    """The job's failed event follows the firmware_install result at once: the install still
    gets it and raises the gateway's reason; nothing stays in progress."""
    fake.results["firmware_install"] = {"job_id": "j1"}
    failed = {"event": "firmware progress", "job_id": "j1", "kind": "mqtt", "node_id": "n1",
              "stage": "failed", "percent": 0, "error": "node refused"}  # fmt: skip
    fake.then["firmware_install"] = [failed]
    with pytest.raises(HomeAssistantError, match=r"Installing firmware 1\.1 failed: node refused"):
        await _install(hass)
    assert hass.states.get(UPDATE).attributes["in_progress"] is False  # type: ignore[union-attr]
    install = next(c for c in fake.commands if c["command"] == "firmware_install")
    assert (install["node_id"], install["firmware_id"]) == ("n1", "e1")


async def test_malformed_install_answer(
    hass: HomeAssistant, fake: FakeGateway, updatable: dict[str, Any]
) -> None:
    fake.results["firmware_install"] = ["not", "an", "object"]
    with pytest.raises(HomeAssistantError, match="answer to firmware_install is not what"):
        await _install(hass)
