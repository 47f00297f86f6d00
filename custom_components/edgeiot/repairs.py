"""Repair flows: removing a node from the gateway after its device was deleted in HA."""

from __future__ import annotations

from typing import Any

import probatio as vol
from homeassistant.components.repairs import RepairsFlow, RepairsFlowResult
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir


class RemoveNodeFlow(RepairsFlow):
    """Asks before a node deleted in HA is also removed from the gateway."""

    def __init__(self, entry_id: str, node_id: str) -> None:
        self.entry_id = entry_id
        self.node_id = node_id

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> RepairsFlowResult:
        return await self.async_step_confirm()

    async def async_step_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> RepairsFlowResult:
        if user_input is None:
            issue = ir.async_get(self.hass).async_get_issue(self.handler, self.issue_id)
            return self.async_show_form(
                step_id="confirm",
                data_schema=vol.Schema({}),
                description_placeholders=issue.translation_placeholders if issue else None,
            )
        entry = self.hass.config_entries.async_get_entry(self.entry_id)
        if entry is None or entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="not_loaded")
        try:
            await entry.runtime_data.async_command("remove_node", node_id=self.node_id)
        except HomeAssistantError:
            return self.async_abort(reason="remove_failed")
        return self.async_create_entry(data={})


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The flow of a `node_forgotten` issue."""
    assert data is not None
    return RemoveNodeFlow(str(data["entry_id"]), str(data["node_id"]))
