"""Zeroconf advertisement: what the gateway announces, and that loopback gateways stay quiet.

Registering for real would send multicast beyond loopback, so these tests stop short of it.
"""

from __future__ import annotations

from pathlib import Path

from edgeiot_gateway import __version__
from edgeiot_gateway.advertise import SERVICE_TYPE, lan_addresses, service_info

from ..servers import Mosquitto
from .harness import gateway_config, start_gateway


def test_service_record() -> None:
    """Instance named after the gateway; TXT carries the id HA's zeroconf step needs."""
    info = service_info("edge-1", 8099, ["192.0.2.10"])
    assert info.type == SERVICE_TYPE == "_edgeiot._tcp.local."
    assert info.name == "edge-1._edgeiot._tcp.local."
    assert info.port == 8099
    assert info.parsed_addresses() == ["192.0.2.10"]
    assert info.decoded_properties == {
        "gateway_id": "edge-1", "version": __version__, "api": "/api/v1/ws"
    }  # fmt: skip


def test_addresses() -> None:
    """A specific bind address is advertised as is; loopback is never advertised."""
    assert lan_addresses("192.0.2.7") == ["192.0.2.7"]
    assert lan_addresses("127.0.0.1") == []
    assert "127.0.0.1" not in lan_addresses("0.0.0.0")


async def test_loopback_gateway_does_not_advertise(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """advertise = true on a loopback-bound gateway opens no zeroconf socket."""
    config = gateway_config(tmp_path / "gw", mosquitto)
    config["api"]["advertise"] = True
    gateway = await start_gateway(config)
    try:
        assert gateway.advertiser is not None
        assert gateway.advertiser.info.parsed_addresses() == []
        assert gateway.advertiser._zeroconf is None
    finally:
        await gateway.stop()
