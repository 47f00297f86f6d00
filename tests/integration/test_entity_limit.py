"""A gateway with 12,000 fields on stock HA (10,000 enabled entities per entry at most)."""

from __future__ import annotations

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.entity_platform import MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot import limit
from custom_components.edgeiot.const import DOMAIN

from .fake_gateway import FAKE_ID, FakeGateway, fake_node
from .helpers import state_of, wait_until

NODES, FIELDS = 60, 200  # 12,000 fields


def _big_node(index: int) -> dict[str, object]:
    fields = [{"id": f"f{i}", "name": f"F{i}", "type": "int", "writable": False, "value": i}
              for i in range(FIELDS)]  # fmt: skip
    return fake_node(f"n{index}", actions=[], sources=[{"id": "s", "name": "s", "fields": fields}])


@pytest.mark.timeout(600)
async def test_twelve_thousand_fields_on_stock_ha(
    hass: HomeAssistant,
    enable_custom_integrations: None,
    fake: FakeGateway,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every field gets an entity; those past HA's limit are created disabled, counted by a
    repair issue, and one the user enables works after a reload: nothing is dropped."""
    fake.nodes = [_big_node(i) for i in range(NODES)]
    entry = MockConfigEntry(domain=DOMAIN, unique_id=FAKE_ID, data=fake.entry_data)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    registry = er.async_get(hass)

    def fields() -> list[er.RegistryEntry]:
        return [e for e in er.async_entries_for_config_entry(registry, entry.entry_id)
                if e.unique_id.count(".") == 3]  # fmt: skip

    await wait_until(hass, lambda: len(fields()) == NODES * FIELDS, timeout=120)
    enabled = registry.entities.get_enabled_count_for_config_entry_id(entry.entry_id)
    assert enabled <= MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
    disabled = [e for e in fields() if e.disabled_by is er.RegistryEntryDisabler.INTEGRATION]
    assert len(disabled) >= NODES * FIELDS - MAX_ENABLED_ENTITIES_PER_CONFIG_ENTRY
    limited = len(limit.limited_entities(hass, entry.entry_id, FAKE_ID))
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"entity_limit_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert int(issue.translation_placeholders["count"]) == limited >= len(disabled)
    assert "Reached the maximum" not in caplog.text  # HA never had to refuse one

    registry.async_update_entity(disabled[-1].entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_until(hass, lambda: state_of(hass, disabled[-1].entity_id) is not None, timeout=120)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"entity_limit_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert int(issue.translation_placeholders["count"]) == limited - 1
    await hass.config_entries.async_unload(entry.entry_id)
