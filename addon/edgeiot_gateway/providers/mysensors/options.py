"""The MySensors provider's options."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

TRANSPORTS = ("serial", "tcp", "mqtt")
DEFAULT_PORTS = {"tcp": 5003, "mqtt": 1883}

Seconds = vol.All(vol.Any(int, float), vol.Range(min=0))
Port = vol.All(int, vol.Range(min=1, max=65535))
TopicPrefix = vol.All(str, vol.Match(r"^[^#+]+[^/#+]$"))


def _check_transport(options: dict[str, Any]) -> dict[str, Any]:
    transport = options["transport"]
    if transport == "serial" and not options.get("device"):
        raise vol.Invalid("the serial transport needs a device")
    if transport == "tcp" and not options.get("host"):
        raise vol.Invalid("the tcp transport needs a host")
    if transport == "mqtt":
        options.setdefault("host", "127.0.0.1")
    if transport != "serial":
        options.setdefault("port", DEFAULT_PORTS[transport])
    return options


OPTIONS_SCHEMA = vol.All(
    vol.Schema(
        {
            vol.Required("transport"): vol.In(TRANSPORTS),
            # serial
            vol.Optional("device"): vol.All(str, vol.Length(min=1)),
            vol.Optional("baud_rate", default=115200): vol.All(int, vol.Range(min=50)),
            # tcp and mqtt
            vol.Optional("host"): vol.All(str, vol.Length(min=1)),
            vol.Optional("port"): Port,
            # tcp: ask for the gateway's version after this much silence; reconnect after 3x
            vol.Optional("check_interval", default=10.0): vol.All(Seconds, vol.Range(max=3600)),
            # mqtt
            vol.Optional("username"): vol.Any(None, str),
            vol.Optional("password"): vol.Any(None, str),
            vol.Optional("client_id"): vol.All(str, vol.Length(min=1, max=128)),
            vol.Optional("keepalive", default=30): vol.All(int, vol.Range(min=5, max=3600)),
            vol.Optional("in_prefix", default="mysensors-in"): TopicPrefix,
            vol.Optional("out_prefix", default="mysensors-out"): TopicPrefix,
            vol.Optional("qos", default=0): vol.In([0, 1]),
            # all transports
            vol.Optional("unit_system", default="metric"): vol.In(["metric", "imperial"]),
            vol.Optional("node_id_prefix", default="ms"): vol.All(
                str, vol.Match(r"^[A-Za-z0-9_-]{1,32}$")
            ),
            vol.Optional("state_file"): vol.All(str, vol.Length(min=1)),
            vol.Optional("announce_delay", default=0.5): vol.All(Seconds, vol.Range(max=60)),
            vol.Optional("request_ack", default=False): bool,
            vol.Optional("local_time", default=False): bool,
            vol.Optional("heartbeat_interval"): vol.Any(
                None, vol.All(vol.Any(int, float), vol.Range(min=1, max=86400))
            ),
            # OTA: the longest a firmware job may take, and the longest gap between requests
            vol.Optional("ota_timeout", default=3600.0): vol.All(Seconds, vol.Range(min=1)),
            vol.Optional("ota_idle_timeout", default=60.0): vol.All(Seconds, vol.Range(min=0.1)),
            vol.Optional("reconnect_interval", default=1.0): vol.All(
                vol.Any(int, float), vol.Range(min=0.01, max=60)
            ),
            vol.Optional("reconnect_max_interval", default=30.0): vol.All(
                vol.Any(int, float), vol.Range(min=0.01, max=3600)
            ),
        },
        extra=vol.PREVENT_EXTRA,
    ),
    _check_transport,
)
