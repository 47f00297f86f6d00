"""The gateway's firmware library and firmware jobs as HA sees them.

The gateway has no event for library changes: the library is read again on every (re)connect
and after each upload or delete made through HA's actions. Jobs come from `firmware_jobs` on
(re)connect and then from `firmware progress` events, which are also fired on HA's bus.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from awesomeversion import AwesomeVersion, AwesomeVersionCompareException
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr

from .client import EdgeIoTError, FailedCommand
from .const import ATTR_EVENT_TYPE, ATTR_NODE_ID, DOMAIN, EVENT_NODE, LOGGER
from .helpers import node_identifier

if TYPE_CHECKING:
    from .hub import EdgeIoTHub

type Listener = Callable[[], None]

ENDED = frozenset({"done", "failed"})
# Stages whose percent is the transfer's; the other stages have no meaningful percentage.
TRANSFER_STAGES = frozenset({"downloading", "writing"})
ENDED_KEPT = 32
EVENT_TYPE_PROGRESS = "firmware_progress"
MYSENSORS = "mysensors"
_MYSENSORS_FIRMWARE = re.compile(r"^(\d{1,5})\.(\d{1,5})$")  # "<type>.<version>"

# Gateway error codes of the firmware commands → the integration's exception translation keys.
FIRMWARE_ERRORS = {
    "invalid_firmware": "invalid_firmware",
    "firmware_too_large": "firmware_too_large",
    "in_use": "firmware_in_use",
    "busy": "firmware_busy",
    "not_supported": "firmware_not_supported",
}


def is_mysensors(node: dict[str, Any]) -> bool:
    """A MySensors sensor or repeater node (its provider names it so; not the gateway node)."""
    return node.get("manufacturer") == "MySensors" and node.get("model") != "Gateway"


def updatable(node: dict[str, Any]) -> bool:
    """Whether the gateway can update the node's firmware: it announced an `ota` block (MQTT
    nodes) or it is a MySensors node (its bootloader takes OTA firmware)."""
    return isinstance(node.get("ota"), dict) or is_mysensors(node)


def mysensors_firmware(node: dict[str, Any]) -> tuple[int, int] | None:
    """A MySensors node's firmware (type, version) from its `firmware` "<type>.<version>"."""
    match = _MYSENSORS_FIRMWARE.match(str(node.get("firmware") or ""))
    return (int(match[1]), int(match[2])) if match else None


def fits(node: dict[str, Any], entry: dict[str, Any]) -> bool:
    """Whether library `entry` can go to `node`, as the gateway checks it on install: an OTA
    node's target and formats; a MySensors node's firmware type."""
    if isinstance(ota := node.get("ota"), dict):
        if entry.get("format") not in ota.get("formats", ()):
            return False
        # A bundle of target edgeiot names its target in its manifest, which the node checks.
        return entry.get("target") == ota.get("target") or (
            entry.get("format") == "edgeiot-bundle" and entry.get("target") == "edgeiot"
        )
    if is_mysensors(node) and entry.get("target") == MYSENSORS:
        installed = mysensors_firmware(node)
        return installed is not None and (entry.get(MYSENSORS) or {}).get("type") == installed[0]
    return False


def entry_version(node: dict[str, Any], entry: dict[str, Any]) -> str:
    """The version HA shows for `entry` on `node`: MySensors nodes report "<type>.<version>",
    so their entries are shown the same way; others show the entry's version."""
    if is_mysensors(node) and isinstance(numbers := entry.get(MYSENSORS), dict):
        return f"{numbers['type']}.{numbers['version']}"
    return str(entry["version"])


def is_newer(node: dict[str, Any], entry: dict[str, Any], than: dict[str, Any]) -> bool:
    """Whether `entry` is a newer version than `than` for the node: MySensors by version
    number, others by version string; equal or incomparable versions by upload time."""
    if is_mysensors(node):
        mine, theirs = entry[MYSENSORS]["version"], than[MYSENSORS]["version"]
        if mine != theirs:
            return bool(mine > theirs)
    elif entry["version"] != than["version"]:
        try:
            return bool(AwesomeVersion(entry["version"]) > AwesomeVersion(than["version"]))
        except AwesomeVersionCompareException:
            pass
    return float(entry.get("uploaded_at") or 0) > float(than.get("uploaded_at") or 0)


def version_newer(node: dict[str, Any], latest: str, installed: str) -> bool:
    """Whether version `latest` is newer than `installed` (both as shown for the node)."""
    if is_mysensors(node):
        mine = mysensors_firmware({"firmware": latest})
        theirs = mysensors_firmware({"firmware": installed})
        if mine is not None and theirs is not None:
            return mine[1] > theirs[1]
        return latest != installed
    try:
        return bool(AwesomeVersion(latest) > AwesomeVersion(installed))
    except AwesomeVersionCompareException:
        return latest != installed


class FirmwareState:
    """Library entries and running jobs of one gateway, with listeners for the update entities."""

    def __init__(self, hass: HomeAssistant, hub: EdgeIoTHub) -> None:
        self.hass = hass
        self.hub = hub
        self.entries: list[dict[str, Any]] = []  # newest upload first, as the gateway lists them
        self.jobs: dict[str, dict[str, Any]] = {}  # running jobs by id
        self._library_listeners: list[Listener] = []
        self._node_listeners: dict[str, list[Listener]] = defaultdict(list)
        self._waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # The last events of recently ended jobs: an install may hear its job end before it
        # starts waiting (the result and a quick failure arrive in one read).
        self._ended: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # Reading the gateway --------------------------------------------------------------------

    @callback
    def async_schedule_refresh(self) -> None:
        """Read library and jobs once the connection listens (called on every (re)connect,
        right before the hub starts listening: not eager, so the task starts after that)."""
        self.hub.entry.async_create_background_task(
            self.hass, self._async_refresh_all(), f"{DOMAIN} firmware refresh", eager_start=False
        )

    async def _async_refresh_all(self) -> None:
        try:
            await self.async_refresh_library()
            result = await self.hub.client.command("firmware_jobs")
        except FailedCommand as err:  # a gateway without OTA jobs (or without firmware at all)
            LOGGER.debug("Gateway %s lists no firmware jobs: %s", self.hub.gateway_id, err)
            result = {"jobs": []}
        except EdgeIoTError as err:  # the connection dropped again: the next connect reads
            LOGGER.debug("Reading firmware of gateway %s failed: %s", self.hub.gateway_id, err)
            return
        jobs = result.get("jobs") if isinstance(result, dict) else None
        self._set_jobs(jobs if isinstance(jobs, list) else [])

    async def async_refresh_library(self) -> None:
        """Read the library again (raises EdgeIoTError); the update entities follow."""
        try:
            result = await self.hub.client.command("firmware_list")
        except FailedCommand as err:  # a gateway without a firmware library
            LOGGER.debug("Gateway %s has no firmware library: %s", self.hub.gateway_id, err)
            result = {}
        entries = result.get("firmware") if isinstance(result, dict) else None
        self.async_set_library(entries if isinstance(entries, list) else [])

    @callback
    def async_set_library(self, entries: list[Any]) -> None:
        """The library as `firmware_list` returned it; the update entities follow."""
        self.entries = [
            entry
            for entry in entries
            if isinstance(entry, dict) and {"id", "version", "target"} <= entry.keys()
        ]
        for listener in list(self._library_listeners):
            listener()

    @callback
    def _set_jobs(self, jobs: list[Any]) -> None:
        """The gateway's running jobs after a (re)connect (finished ones are listed too)."""
        touched = {job.get("node_id") for job in self.jobs.values()}
        self.jobs = {
            job["job_id"]: job
            for job in jobs
            if isinstance(job, dict) and "job_id" in job and job.get("stage") not in ENDED
        }
        for node_id in touched | {job.get("node_id") for job in self.jobs.values()}:
            self._notify_node(node_id)

    # Events ---------------------------------------------------------------------------------

    @callback
    def async_on_progress(self, event: dict[str, Any]) -> None:
        """A `firmware progress` event: on HA's bus, and the job's state for its node."""
        job_id, node_id = event["job_id"], event.get("node_id")
        data = {
            key: event.get(key) for key in ("job_id", "kind", "port", "stage", "percent", "error")
        }
        if node_id is not None:
            owner = self.hub.owner_entry(node_id)  # the main entry or a partition entry
            device = owner and dr.async_get(self.hass).async_get_device_by_identifier(
                node_identifier(self.hub.gateway_id, node_id), owner.entry_id
            )
            data |= {"device_id": device.id if device else None, ATTR_NODE_ID: node_id}
        self.hass.bus.async_fire(EVENT_NODE, {ATTR_EVENT_TYPE: EVENT_TYPE_PROGRESS, **data})
        if event["stage"] in ENDED:
            self.jobs.pop(job_id, None)
            self._ended[job_id] = event
            while len(self._ended) > ENDED_KEPT:
                self._ended.popitem(last=False)
            if (waiter := self._waiters.get(job_id)) is not None and not waiter.done():
                waiter.set_result(event)
        else:
            self.jobs[job_id] = {**self.jobs.get(job_id, {}), **event}
        self._notify_node(node_id)

    @callback
    def async_connection_lost(self) -> None:
        """Installs waiting for their job end with an error; reconnecting shows the job again."""
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(
                    HomeAssistantError(
                        translation_domain=DOMAIN, translation_key="install_connection_lost"
                    )
                )

    # For the update entities ------------------------------------------------------------------

    def node_job(self, node_id: str) -> dict[str, Any] | None:
        """The running job of a node, if any."""
        return next((job for job in self.jobs.values() if job.get("node_id") == node_id), None)

    def candidates(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """The library entries that fit the node."""
        return [entry for entry in self.entries if fits(node, entry)]

    def latest(self, node: dict[str, Any]) -> dict[str, Any] | None:
        """The newest fitting entry (by version, then upload time)."""
        best: dict[str, Any] | None = None
        for entry in self.candidates(node):
            if best is None or is_newer(node, entry, best):
                best = entry
        return best

    async def async_install(self, node_id: str, firmware_id: str) -> dict[str, Any]:
        """Start `firmware_install` and wait for the job's end; returns its last event."""
        result = await self.hub.async_command(
            "firmware_install", errors=FIRMWARE_ERRORS, node_id=node_id, firmware_id=firmware_id
        )
        if not isinstance(result, dict) or not isinstance(result.get("job_id"), str):
            raise HomeAssistantError(
                translation_domain=DOMAIN, translation_key="invalid_response",
                translation_placeholders={"command": "firmware_install"},
            )  # fmt: skip
        job_id: str = result["job_id"]
        if (ended := self._ended.get(job_id)) is not None:
            return ended
        waiter: asyncio.Future[dict[str, Any]] = self.hass.loop.create_future()
        self._waiters[job_id] = waiter
        if job_id not in self.jobs:  # shown as running until its first event
            self.jobs[job_id] = {"job_id": job_id, "node_id": node_id, "stage": "connecting"}
            self._notify_node(node_id)
        try:
            return await waiter
        finally:
            del self._waiters[job_id]

    @callback
    def subscribe_library(self, listener: Listener) -> CALLBACK_TYPE:
        """Call `listener` when the library was read again."""
        self._library_listeners.append(listener)
        return lambda: self._library_listeners.remove(listener)

    @callback
    def subscribe_node(self, node_id: str, listener: Listener) -> CALLBACK_TYPE:
        """Call `listener` when a job of the node progresses."""
        self._node_listeners[node_id].append(listener)
        return lambda: self._node_listeners[node_id].remove(listener)

    @callback
    def _notify_node(self, node_id: str | None) -> None:
        for listener in list(self._node_listeners.get(node_id or "", ())):
            listener()
