"""Update entities: a node's firmware against the gateway's firmware library, installed over the
air by the gateway (`firmware_install`) with its progress."""

from __future__ import annotations

from typing import Any

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityFeature,
)
from homeassistant.const import EntityCategory, Platform
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN
from .discovery import EntityInfo
from .entity import EdgeIoTEntity, platform_setup_entry
from .firmware import TRANSFER_STAGES, entry_version, is_newer, version_newer
from .hub import EdgeIoTHub

PARALLEL_UPDATES = 0


class FirmwareUpdate(EdgeIoTEntity, UpdateEntity):
    """The firmware of one node that the gateway can update."""

    _attr_device_class = UpdateDeviceClass.FIRMWARE
    _attr_entity_category = EntityCategory.CONFIG
    _attr_supported_features = (
        UpdateEntityFeature.INSTALL
        | UpdateEntityFeature.PROGRESS
        | UpdateEntityFeature.RELEASE_NOTES
        | UpdateEntityFeature.SPECIFIC_VERSION
    )

    def __init__(self, hub: EdgeIoTHub, info: EntityInfo) -> None:
        super().__init__(hub, info)
        self.firmware = hub.firmware

    @property
    def available(self) -> bool:
        # Not the node's liveness: a sleeping node gets its update when it wakes up.
        return self.hub.connected and bool(self.node)

    @property
    def _latest(self) -> dict[str, Any] | None:
        return self.firmware.latest(self.node)

    @property
    def _job(self) -> dict[str, Any] | None:
        return self.firmware.node_job(self.info.node_id)

    @property
    def installed_version(self) -> str | None:
        firmware = self.node.get("firmware")
        return None if firmware is None else str(firmware)

    @property
    def latest_version(self) -> str | None:
        """The newest fitting library entry; with none, the installed version (up to date)."""
        latest = self._latest
        return self.installed_version if latest is None else entry_version(self.node, latest)

    @property
    def title(self) -> str | None:
        latest = self._latest
        return None if latest is None else str(latest.get("name"))

    @property
    def in_progress(self) -> bool:
        return self._job is not None

    @property
    def update_percentage(self) -> int | None:
        job = self._job
        if job is None or job.get("stage") not in TRANSFER_STAGES:
            return None
        return int(job.get("percent") or 0)

    def version_is_newer(self, latest_version: str, installed_version: str) -> bool:
        return version_newer(self.node, latest_version, installed_version)

    async def async_release_notes(self) -> str | None:
        latest = self._latest
        return None if latest is None else latest.get("release_notes")

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.firmware.subscribe_library(self._handle_update))
        self.async_on_remove(self.firmware.subscribe_node(self.info.node_id, self._handle_update))

    def _entry_for(self, version: str | None) -> dict[str, Any]:
        """The library entry to install: the latest, the newest fitting one shown as
        `version`, or the one whose id is `version`."""
        if version is None:
            if (latest := self._latest) is not None:
                return latest
        else:
            # By id any entry (the gateway checks it fits: a MySensors node may take another
            # firmware type); by version the newest fitting one.
            chosen = next((e for e in self.firmware.entries if e["id"] == version), None)
            for entry in self.firmware.candidates(self.node):
                if version == entry_version(self.node, entry) and (
                    chosen is None or is_newer(self.node, entry, chosen)
                ):
                    chosen = entry
            if chosen is not None:
                return chosen
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="firmware_version_not_found",
            translation_placeholders={"version": str(version), "entity_id": self.entity_id},
        )

    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Install through the gateway and wait for the job's end; a failure raises with the
        gateway's reason and leaves the installed version as it was."""
        entry = self._entry_for(version)
        last = await self.firmware.async_install(self.info.node_id, entry["id"])
        if last.get("stage") != "done":
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="install_failed",
                translation_placeholders={
                    "version": entry_version(self.node, entry),
                    "error": str(last.get("error") or "unknown error"),
                },
            )


async_setup_entry = platform_setup_entry(Platform.UPDATE, FirmwareUpdate)
