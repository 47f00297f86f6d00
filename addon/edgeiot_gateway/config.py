"""Gateway configuration: a TOML file (standalone) or the add-on's options JSON."""

from __future__ import annotations

import json
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import voluptuous as vol
from voluptuous.humanize import humanize_error

from .automation.handlers.base import SmtpConfig
from .automation.location import Location
from .limits import DEFAULT_LIMITS, Limits
from .models import ID_PATTERN
from .recorder import InfluxTarget, RecorderConfig

DEFAULT_API_PORT = 8099
LIMIT_MINIMUMS = {"max_nodes": 1, "max_fields_per_node": 1, "max_fields": 1,
                  "max_definition_bytes": 1024, "max_total_definition_bytes": 1024}  # fmt: skip


def check_time_zone(value: Any) -> str:
    """An IANA time zone name that this system knows."""
    if not isinstance(value, str) or not value or len(value) > 64:
        raise vol.Invalid("expected an IANA time zone name like 'Europe/Berlin'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise vol.Invalid(f"unknown time zone {value!r}") from None
    return value


def _degrees(limit: float) -> vol.All:
    return vol.All(vol.Any(int, float), vol.Range(min=-limit, max=limit))


CONFIG_SCHEMA = vol.Schema(
    {
        vol.Optional("gateway_id"): vol.All(str, vol.Match(ID_PATTERN)),
        vol.Optional("data_dir", default="./edgeiot-data"): str,
        vol.Optional("log_level", default="info"): vol.In(
            ["debug", "info", "warning", "error", "critical"]
        ),
        vol.Optional("api", default=dict): {
            vol.Optional("host", default="0.0.0.0"): str,
            vol.Optional("port", default=DEFAULT_API_PORT): vol.All(
                int, vol.Range(min=0, max=65535)
            ),
            vol.Optional("token"): vol.All(str, vol.Length(min=32)),
            vol.Optional("advertise", default=True): bool,
            vol.Optional("status_interval", default=5.0): vol.All(
                vol.Any(int, float), vol.Range(min=0.05, max=3600)
            ),
            vol.Optional("max_connections", default=32): vol.All(int, vol.Range(min=1, max=1024)),
            vol.Optional("max_message_bytes", default=16 * 1024 * 1024): vol.All(
                int, vol.Range(min=1024)
            ),
            vol.Optional("max_pending_messages", default=100_000): vol.All(int, vol.Range(min=100)),
            vol.Optional("send_timeout", default=30.0): vol.All(
                vol.Any(int, float), vol.Range(min=0.1, max=3600)
            ),
            vol.Optional("header_timeout", default=20.0): vol.All(
                vol.Any(int, float), vol.Range(min=0.1, max=3600)
            ),
        },
        vol.Optional("limits", default=dict): {
            vol.Optional(key, default=getattr(DEFAULT_LIMITS, key)): vol.All(
                int, vol.Range(min=minimum)
            )
            for key, minimum in LIMIT_MINIMUMS.items()
        },
        vol.Optional("store", default=dict): {
            vol.Optional("flush_interval", default=1.0): vol.All(
                vol.Any(int, float), vol.Range(min=0.01, max=60)
            ),
        },
        vol.Optional("firmware", default=dict): {
            vol.Optional("max_bytes", default=16 * 1024 * 1024): vol.All(
                int, vol.Range(min=1024, max=64 * 1024 * 1024)
            ),
            vol.Optional("install_timeout", default=900.0): vol.All(
                vol.Any(int, float), vol.Range(min=1, max=86400)
            ),
            vol.Optional("ota_url"): vol.All(str, vol.Match(r"^https?://[^/?#\s]+$")),
        },
        vol.Optional("recorder"): {
            vol.Required("url"): vol.All(str, vol.Match(r"^https?://")),
            vol.Optional("api", default=1): vol.In([1, 2]),
            vol.Optional("database", default="edgeiot"): str,
            vol.Optional("retention_policy"): vol.Any(None, str),
            vol.Optional("username"): vol.Any(None, str),
            vol.Optional("password"): vol.Any(None, str),
            vol.Optional("org"): vol.Any(None, str),
            vol.Optional("bucket"): vol.Any(None, str),
            vol.Optional("token"): vol.Any(None, str),
            vol.Optional("precision", default="ns"): vol.In(["ns", "us", "ms", "s"]),
            vol.Optional("create_database", default=True): bool,
            vol.Optional("retention"): vol.Any(None, vol.Match(r"^(\d+[hdw]|INF)$")),
            vol.Optional("measurement", default="edgeiot"): vol.All(str, vol.Length(min=1)),
            vol.Optional("strings", default=True): bool,
            vol.Optional("include", default=list): [str],
            vol.Optional("exclude", default=list): [str],
            vol.Optional("min_interval", default=0.0): vol.All(
                vol.Any(int, float), vol.Range(min=0)
            ),
            vol.Optional("batch_size", default=5000): vol.All(int, vol.Range(min=1, max=100_000)),
            vol.Optional("flush_interval", default=0.2): vol.All(
                vol.Any(int, float), vol.Range(min=0.01, max=60)
            ),
            vol.Optional("max_queue_points", default=5_000_000): vol.All(int, vol.Range(min=1)),
            vol.Optional("max_staged_points", default=200_000): vol.All(int, vol.Range(min=1)),
        },
        vol.Optional("location"): {
            vol.Required("latitude"): _degrees(90),
            vol.Required("longitude"): _degrees(180),
            vol.Optional("elevation", default=0.0): vol.All(
                vol.Any(int, float), vol.Range(min=-500, max=10_000)
            ),
            vol.Optional("time_zone", default="UTC"): check_time_zone,
        },
        vol.Optional("smtp"): {
            vol.Required("host"): vol.All(str, vol.Length(min=1, max=253)),
            vol.Optional("port", default=587): vol.All(int, vol.Range(min=1, max=65535)),
            vol.Optional("security", default="starttls"): vol.In(["starttls", "tls", "none"]),
            vol.Optional("username"): str,
            vol.Optional("password"): str,
            vol.Optional("sender", default="edgeiot@localhost"): vol.All(
                str, vol.Match(r"^[^@\s<>,;]+@[^@\s<>,;]+$", msg="expected an e-mail address")
            ),
            vol.Optional("ca_file"): str,
            vol.Optional("timeout", default=30.0): vol.All(
                vol.Any(int, float), vol.Range(min=1, max=300)
            ),
        },
        vol.Optional("providers", default=list): [
            vol.Schema(
                {
                    vol.Required("type"): str,
                    vol.Optional("name"): vol.All(str, vol.Match(ID_PATTERN)),
                },
                extra=vol.ALLOW_EXTRA,
            )
        ],
    }
)


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(slots=True)
class ApiConfig:
    """Where and how the API listens."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_API_PORT
    token: str | None = None
    advertise: bool = True  # zeroconf _edgeiot._tcp on the LAN
    status_interval: float = 5.0  # seconds between `gateway status` checks
    max_connections: int = 32
    max_message_bytes: int = 16 * 1024 * 1024
    max_pending_messages: int = 100_000  # queued for one WebSocket before it is cut off
    send_timeout: float = 30.0  # seconds a WebSocket may take no data before it is cut off
    header_timeout: float = 20.0  # seconds for a request head; also the keep-alive idle time


@dataclass(slots=True)
class ProviderConfig:
    """One provider instance: its type, unique name and type-specific options."""

    type: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class GatewayConfig:
    """The whole gateway configuration."""

    data_dir: Path
    gateway_id: str | None = None
    log_level: str = "info"
    api: ApiConfig = field(default_factory=ApiConfig)
    flush_interval: float = 1.0
    limits: Limits = field(default_factory=Limits)
    providers: list[ProviderConfig] = field(default_factory=list)
    recorder: RecorderConfig | None = None
    location: Location | None = None  # sun events and the default zone of schedules
    smtp: SmtpConfig | None = None  # the mail server of the `email` automation handler
    firmware_max_bytes: int = 16 * 1024 * 1024  # the largest firmware file the library takes
    install_timeout: float = 900.0  # seconds an OTA install job may take
    ota_url: str | None = None  # the API's base URL as nodes reach it (None: derived)

    def resolve_gateway_id(self) -> str:
        """The configured id, else the one stored in the data dir, else a new stored one."""
        if self.gateway_id:
            return self.gateway_id
        path = self.data_dir / "gateway_id"
        if path.exists() and ID_PATTERN.match(stored := path.read_text().strip()):
            self.gateway_id = stored
        else:
            self.gateway_id = f"gw-{secrets.token_hex(4)}"
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(self.gateway_id + "\n")
        return self.gateway_id


def parse_config(raw: dict[str, Any], base_dir: Path) -> GatewayConfig:
    """Validate a configuration mapping; relative data dirs are relative to `base_dir`."""
    try:
        data = CONFIG_SCHEMA(raw)
    except vol.Invalid as err:
        raise ConfigError(humanize_error(raw, err)) from None
    providers: list[ProviderConfig] = []
    for entry in data["providers"]:
        options = {k: v for k, v in entry.items() if k not in ("type", "name")}
        name = entry.get("name", entry["type"])
        if any(p.name == name for p in providers):
            raise ConfigError(f"two providers are named {name!r}; give each a unique name")
        providers.append(ProviderConfig(entry["type"], name, options))
    return GatewayConfig(
        data_dir=(base_dir / data["data_dir"]).resolve(),
        gateway_id=data.get("gateway_id"),
        log_level=data["log_level"],
        api=ApiConfig(**data["api"]),
        flush_interval=float(data["store"]["flush_interval"]),
        limits=Limits(**data["limits"]),
        providers=providers,
        recorder=_recorder_config(data.get("recorder")),
        location=_location(data.get("location")),
        smtp=_smtp(data.get("smtp"), base_dir),
        firmware_max_bytes=data["firmware"]["max_bytes"],
        install_timeout=float(data["firmware"]["install_timeout"]),
        ota_url=data["firmware"].get("ota_url"),
    )


def _smtp(data: dict[str, Any] | None, base_dir: Path) -> SmtpConfig | None:
    if data is None:
        return None
    ca_file = (base_dir / data["ca_file"]).resolve() if "ca_file" in data else None
    return SmtpConfig(
        data["host"], data["port"], data["security"], data.get("username"),
        data.get("password"), data["sender"], ca_file, float(data["timeout"]),
    )  # fmt: skip


def _location(data: dict[str, Any] | None) -> Location | None:
    if data is None:
        return None
    return Location(float(data["latitude"]), float(data["longitude"]),
                    float(data["elevation"]), data["time_zone"])  # fmt: skip


def _recorder_config(data: dict[str, Any] | None) -> RecorderConfig | None:
    if data is None:
        return None
    target_keys = {"url", "api", "database", "retention_policy", "username", "password", "org",
                   "bucket", "token", "precision", "create_database", "retention"}  # fmt: skip
    target = InfluxTarget(**{k: v for k, v in data.items() if k in target_keys})
    return RecorderConfig(target=target, **{k: v for k, v in data.items() if k not in target_keys})


def load_config(path: Path) -> GatewayConfig:
    """Read a `.toml` or `.json` configuration file."""
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return parse_config(raw, path.parent)
