"""Turn the add-on's options (/data/options.json) into a gateway configuration file.

`python -m edgeiot_gateway.addon_options --options /data/options.json
--mqtt-password-file /data/mosquitto/gateway-password
--influxdb-password-file /data/influxdb/gateway-password --data-dir /data/gateway
--output /data/gateway.json --homeassistant-config-url http://supervisor/core/api/config`

The broker and InfluxDB accounts are the ones the add-on's scripts generate
(mqtt-credentials.sh, influxdb-setup.sh). The API token is created here, before the gateway
starts, so that the gateway never prints it to the add-on's log. The location (`[location]`) is
Home Assistant's, read through the Supervisor's proxy of Core's REST API (`homeassistant_api`
in config.yaml) with the add-on's SUPERVISOR_TOKEN; when that fails the gateway runs without one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import voluptuous as vol

from .auth import load_or_create_token, mark_token_shown
from .config import DEFAULT_API_PORT, check_time_zone

DATA_DIR = "/data/gateway"
BUILTIN_BROKER = ("127.0.0.1", 1883)
BUILTIN_INFLUXDB = "http://127.0.0.1:8086"
GATEWAY_MQTT_USER = "edgeiot-gateway"
GATEWAY_INFLUXDB_USER = "edgeiot-gateway"
HA_CONFIG_TIMEOUT = 10.0
HA_CONFIG_MAX_BYTES = 1024 * 1024


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if re.search(r":\d+$", value) else (value, "", "")
    return host, int(port) if port else default_port


def gateway_config(
    options: dict[str, Any],
    mqtt_password: str,
    influxdb_password: str = "",
    data_dir: str = DATA_DIR,
    location: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The gateway configuration for these add-on options and generated passwords."""
    broker = options.get("external_broker") or ""
    host, port = _host_port(broker, 1883) if broker else BUILTIN_BROKER
    mqtt: dict[str, Any] = {"type": "mqtt", "name": "mqtt", "host": host, "port": port}
    if not broker:
        mqtt |= {"username": GATEWAY_MQTT_USER, "password": mqtt_password}
    providers: list[dict[str, Any]] = [mqtt]
    for index, serial in enumerate(options.get("serial_ports", [])):
        providers.append({
            "type": "mysensors", "name": serial.get("name") or f"mysensors{index + 1}",
            "transport": "serial", "device": serial["device"],
            "baud_rate": serial.get("baud") or 115200,
            # Node ids stay distinct across several MySensors networks: ms-3, ms2-3 ...
            "node_id_prefix": "ms" if index == 0 else f"ms{index + 1}",
        })  # fmt: skip
    for index, can in enumerate(options.get("can_interfaces", [])):
        entry = {"type": "can", "name": can.get("name") or f"can{index + 1}",
                 "interface": can["interface"], "channel": can["channel"]}  # fmt: skip
        if index:  # node ids (DBC node names, can-raw) stay distinct across CAN buses
            entry["node_prefix"] = f"can{index + 1}-"
        if can.get("bitrate"):
            entry["bitrate"] = can["bitrate"]
        if can.get("dbc"):
            entry["dbc"] = can["dbc"]
        else:
            entry["raw"] = True
        providers.append(entry)
    external_influxdb = options.get("external_influxdb") or ""
    recorder: dict[str, Any] = {"url": external_influxdb or BUILTIN_INFLUXDB, "database": "edgeiot"}
    if external_influxdb:
        recorder["retention"] = options.get("influxdb_retention", "INF")
    else:
        # influxdb-setup.sh creates the database and sets its retention; this account may write.
        recorder |= {"username": GATEWAY_INFLUXDB_USER, "password": influxdb_password,
                     "create_database": False}  # fmt: skip
    config: dict[str, Any] = {
        "data_dir": data_dir,
        "log_level": options.get("log_level", "info"),
        # The Supervisor announces the gateway (discovery); no zeroconf inside the add-on.
        "api": {"host": "0.0.0.0", "port": DEFAULT_API_PORT, "advertise": False},
        "providers": providers,
        "recorder": recorder,
    }
    if options.get("ota_url"):
        config["firmware"] = {"ota_url": options["ota_url"]}
    if location is not None:
        config["location"] = location
    return config


def homeassistant_location(url: str, token: str) -> dict[str, Any]:
    """Home Assistant's latitude, longitude, elevation and time zone from its `/api/config`."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=HA_CONFIG_TIMEOUT) as response:
        data = json.loads(response.read(HA_CONFIG_MAX_BYTES))
    location = {key: data.get(key) for key in ("latitude", "longitude", "elevation", "time_zone")}
    for key in ("latitude", "longitude", "elevation"):
        value = location[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} is {value!r}, not a number")  # noqa: TRY004
    check_time_zone(location["time_zone"])  # a zone this system does not know: no location
    return location


def main(argv: list[str] | None = None) -> None:
    """Command line used by the add-on's gateway service."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--options", type=Path, required=True)
    parser.add_argument("--mqtt-password-file", type=Path, required=True)
    parser.add_argument("--influxdb-password-file", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path(DATA_DIR))
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--homeassistant-config-url", help="Core's /api/config (token from env)")
    args = parser.parse_args(argv)
    options = json.loads(args.options.read_text())
    location = None
    if args.homeassistant_config_url:
        try:
            location = homeassistant_location(
                args.homeassistant_config_url, os.environ.get("SUPERVISOR_TOKEN", "")
            )
        except (OSError, ValueError, vol.Invalid) as err:  # HTTP, JSON, zone: no location
            print(f"edgeiot: Home Assistant's location is unknown ({err}); sun schedules "
                  "will not run until the add-on restarts with it", file=sys.stderr)  # fmt: skip
    config = gateway_config(
        options,
        args.mqtt_password_file.read_text().strip(),
        args.influxdb_password_file.read_text().strip(),
        str(args.data_dir),
        location,
    )
    load_or_create_token(args.data_dir)
    mark_token_shown(args.data_dir)  # Home Assistant gets it through discovery, not the log
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(json.dumps(config, indent=2) + "\n")


if __name__ == "__main__":
    main()
