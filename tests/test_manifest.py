"""The integration's manifest loads in HA and satisfies hassfest and HACS requirements."""

from __future__ import annotations

import json
import re
from pathlib import Path

import voluptuous as vol
from awesomeversion import AwesomeVersion
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_integration

ROOT = Path(__file__).parent.parent
INTEGRATION = ROOT / "custom_components" / "edgeiot"

# The fields hassfest requires of a custom integration's manifest, with their allowed values.
MANIFEST_SCHEMA = vol.Schema(
    {
        vol.Required("domain"): "edgeiot",
        vol.Required("name"): str,
        vol.Required("codeowners"): [vol.Match(r"^@[\w-]+$")],
        vol.Required("config_flow"): True,
        vol.Required("documentation"): vol.Match(r"^https://"),
        vol.Required("issue_tracker"): vol.Match(r"^https://"),
        vol.Required("integration_type"): vol.In(["hub", "device", "service"]),
        vol.Required("iot_class"): "local_push",
        vol.Required("requirements"): [vol.Match(r"^[A-Za-z0-9_.\-\[\]]+==[\w.]+$")],
        vol.Required("version"): vol.All(str, lambda v: AwesomeVersion(v).valid and v),
        vol.Optional("dependencies"): [str],
        vol.Optional("after_dependencies"): [str],
        vol.Optional("zeroconf"): [vol.Match(r"^_[\w-]+\._tcp\.local\.$")],
    }
)

HACS_SCHEMA = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Required("homeassistant"): vol.Match(r"^\d{4}\.\d{1,2}\.\d+$"),
        vol.Optional("render_readme"): bool,
        vol.Optional("zip_release"): bool,
    }
)


def test_manifest_schema() -> None:
    """manifest.json has every field hassfest checks, with valid values, keys sorted."""
    manifest = json.loads((INTEGRATION / "manifest.json").read_text())
    MANIFEST_SCHEMA(manifest)
    # hassfest wants domain, name first and the rest sorted.
    assert list(manifest)[:2] == ["domain", "name"]
    assert list(manifest)[2:] == sorted(list(manifest)[2:])


def test_hacs_json_schema() -> None:
    """hacs.json names the integration and a minimum HA version the lock file satisfies."""
    hacs = HACS_SCHEMA(json.loads((ROOT / "hacs.json").read_text()))
    locked = re.search(
        r'name = "homeassistant"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text()
    )
    assert locked is not None
    assert AwesomeVersion(locked.group(1)) >= AwesomeVersion(hacs["homeassistant"])


async def test_loader_reads_manifest(hass: HomeAssistant, enable_custom_integrations: None) -> None:
    """HA's loader finds the custom integration and reads its manifest."""
    integration = await async_get_integration(hass, "edgeiot")
    assert integration.domain == "edgeiot"
    assert integration.config_flow is True
    assert integration.iot_class == "local_push"
    assert not integration.is_built_in
    assert (
        str(integration.version)
        == json.loads((INTEGRATION / "manifest.json").read_text())["version"]
    )


def test_brand_images() -> None:
    """Brand images ship with the integration (HA 2026.3+ serves them from brand/)."""
    sizes = {"icon.png": (256, 256), "icon@2x.png": (512, 512),
             "logo.png": (256, 96), "logo@2x.png": (512, 192)}  # fmt: skip
    for name, size in sizes.items():
        data = (INTEGRATION / "brand" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert (int.from_bytes(data[16:20]), int.from_bytes(data[20:24])) == size, name
