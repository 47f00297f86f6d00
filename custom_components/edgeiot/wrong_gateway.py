"""The repair issue raised while another gateway answers at a config entry's address."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .client import WrongGateway
from .const import DOMAIN


def _issue_id(entry_id: str) -> str:
    return f"wrong_gateway_{entry_id}"


@callback
def async_raise_wrong_gateway(
    hass: HomeAssistant, entry_id: str, err: WrongGateway, url: str
) -> None:
    """Raise the issue: the entry's devices stay with the gateway they belong to."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        _issue_id(entry_id),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key="wrong_gateway",
        translation_placeholders={"expected": err.expected, "found": err.found, "url": url},
    )


@callback
def async_clear_wrong_gateway(hass: HomeAssistant, entry_id: str) -> None:
    """The entry's own gateway answers again."""
    ir.async_delete_issue(hass, DOMAIN, _issue_id(entry_id))
