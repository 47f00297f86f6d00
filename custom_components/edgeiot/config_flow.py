"""Config flow: manual setup, Supervisor (add-on) and zeroconf discovery, reauth, reconfigure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import probatio as vol
from homeassistant.config_entries import ConfigEntry, ConfigFlow, ConfigFlowResult
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo

from .client import CannotConnect, EdgeIoTClient, InvalidAuth
from .const import DEFAULT_PORT, DOMAIN, LOGGER
from .partitions import CONF_MAIN_ENTRY_ID, CONF_PARTITION, is_partition

PORT_SELECTOR = vol.All(vol.Coerce(int), vol.Range(min=1, max=65535))


def _user_schema(defaults: Mapping[str, Any]) -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, vol.UNDEFINED)): str,
            vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_PORT)): PORT_SELECTOR,
            vol.Required(CONF_TOKEN): str,
        }
    )


class EdgeIoTConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up an EdgeIoT gateway."""

    VERSION = 1
    MINOR_VERSION = 2  # 2: node device identifiers and event/action unique ids (migrate.py)

    def __init__(self) -> None:
        self._discovered: dict[str, Any] = {}

    async def _validate(self, data: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
        """Connect once; returns (gateway id, errors)."""
        client = EdgeIoTClient(
            async_get_clientsession(self.hass), data[CONF_HOST], data[CONF_PORT], data[CONF_TOKEN]
        )
        try:
            version = await client.connect()
        except InvalidAuth:
            return None, {"base": "invalid_auth"}
        except CannotConnect:
            return None, {"base": "cannot_connect"}
        except Exception:
            LOGGER.exception("Unexpected error connecting to the gateway")
            return None, {"base": "unknown"}
        finally:
            await client.disconnect()
        return str(version["gateway_id"]), {}

    async def _update_entry(
        self, entry: ConfigEntry[Any], changes: dict[str, Any]
    ) -> tuple[ConfigFlowResult | None, dict[str, str]]:
        """Validate changed data of an entry (same gateway only); save and reload it if good."""
        data = {**entry.data, **changes}
        gateway_id, errors = await self._validate(data)
        if gateway_id is None:
            return None, errors
        await self.async_set_unique_id(gateway_id)
        self._abort_if_unique_id_mismatch(reason="wrong_gateway")
        return self.async_update_reload_and_abort(entry, data=data), {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Host, port and token typed by the user."""
        errors: dict[str, str] = {}
        if user_input is not None:
            gateway_id, errors = await self._validate(user_input)
            if gateway_id is not None:
                await self.async_set_unique_id(gateway_id)
                self._abort_if_unique_id_configured(updates=user_input)
                return self.async_create_entry(title=f"EdgeIoT {gateway_id}", data=user_input)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_user_schema({}), user_input or {}),
            errors=errors,
        )

    async def async_step_system(self, data: dict[str, Any]) -> ConfigFlowResult:
        """A gateway's main entry adds a partition entry for more nodes (partitions.py)."""
        main = self.hass.config_entries.async_get_entry(data[CONF_MAIN_ENTRY_ID])
        if main is None:
            return self.async_abort(reason="main_entry_missing")
        partition = int(data[CONF_PARTITION])
        await self.async_set_unique_id(f"{main.unique_id}:partition:{partition}")
        self._abort_if_unique_id_configured()
        return self.async_create_entry(
            title=f"EdgeIoT {main.unique_id} (nodes, part {partition})",
            data={CONF_MAIN_ENTRY_ID: main.entry_id, CONF_PARTITION: partition},
        )

    async def async_step_hassio(self, discovery_info: HassioServiceInfo) -> ConfigFlowResult:
        """The EdgeIoT add-on announced its gateway through the Supervisor."""
        config = discovery_info.config
        data = {
            CONF_HOST: config[CONF_HOST],
            CONF_PORT: int(config[CONF_PORT]),
            CONF_TOKEN: config[CONF_TOKEN],
        }
        gateway_id, errors = await self._validate(data)
        if gateway_id is None:
            return self.async_abort(reason=errors["base"])
        await self.async_set_unique_id(gateway_id)
        self._abort_if_unique_id_configured(updates=data)
        self._discovered = data | {"name": discovery_info.name}
        return await self.async_step_hassio_confirm()

    async def async_step_hassio_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask before adding the add-on's gateway."""
        if user_input is not None:
            data = {k: self._discovered[k] for k in (CONF_HOST, CONF_PORT, CONF_TOKEN)}
            return self.async_create_entry(title=f"EdgeIoT {self.unique_id}", data=data)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="hassio_confirm",
            description_placeholders={"addon": self._discovered["name"]},
        )

    async def async_step_zeroconf(self, discovery_info: ZeroconfServiceInfo) -> ConfigFlowResult:
        """A standalone gateway advertised `_edgeiot._tcp` on the LAN."""
        gateway_id = discovery_info.properties.get("gateway_id")
        if not gateway_id:
            return self.async_abort(reason="not_edgeiot")
        await self.async_set_unique_id(gateway_id)
        address = {CONF_HOST: discovery_info.host, CONF_PORT: discovery_info.port or DEFAULT_PORT}
        self._abort_if_unique_id_configured(updates=address)
        self._discovered = address
        self.context["title_placeholders"] = {"gateway_id": gateway_id}
        return await self.async_step_zeroconf_confirm()

    async def async_step_zeroconf_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The token is not advertised: ask for it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = self._discovered | user_input
            gateway_id, errors = await self._validate(data)
            if gateway_id is not None:
                if gateway_id != self.unique_id:
                    return self.async_abort(reason="unique_id_mismatch")
                return self.async_create_entry(title=f"EdgeIoT {gateway_id}", data=data)
        return self.async_show_form(
            step_id="zeroconf_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): str}),
            description_placeholders={
                "gateway_id": str(self.unique_id),
                "host": f"{self._discovered[CONF_HOST]}:{self._discovered[CONF_PORT]}",
            },
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The gateway refused the stored token."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new token."""
        errors: dict[str, str] = {}
        entry = self._get_reauth_entry()
        if user_input is not None:
            result, errors = await self._update_entry(entry, user_input)
            if result is not None:
                return result
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema({vol.Required(CONF_TOKEN): str}),
            description_placeholders={"host": f"{entry.data[CONF_HOST]}:{entry.data[CONF_PORT]}"},
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the entry to another host or port (same gateway)."""
        errors: dict[str, str] = {}
        entry = self._get_reconfigure_entry()
        if is_partition(entry):
            return self.async_abort(reason="partition_entry")
        if user_input is not None:
            result, errors = await self._update_entry(entry, user_input)
            if result is not None:
                return result
        schema = vol.Schema(
            {
                vol.Required(CONF_HOST, default=entry.data[CONF_HOST]): str,
                vol.Required(CONF_PORT, default=entry.data[CONF_PORT]): PORT_SELECTOR,
            }
        )
        return self.async_show_form(step_id="reconfigure", data_schema=schema, errors=errors)
