"""The add-on as the Supervisor reads it: config.yaml, s6 services, scripts, docs, options."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
import yaml

from edgeiot_gateway.addon_options import gateway_config
from edgeiot_gateway.addon_options import main as addon_options_main
from edgeiot_gateway.auth import load_or_create_token
from edgeiot_gateway.config import parse_config
from edgeiot_gateway.providers.mqtt import OPTIONS_SCHEMA as MQTT_OPTIONS

ROOT = Path(__file__).parents[2]
ADDON = ROOT / "addon"
S6 = ADDON / "rootfs" / "etc" / "s6-overlay" / "s6-rc.d"
CONFIG = yaml.safe_load((ADDON / "config.yaml").read_text())

# The app (add-on) configuration rules the Supervisor documents and enforces when it reads a
# repository (supervisor/apps/validate.py and options.py); a config.yaml that fails them makes
# the add-on silently disappear from the store.
SLUG = r"^[-_.A-Za-z0-9]+$"
SCHEMA_ELEMENT = re.compile(
    r"^(?:|bool|email|url|port|device(?:\(subsystem=[a-z]+\))?|str(?:\(\d*,\d*\))?"
    r"|password(?:\(\d*,\d*\))?|int(?:\(-?\d*,-?\d*\))?|float(?:\(-?[\d.]*,-?[\d.]*\))?"
    r"|match\(.*\)|list\(.+\))\??$"
)
PORT_KEY = vol.Match(r"^\d{1,5}/(tcp|udp)$")
CAPABILITIES = ["BPF", "DAC_READ_SEARCH", "IPC_LOCK", "NET_ADMIN", "NET_RAW", "PERFMON",
                "SYS_ADMIN", "SYS_MODULE", "SYS_NICE", "SYS_PTRACE", "SYS_RAWIO",
                "SYS_RESOURCE", "SYS_TIME"]  # fmt: skip


def _schema_element(value: Any) -> Any:
    if isinstance(value, str):
        if not SCHEMA_ELEMENT.match(value):
            raise vol.Invalid(f"not a Supervisor schema type: {value!r}")
        return value
    if isinstance(value, list) and len(value) == 1:
        return [_schema_element(value[0])]
    if isinstance(value, dict):
        return {key: _schema_element(item) for key, item in value.items()}
    raise vol.Invalid(f"not a schema element: {value!r}")


APP_CONFIG = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Required("version"): vol.Match(r"^\d+\.\d+\.\d+$"),
        vol.Required("slug"): vol.Match(SLUG),
        vol.Required("description"): str,
        vol.Required("arch"): [vol.In(["aarch64", "amd64", "armhf", "armv7", "i386"])],
        vol.Optional("url"): vol.Match(r"^https://"),
        vol.Optional("image"): vol.Match(r"^[a-z0-9.\-]+(/[a-z0-9_.\-{}]+)+$"),
        vol.Optional("init"): bool,
        vol.Optional("startup"): vol.In(
            ["initialize", "system", "services", "application", "once"]
        ),
        vol.Optional("boot"): vol.In(["auto", "manual", "manual_only"]),
        vol.Optional("stage"): vol.In(["stable", "experimental", "deprecated"]),
        vol.Optional("ports"): {PORT_KEY: vol.Any(None, vol.All(int, vol.Range(1, 65535)))},
        vol.Optional("ports_description"): {PORT_KEY: str},
        vol.Optional("host_network"): bool,
        vol.Optional("privileged"): [vol.In(CAPABILITIES)],
        vol.Optional("uart"): bool,
        vol.Optional("usb"): bool,
        vol.Optional("udev"): bool,
        vol.Optional("services"): [vol.Match(r"^(mqtt|mysql):(provide|want|need)$")],
        vol.Optional("discovery"): [str],
        vol.Optional("hassio_api"): bool,
        vol.Optional("homeassistant_api"): bool,
        vol.Optional("backup"): vol.In(["hot", "cold"]),
        vol.Optional("backup_exclude"): [str],
        vol.Optional("map"): [
            {
                vol.Required("type"): vol.In(
                    [
                        "share",
                        "media",
                        "ssl",
                        "backup",
                        "addon_config",
                        "homeassistant_config",
                        "all_addon_configs",
                    ]
                ),
                vol.Optional("read_only"): bool,
                vol.Optional("path"): str,
            }
        ],
        vol.Optional("watchdog"): vol.Match(
            r"^(?:https?|\[PROTO:\w+\]|tcp):\/\/\[HOST\]:(\[PORT:\d+\]|\d+).*$"
        ),
        vol.Required("options"): dict,
        vol.Required("schema"): {str: _schema_element},
    }
)


def test_config_yaml_is_a_valid_app_config() -> None:
    """config.yaml passes the Supervisor's rules, with the features the add-on needs."""
    config = APP_CONFIG(CONFIG)
    assert config["slug"] == "edgeiot"
    assert config["init"] is False  # s6-overlay v3 is PID 1
    assert "mqtt:provide" in config["services"]
    assert config["discovery"] == ["edgeiot"]
    assert config["ports"]["1883/tcp"] == 1883
    assert config["ports"]["8099/tcp"] == 8099
    assert config["uart"]
    assert config["usb"]
    assert set(config["ports"]) == set(config["ports_description"])
    assert "{arch}" not in config["image"]  # one generic multi-arch image


def test_options_match_schema_and_translations() -> None:
    """Every option has a schema entry and a translation, and the defaults fit their types."""
    options, schema = CONFIG["options"], CONFIG["schema"]
    assert set(options) <= set(schema)
    required = {k for k, v in schema.items() if isinstance(v, str) and not v.endswith("?")}
    assert required <= set(options), "a required option needs a default"
    translations = yaml.safe_load((ADDON / "translations" / "en.yaml").read_text())
    assert set(translations["configuration"]) == set(schema)
    assert set(translations["network"]) == set(CONFIG["ports"])
    for key, value in options.items():
        kind = schema[key]
        if isinstance(kind, str) and kind.startswith("list("):
            assert value in kind[5:].rstrip("?)").split("|"), key
        elif isinstance(kind, str) and kind.startswith("match("):
            assert re.fullmatch(kind[6:].rstrip("?")[:-1], value), key


def test_no_build_yaml_and_dockerfile_names_its_base() -> None:
    """2026 Supervisor: no build.yaml; the Dockerfile's FROM resolves without build args."""
    assert not (ADDON / "build.yaml").exists()
    dockerfile = (ADDON / "Dockerfile").read_text()
    base = re.search(r"^ARG BUILD_FROM=(\S+)$", dockerfile, re.M)
    assert base is not None
    assert base.group(1).startswith("ghcr.io/home-assistant/")
    assert re.search(r"^FROM \$\{BUILD_FROM\}$", dockerfile, re.M)
    for source in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        assert (ADDON / source).exists(), source
    assert 'io.hass.type="addon"' in dockerfile


def _services() -> dict[str, Path]:
    return {path.name: path for path in S6.iterdir() if path.is_dir() and path.name != "user"}


def test_s6_service_graph() -> None:
    """Every service has a valid type and its script; dependencies exist; no cycles."""
    services = _services()
    for name, path in services.items():
        kind = (path / "type").read_text().strip()
        assert kind in ("longrun", "oneshot"), name
        if kind == "longrun":
            run = path / "run"
            assert run.stat().st_mode & 0o111, f"{name}/run is not executable"
            assert run.read_text().startswith("#!/command/with-contenv bashio")
            assert "exec " in run.read_text(), f"{name}/run must exec its daemon"
        else:
            script = (path / "up").read_text().split()[0]
            target = ADDON / "rootfs" / script.lstrip("/")
            assert target.exists(), f"{name}/up runs a missing {script}"
            assert target.stat().st_mode & 0o111
        for dependency in (path / "dependencies.d").iterdir():
            assert dependency.name == "base" or dependency.name in services, dependency
    enabled = {p.name for p in (S6 / "user" / "contents.d").iterdir()}
    assert enabled == set(services)

    def visit(name: str, seen: tuple[str, ...]) -> None:
        assert name not in seen, f"dependency cycle {(*seen, name)}"
        for dependency in (services[name] / "dependencies.d").iterdir():
            if dependency.name != "base":
                visit(dependency.name, (*seen, name))

    for name in services:
        visit(name, ())

    def dependencies(name: str) -> set[str]:
        return {p.name for p in (services[name] / "dependencies.d").iterdir()}

    # The accounts exist before the daemons that use them: broker, gateway and discovery.
    assert dependencies("gateway") == {"mosquitto", "influxdb-setup"}
    assert dependencies("mosquitto") == {"mqtt-credentials"}
    assert dependencies("influxdb-setup") == {"influxdb"}


def test_shellcheck() -> None:
    """Every shell script of the add-on, and the tests' stand-ins, pass shellcheck."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "script/setup installs shellcheck"
    shebang = "#!/command/with-contenv bashio"
    scripts = [p for p in (ADDON / "rootfs").rglob("*")
               if p.is_file() and p.read_text().startswith(shebang)]  # fmt: skip
    assert len(scripts) >= 9
    scripts += sorted((Path(__file__).parent / "stubs").iterdir())  # the tests' bashio stand-in
    result = subprocess.run([shellcheck, "-s", "bash", *map(str, scripts)], capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout


def test_docs_and_store_files() -> None:
    """DOCS, CHANGELOG (this version first), icons and the store's repository.yaml."""
    changelog = (ADDON / "CHANGELOG.md").read_text()
    first = re.search(r"^## (\S+)$", changelog, re.M)
    assert first is not None
    assert first.group(1) == CONFIG["version"]
    docs = (ADDON / "DOCS.md").read_text()
    for option in CONFIG["schema"]:
        assert f"`{option}`" in docs, option
    for image, size in (("icon.png", (128, 128)), ("logo.png", (250, 100))):
        data = (ADDON / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(data[16:20]), int.from_bytes(data[20:24])) == size
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text())
    assert {"name", "url", "maintainer"} <= set(repository)


@pytest.mark.parametrize("external", [False, True])
def test_addon_options_become_a_valid_gateway_config(tmp_path: Path, external: bool) -> None:
    """The options the add-on UI writes turn into a configuration the gateway accepts."""
    options = dict(CONFIG["options"])
    options["serial_ports"] = [{"device": "/dev/ttyUSB0", "baud": 38400}]
    can = {"interface": "slcan", "channel": "/dev/ttyACM0", "bitrate": 500000,
           "dbc": "/share/edgeiot/house.dbc"}  # fmt: skip
    options["can_interfaces"] = [can]
    if external:
        options |= {"external_broker": "broker.lan:1884", "external_influxdb": "http://db:8086",
                    "ota_url": "http://192.168.1.10:8099"}  # fmt: skip
    config = gateway_config(options, "generated-secret", "influx-secret")
    parsed = parse_config(json.loads(json.dumps(config)), tmp_path)
    assert parsed.api.advertise is False
    assert [p.type for p in parsed.providers] == ["mqtt", "mysensors", "can"]
    mqtt = MQTT_OPTIONS(parsed.providers[0].options)
    assert parsed.recorder is not None
    if external:
        assert (mqtt["host"], mqtt["port"]) == ("broker.lan", 1884)
        assert "password" not in mqtt
        assert parsed.recorder.target.url == "http://db:8086"
        assert parsed.recorder.target.retention == "90d"
        assert parsed.ota_url == "http://192.168.1.10:8099"
    else:
        assert parsed.ota_url is None
        assert (mqtt["host"], mqtt["username"], mqtt["password"]) == (
            "127.0.0.1", "edgeiot-gateway", "generated-secret")  # fmt: skip
        # influxdb-setup.sh creates the database and its retention; the gateway may only write.
        target = parsed.recorder.target
        assert (target.username, target.password) == ("edgeiot-gateway", "influx-secret")
        assert (target.create_database, target.retention) == (False, None)


def test_addon_options_command_creates_the_token_and_a_private_config(tmp_path: Path) -> None:
    """The API token exists before the gateway starts, so the gateway never prints it to the
    add-on's log; the configuration with the passwords is readable by root only."""
    options, output, data_dir = (tmp_path / name for name in ("options.json", "out.json", "gw"))
    options.write_text(json.dumps(CONFIG["options"]))
    (tmp_path / "mqtt").write_text("mqtt-secret\n")
    (tmp_path / "influx").write_text("influx-secret\n")
    addon_options_main(["--options", str(options), "--mqtt-password-file", str(tmp_path / "mqtt"),
                        "--influxdb-password-file", str(tmp_path / "influx"),
                        "--data-dir", str(data_dir), "--output", str(output)])  # fmt: skip
    token, created = load_or_create_token(data_dir)
    assert not created
    assert len(token) >= 32
    assert (data_dir / "api_token").stat().st_mode & 0o077 == 0
    assert output.stat().st_mode & 0o077 == 0
    config = json.loads(output.read_text())
    assert config["data_dir"] == str(data_dir)
    assert config["recorder"]["password"] == "influx-secret"
