"""Every config-flow path against a real gateway process: errors, recovery, discovery, reauth."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from unittest.mock import patch

import pytest
from homeassistant.config_entries import (
    SOURCE_HASSIO,
    SOURCE_RECONFIGURE,
    SOURCE_SYSTEM,
    SOURCE_USER,
    SOURCE_ZEROCONF,
)
from homeassistant.const import CONF_HOST, CONF_PORT, CONF_TOKEN
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.hassio import HassioServiceInfo
from homeassistant.helpers.service_info.zeroconf import ZeroconfServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.edgeiot.const import DOMAIN

from ..servers import Mosquitto, free_port
from .conftest import GATEWAY_ID, GatewayProcess

pytestmark = pytest.mark.usefixtures("enable_custom_integrations")


@pytest.fixture(autouse=True)
def _no_setup() -> Iterator[None]:
    """Flows are tested alone: creating an entry must not start the integration here."""
    with (
        patch("custom_components.edgeiot.async_setup_entry", return_value=True),
        patch("custom_components.edgeiot.async_unload_entry", return_value=True),
    ):
        yield


def _zeroconf(port: int, gateway_id: str | None = GATEWAY_ID) -> ZeroconfServiceInfo:
    return ZeroconfServiceInfo(
        ip_address=ip_address("127.0.0.1"),
        ip_addresses=[ip_address("127.0.0.1")],
        hostname="edgeiot.local.",
        name=f"{gateway_id}._edgeiot._tcp.local.",
        port=port,
        type="_edgeiot._tcp.local.",
        properties={"gateway_id": gateway_id} if gateway_id else {},
    )


async def test_user_flow_errors_then_success(
    hass: HomeAssistant, gateway_process: GatewayProcess
) -> None:
    """cannot_connect, invalid_auth and unknown each show the form again; then it works."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {}
    good = gateway_process.entry_data

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], good | {CONF_PORT: free_port()}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], good | {CONF_TOKEN: "not-the-token"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    with patch(
        "custom_components.edgeiot.config_flow.EdgeIoTClient.connect", side_effect=RuntimeError
    ):
        result = await hass.config_entries.flow.async_configure(result["flow_id"], good)
    assert result["errors"] == {"base": "unknown"}

    result = await hass.config_entries.flow.async_configure(result["flow_id"], good)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"EdgeIoT {GATEWAY_ID}"
    assert result["data"] == good
    assert result["result"].unique_id == GATEWAY_ID


async def test_user_flow_duplicate_aborts(
    hass: HomeAssistant, gateway_process: GatewayProcess, config_entry: MockConfigEntry
) -> None:
    """The same gateway (same id) is never added twice."""
    config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], gateway_process.entry_data
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_hassio_discovery(hass: HomeAssistant, gateway_process: GatewayProcess) -> None:
    """The add-on's discovery (host, port, token) is confirmed and becomes an entry."""
    info = HassioServiceInfo(
        config=gateway_process.entry_data, name="EdgeIoT", slug="edgeiot", uuid="1234"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "hassio_confirm"
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == gateway_process.entry_data
    assert result["result"].unique_id == GATEWAY_ID


async def test_hassio_discovery_updates_existing_entry(
    hass: HomeAssistant, gateway_process: GatewayProcess, config_entry: MockConfigEntry
) -> None:
    """A known gateway announced again only refreshes the stored address and token."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, data=config_entry.data | {CONF_HOST: "127.0.0.9"}
    )
    info = HassioServiceInfo(
        config=gateway_process.entry_data, name="EdgeIoT", slug="edgeiot", uuid="1234"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert config_entry.data[CONF_HOST] == "127.0.0.1"


@pytest.mark.parametrize(
    ("change", "reason"),
    [({CONF_PORT: 1}, "cannot_connect"), ({CONF_TOKEN: "nope"}, "invalid_auth")],
)
async def test_hassio_discovery_unreachable(
    hass: HomeAssistant, gateway_process: GatewayProcess, change: dict[str, object], reason: str
) -> None:
    """A discovery that does not work aborts with the reason."""
    info = HassioServiceInfo(
        config=gateway_process.entry_data | change, name="EdgeIoT", slug="edgeiot", uuid="1"
    )
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_HASSIO}, data=info
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason


async def test_zeroconf_discovery(hass: HomeAssistant, gateway_process: GatewayProcess) -> None:
    """A standalone gateway found by zeroconf asks for the token; a wrong one can be retried."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(gateway_process.port)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "zeroconf_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: gateway_process.token}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == gateway_process.entry_data


async def test_zeroconf_aborts(
    hass: HomeAssistant, gateway_process: GatewayProcess, config_entry: MockConfigEntry
) -> None:
    """No gateway id, another gateway answering, or a known gateway: abort."""
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(gateway_process.port, None)
    )
    assert result["reason"] == "not_edgeiot"

    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(gateway_process.port, "other")
    )
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: gateway_process.token}
    )
    assert result["reason"] == "unique_id_mismatch"

    config_entry.add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_ZEROCONF}, data=_zeroconf(gateway_process.port)
    )
    assert result["reason"] == "already_configured"


async def test_reauth(
    hass: HomeAssistant, gateway_process: GatewayProcess, config_entry: MockConfigEntry
) -> None:
    """A new token is validated before it replaces the old one."""
    config_entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        config_entry, data=config_entry.data | {CONF_TOKEN: "old-token"}
    )
    result = await config_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: "still-wrong"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_TOKEN: gateway_process.token}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert config_entry.data[CONF_TOKEN] == gateway_process.token


async def test_reconfigure(
    hass: HomeAssistant,
    gateway_process: GatewayProcess,
    config_entry: MockConfigEntry,
    mosquitto: Mosquitto,
    tmp_path: Path,
) -> None:
    """Host/port change: unreachable → error; another gateway → abort; same gateway → saved."""
    config_entry.add_to_hass(hass)
    result = await config_entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: free_port()}
    )
    assert result["errors"] == {"base": "cannot_connect"}

    other = GatewayProcess(tmp_path / "other", mosquitto, gateway_id="other-gw")
    other.start()
    try:
        (other.workdir / "data" / "api_token").write_text(gateway_process.token)
        other.stop()
        other.start()  # same token, different gateway id
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: other.port}
        )
        assert result["reason"] == "wrong_gateway"
    finally:
        other.stop()

    result = await config_entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_HOST: "127.0.0.1", CONF_PORT: gateway_process.port}
    )
    assert result["reason"] == "reconfigure_successful"


async def test_system_flow_creates_partition_entries(hass: HomeAssistant) -> None:
    """The main entry adds partition entries without a form (partitions.py): one per number,
    none for a main entry that is gone; they cannot be reconfigured."""
    main = MockConfigEntry(domain=DOMAIN, unique_id=GATEWAY_ID, data={CONF_HOST: "h", CONF_PORT: 1})
    main.add_to_hass(hass)
    data = {"main_entry_id": main.entry_id, "partition": 1}
    context = {"source": SOURCE_SYSTEM}
    result = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=data)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"EdgeIoT {GATEWAY_ID} (nodes, part 1)"
    assert result["data"] == data
    assert result["result"].unique_id == f"{GATEWAY_ID}:partition:1"
    result = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=data)
    assert result["reason"] == "already_configured"
    gone = {"main_entry_id": "gone", "partition": 1}
    result = await hass.config_entries.flow.async_init(DOMAIN, context=context, data=gone)
    assert result["reason"] == "main_entry_missing"
    partition = hass.config_entries.async_entries(DOMAIN)[1]
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": partition.entry_id}
    )
    assert result["reason"] == "partition_entry"
