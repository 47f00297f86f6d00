"""Zeroconf advertisement of the API as `_edgeiot._tcp`, so Home Assistant discovers the gateway."""

from __future__ import annotations

import ipaddress
import logging

import ifaddr
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from . import __version__

_LOGGER = logging.getLogger(__name__)

SERVICE_TYPE = "_edgeiot._tcp.local."


def lan_addresses(bind_host: str) -> list[str]:
    """The IPv4 addresses to advertise: the bound one, or every non-loopback one.

    A gateway bound to loopback is not reachable from the LAN: nothing to advertise.
    """
    if bind_host not in ("", "0.0.0.0"):
        return [] if ipaddress.ip_address(bind_host).is_loopback else [bind_host]
    return [
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and not ipaddress.ip_address(str(ip.ip)).is_loopback
    ]


def service_info(gateway_id: str, port: int, addresses: list[str]) -> AsyncServiceInfo:
    """The service record: instance name = gateway id; TXT carries gateway_id and version."""
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{gateway_id}.{SERVICE_TYPE}",
        port=port,
        parsed_addresses=addresses,
        server=f"edgeiot-{gateway_id}.local.",
        properties={"gateway_id": gateway_id, "version": __version__, "api": "/api/v1/ws"},
    )


class Advertiser:
    """Registers the service on start and withdraws it on stop."""

    def __init__(self, gateway_id: str, bind_host: str, port: int) -> None:
        self.info = service_info(gateway_id, port, lan_addresses(bind_host))
        self._zeroconf: AsyncZeroconf | None = None

    async def start(self) -> None:
        """Announce the gateway on the LAN (logged, never fatal: discovery is a convenience)."""
        if not self.info.parsed_addresses():
            _LOGGER.info("No LAN address to advertise the gateway on")
            return
        try:
            addresses = self.info.parsed_addresses()
            self._zeroconf = AsyncZeroconf(interfaces=addresses, ip_version=IPVersion.V4Only)
            await self._zeroconf.async_register_service(self.info)
        except OSError as err:
            _LOGGER.warning("Zeroconf advertisement failed: %s", err)
            await self.stop()
            return
        _LOGGER.info("Advertised %s on %s", self.info.name, self.info.parsed_addresses())

    async def stop(self) -> None:
        """Withdraw the advertisement."""
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_all_services()
            await self._zeroconf.async_close()
            self._zeroconf = None
