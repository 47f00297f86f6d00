"""Actions for the gateway's firmware library and serial flashing: upload a file HA may read,
list and delete firmware, list serial ports, flash a chip on a port."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import probatio as vol
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .client import EdgeIoTError
from .const import ATTR_CONFIG_ENTRY_ID, DOMAIN, LOGGER
from .firmware import FIRMWARE_ERRORS
from .hub import EdgeIoTHub
from .models import EdgeIoTConfigEntry

CHUNK_BYTES = 256 * 1024  # the gateway's largest firmware_upload_chunk
TARGETS = ("esp32", "esp32s3", "esp32c3", "esp8266", "mysensors", "edgeiot")
FORMATS = ("esp-image", "esp-merged", "intel-hex", "edgeiot-bundle")
MYSENSORS_NUMBER = vol.All(vol.Coerce(int), vol.Range(min=0, max=65535))

_ENTRY: dict[Any, Any] = {vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string}

UPLOAD_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required("path"): cv.string,
        vol.Required("name"): cv.string,
        vol.Required("version"): cv.string,
        vol.Required("target"): vol.In(TARGETS),
        vol.Optional("format"): vol.In(FORMATS),
        vol.Optional("release_notes"): cv.string,
        vol.Optional("offset"): vol.All(vol.Coerce(int), vol.Range(min=0)),
        vol.Inclusive("mysensors_type", "mysensors"): MYSENSORS_NUMBER,
        vol.Inclusive("mysensors_version", "mysensors"): MYSENSORS_NUMBER,
    }
)
BY_ID_SCHEMA = vol.Schema({**_ENTRY, vol.Required("id"): cv.string})
ENTRY_SCHEMA = vol.Schema(_ENTRY)
FLASH_SCHEMA = vol.Schema(
    {
        **_ENTRY,
        vol.Required("port"): cv.string,
        vol.Required("firmware_id"): cv.string,
        vol.Optional("baud"): vol.All(vol.Coerce(int), vol.Range(min=1)),
        vol.Optional("erase"): cv.boolean,
    }
)

type EntryFor = Callable[[HomeAssistant, str | None], EdgeIoTConfigEntry]


MEDIA_SOURCE = "media-source://media_source/"  # HA's own media folders (media_dirs)


def _media_path(hass: HomeAssistant, uri: str) -> str | None:
    """The file of a `media-source://media_source/<folder>/<path>` URI, as the media browser
    gives them (None: not inside that media folder)."""
    folder, _, location = uri.removeprefix(MEDIA_SOURCE).partition("/")
    base = hass.config.media_dirs.get(folder)
    if base is None or not location:
        return None
    path = (Path(base) / location).resolve()
    return str(path) if path.is_relative_to(Path(base).resolve()) else None


def _open_allowed(hass: HomeAssistant, path: str) -> tuple[IO[bytes], int]:
    """Open a file under HA's allowed paths or in one of its media folders (a media source
    URI), in the executor: the file and its size."""
    if path.startswith(MEDIA_SOURCE):
        media = _media_path(hass, path)
        allowed, path = media is not None, media or path
    else:
        allowed = hass.config.is_allowed_path(path)
    if not allowed:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="path_not_allowed",
            translation_placeholders={"path": path},
        )
    try:
        file = Path(path).resolve().open("rb")  # a directory raises IsADirectoryError
    except OSError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="file_unreadable",
            translation_placeholders={"path": path, "error": err.strerror or str(err)},
        ) from err
    size = os.fstat(file.fileno()).st_size
    return file, size


def _result(result: Any, command: str, key: str) -> dict[str, Any]:
    """A command's result that must be an object holding `key`."""
    if not isinstance(result, dict) or key not in result:
        raise HomeAssistantError(
            translation_domain=DOMAIN, translation_key="invalid_response",
            translation_placeholders={"command": command},
        )  # fmt: skip
    return result


async def _refresh_library(hub: EdgeIoTHub) -> None:
    """The update entities follow a library change made through HA."""
    try:
        await hub.firmware.async_refresh_library()
    except EdgeIoTError as err:  # the change is done; the next connect reads the library
        LOGGER.debug("Could not read the firmware library again: %s", err)


async def _upload(hass: HomeAssistant, hub: EdgeIoTHub, data: dict[str, Any]) -> dict[str, Any]:
    """Stream the file to the gateway in chunks; the gateway checks and stores it."""
    file, size = await hass.async_add_executor_job(_open_allowed, hass, data["path"])
    try:
        keys = ("name", "version", "target", "format", "release_notes", "offset")
        meta: dict[str, Any] = {key: data[key] for key in keys if key in data}
        if "mysensors_type" in data:
            meta["mysensors"] = {"type": data["mysensors_type"],
                                 "version": data["mysensors_version"]}  # fmt: skip
        begin = await hub.async_command(
            "firmware_upload_begin", errors=FIRMWARE_ERRORS, size=size, **meta
        )
        upload_id = _result(begin, "firmware_upload_begin", "upload_id")["upload_id"]
        offset = 0
        while offset < size:
            chunk = await hass.async_add_executor_job(file.read, min(CHUNK_BYTES, size - offset))
            if not chunk:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="file_changed",
                    translation_placeholders={"path": data["path"]},
                )
            await hub.async_command(
                "firmware_upload_chunk", errors=FIRMWARE_ERRORS, upload_id=upload_id,
                offset=offset, data=base64.b64encode(chunk).decode(),
            )  # fmt: skip
            offset += len(chunk)
        entry = await hub.async_command(
            "firmware_upload_end", errors=FIRMWARE_ERRORS, upload_id=upload_id
        )
    finally:
        await hass.async_add_executor_job(file.close)
    await _refresh_library(hub)
    return _result(entry, "firmware_upload_end", "id")


def async_setup_firmware_actions(hass: HomeAssistant, entry_for: EntryFor) -> None:
    """Register the firmware actions."""

    def hub_of(call: ServiceCall) -> EdgeIoTHub:
        return entry_for(hass, call.data.get(ATTR_CONFIG_ENTRY_ID)).runtime_data

    async def upload_firmware(call: ServiceCall) -> ServiceResponse:
        entry = await _upload(hass, hub_of(call), dict(call.data))
        return entry if call.return_response else None

    async def list_firmware(call: ServiceCall) -> ServiceResponse:
        hub = hub_of(call)
        result = _result(await hub.async_command("firmware_list"), "firmware_list", "firmware")
        hub.firmware.async_set_library(result["firmware"])
        return {"firmware": result["firmware"]}

    async def delete_firmware(call: ServiceCall) -> None:
        hub = hub_of(call)
        await hub.async_command("firmware_delete", errors=FIRMWARE_ERRORS, id=call.data["id"])
        await _refresh_library(hub)

    async def list_serial_ports(call: ServiceCall) -> ServiceResponse:
        result = await hub_of(call).async_command("serial_ports")
        return {"ports": _result(result, "serial_ports", "ports")["ports"]}

    async def flash_serial(call: ServiceCall) -> ServiceResponse:
        args = {key: call.data[key] for key in ("port", "firmware_id", "baud", "erase")
                if key in call.data}  # fmt: skip
        result = await hub_of(call).async_command("flash_serial", errors=FIRMWARE_ERRORS, **args)
        job_id = _result(result, "flash_serial", "job_id")["job_id"]
        return {"job_id": job_id} if call.return_response else None

    register = hass.services.async_register
    register(DOMAIN, "upload_firmware", upload_firmware, schema=UPLOAD_SCHEMA,
             supports_response=SupportsResponse.OPTIONAL)  # fmt: skip
    register(DOMAIN, "list_firmware", list_firmware, schema=ENTRY_SCHEMA,
             supports_response=SupportsResponse.ONLY)  # fmt: skip
    register(DOMAIN, "delete_firmware", delete_firmware, schema=BY_ID_SCHEMA)
    register(DOMAIN, "list_serial_ports", list_serial_ports, schema=ENTRY_SCHEMA,
             supports_response=SupportsResponse.ONLY)  # fmt: skip
    register(DOMAIN, "flash_serial", flash_serial, schema=FLASH_SCHEMA,
             supports_response=SupportsResponse.OPTIONAL)  # fmt: skip
