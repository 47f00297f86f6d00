"""The gateway's tasks and schedules as entities of the gateway device (main entry only): a
switch (enabled) and diagnostic sensors for the last run, its result and a schedule's next run.

`AutomationMirror` keeps the automations of the state dump and the `automation updated`,
`automation removed` and `automation run` events; the entities appear and go with them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity
from homeassistant.components.switch import SwitchEntity
from homeassistant.const import EntityCategory, Platform
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .helpers import gateway_identifier

if TYPE_CHECKING:
    from .hub import EdgeIoTHub

KINDS = frozenset({"task", "schedule"})  # forwards have no entities
RESULTS = ["ok", "error", "skipped", "cancelled"]  # a run's `result` (docs/protocol.md)
ENABLED, LAST_RUN, LAST_RESULT, NEXT_RUN = "enabled", "last_run", "last_result", "next_run"
PLATFORM_OF = {
    ENABLED: Platform.SWITCH,
    LAST_RUN: Platform.SENSOR,
    LAST_RESULT: Platform.SENSOR,
    NEXT_RUN: Platform.SENSOR,
}

type Adder = Callable[[Iterable[Entity]], None]


def _keys(automation: dict[str, Any]) -> set[str]:
    """The entities an automation has."""
    keys = {ENABLED, LAST_RUN, LAST_RESULT}
    return keys | {NEXT_RUN} if automation["kind"] == "schedule" else keys


class AutomationMirror:
    """The gateway's tasks and schedules with their run state, and which entities they have."""

    def __init__(self, hass: HomeAssistant, hub: EdgeIoTHub) -> None:
        self.hass = hass
        self.hub = hub
        self.automations: dict[str, dict[str, Any]] = {}
        self._adders: dict[Platform, Adder] = {}
        self._added: dict[str, set[str]] = defaultdict(set)  # automation id → entity keys
        self._listeners: dict[str, list[Callable[[], None]]] = defaultdict(list)

    def unique_id(self, automation_id: str, key: str) -> str:
        """An automation entity's unique id (ids cannot contain `:`)."""
        return f"{self.hub.gateway_id}.gateway.automation:{automation_id}:{key}"

    @callback
    def load(self, automations: Iterable[dict[str, Any]]) -> None:
        """A state dump: take its automations; entities of those gone are removed, also
        registry entries left from automations deleted while HA did not run."""
        fresh = {a["id"]: a for a in automations if a["kind"] in KINDS}
        for automation_id in set(self.automations) - set(fresh):
            self._remove(automation_id)
        self.automations = fresh
        registry = er.async_get(self.hass)
        prefix = f"{self.hub.gateway_id}.gateway.automation:"
        for entity in er.async_entries_for_config_entry(registry, self.hub.entry.entry_id):
            if entity.unique_id.startswith(prefix):
                automation_id, _, key = entity.unique_id.removeprefix(prefix).partition(":")
                if automation_id not in fresh or key not in _keys(fresh[automation_id]):
                    registry.async_remove(entity.entity_id)
        for automation_id in fresh:
            self._sync(automation_id)

    @callback
    def on_event(self, event: dict[str, Any]) -> None:
        """`automation updated`, `automation removed` or `automation run`."""
        match event["event"]:
            case "automation updated":
                self.update(event["automation"])
            case "automation removed":
                self._remove(event["id"])
            case "automation run":
                if (automation := self.automations.get(event["id"])) is not None:
                    state = automation.setdefault("state", {})
                    state["last_run"] = event["run"]
                    if "next_run" in event:
                        state["next_run"] = event["next_run"]
                    self._notify(event["id"])

    @callback
    def update(self, automation: dict[str, Any]) -> None:
        """A new or changed automation (an event, or a command's answer)."""
        automation_id = automation["id"]
        if automation["kind"] not in KINDS:  # now a forward: its entities go
            self._remove(automation_id)
            return
        self.automations[automation_id] = automation
        self._sync(automation_id)
        self._notify(automation_id)

    @callback
    def async_add_platform(self, platform: Platform, add: Adder) -> CALLBACK_TYPE:
        """A platform of the main entry is set up: add its entities now and as they come."""
        self._adders[platform] = add
        for automation_id in self.automations:
            self._sync(automation_id, platform)

        @callback
        def unload() -> None:
            self._adders.pop(platform, None)
            for keys in self._added.values():
                keys.difference_update(k for k, p in PLATFORM_OF.items() if p is platform)

        return unload

    @callback
    def readd(self, automation_id: str, key: str) -> None:
        """Add an entity again (its old object was removed to take a new name)."""
        self._added[automation_id].discard(key)
        if automation_id in self.automations:
            self._sync(automation_id)

    @callback
    def subscribe(self, automation_id: str, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` when the automation or its run state changes."""
        self._listeners[automation_id].append(listener)
        return lambda: self._listeners[automation_id].remove(listener)

    @callback
    def _notify(self, automation_id: str) -> None:
        for listener in list(self._listeners.get(automation_id, ())):
            listener()

    @callback
    def _sync(self, automation_id: str, only: Platform | None = None) -> None:
        """Add the entities the automation lacks, remove those it no longer has."""
        wanted = _keys(self.automations[automation_id])
        added = self._added[automation_id]
        if stale := added - wanted:
            self._remove_entities(automation_id, stale)
        by_platform: dict[Platform, list[Entity]] = defaultdict(list)
        for key in sorted(wanted - added):
            platform = PLATFORM_OF[key]
            if (only is None or platform is only) and platform in self._adders:
                added.add(key)
                by_platform[platform].append(ENTITY_CLASSES[key](self.hub, automation_id))
        for platform, entities in by_platform.items():
            self._adders[platform](entities)

    @callback
    def _remove(self, automation_id: str) -> None:
        self.automations.pop(automation_id, None)
        self._remove_entities(automation_id, self._added.pop(automation_id, set()))

    @callback
    def _remove_entities(self, automation_id: str, keys: set[str]) -> None:
        registry = er.async_get(self.hass)
        for key in keys:
            self._added[automation_id].discard(key)
            uid = self.unique_id(automation_id, key)
            if entity_id := registry.async_get_entity_id(PLATFORM_OF[key], DOMAIN, uid):
                registry.async_remove(entity_id)


class AutomationEntity(Entity):
    """An entity of one task or schedule, on the gateway device."""

    _attr_has_entity_name = True
    _attr_should_poll = False
    key: str

    def __init__(self, hub: EdgeIoTHub, automation_id: str) -> None:
        self.hub = hub
        self.automation_id = automation_id
        self._attr_unique_id = hub.automations.unique_id(automation_id, self.key)
        self._attr_device_info = DeviceInfo(identifiers={gateway_identifier(hub.gateway_id)})
        self._attr_translation_placeholders = {"name": self._name()}
        self._renaming = False

    def _name(self) -> str:
        return str(self.automation.get("name") or self.automation_id)

    @property
    def automation(self) -> dict[str, Any]:
        """The automation as last reported by the gateway."""
        return self.hub.automations.automations.get(self.automation_id, {})

    @property
    def run_state(self) -> dict[str, Any]:
        """Its `state` (docs/protocol.md `automation_set`)."""
        state = self.automation.get("state")
        return state if isinstance(state, dict) else {}

    @property
    def last_run(self) -> dict[str, Any]:
        """Its newest run, {} before the first."""
        run = self.run_state.get("last_run")
        return run if isinstance(run, dict) else {}

    @property
    def available(self) -> bool:
        return self.hub.connected and self.automation_id in self.hub.automations.automations

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(self.hub.subscribe_gateway(self.async_write_ha_state))
        self.async_on_remove(self.hub.automations.subscribe(self.automation_id, self._changed))

    @callback
    def _changed(self) -> None:
        if self._name() == self._attr_translation_placeholders["name"]:
            self.async_write_ha_state()
        elif not self._renaming:  # HA keeps a name once made: a new entity object takes it
            self._renaming = True
            self.hub.entry.async_create_task(self.hass, self._async_rename(), "rename automation")

    async def _async_rename(self) -> None:
        await self.async_remove()
        self.hub.automations.readd(self.automation_id, self.key)


class AutomationSwitch(AutomationEntity, SwitchEntity):
    """Whether the task or schedule is enabled."""

    key = ENABLED
    _attr_translation_key = "automation"

    @property
    def is_on(self) -> bool:
        return bool(self.automation.get("enabled"))

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        return {"automation_id": self.automation_id, "kind": self.automation.get("kind")}

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self._async_enable(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self._async_enable(False)

    async def _async_enable(self, enabled: bool) -> None:
        result = await self.hub.async_command(
            "automation_enable", id=self.automation_id, enabled=enabled
        )
        if isinstance(result, dict) and isinstance(result.get("automation"), dict):
            self.hub.automations.update(result["automation"])  # before its event arrives


def _timestamp(value: Any) -> datetime | None:
    return dt_util.utc_from_timestamp(value) if isinstance(value, int | float) else None


class AutomationSensor(AutomationEntity, SensorEntity):
    """A diagnostic figure of a task's or schedule's runs."""

    _attr_entity_category = EntityCategory.DIAGNOSTIC


class LastRunSensor(AutomationSensor):
    """When it last ran."""

    key = LAST_RUN
    _attr_device_class = SensorDeviceClass.TIMESTAMP
    _attr_translation_key = "automation_last_run"

    @property
    def native_value(self) -> datetime | None:
        return _timestamp(self.last_run.get("time"))


class LastResultSensor(AutomationSensor):
    """How its last run ended; the run's error and trigger as attributes."""

    key = LAST_RESULT
    _attr_device_class = SensorDeviceClass.ENUM
    _attr_options = RESULTS
    _attr_translation_key = "automation_last_result"

    @property
    def native_value(self) -> str | None:
        result = self.last_run.get("result")
        return result if result in RESULTS else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        run = self.last_run
        return {"error": run.get("error"), "trigger": (run.get("trigger") or {}).get("trigger")}


class NextRunSensor(AutomationSensor):
    """When a schedule runs next (unknown when it has ended or is disabled)."""

    key = NEXT_RUN
    _attr_device_class = SensorDeviceClass.TIMESTAMP
    _attr_translation_key = "automation_next_run"

    @property
    def native_value(self) -> datetime | None:
        return _timestamp(self.run_state.get("next_run"))


ENTITY_CLASSES: dict[str, Callable[[EdgeIoTHub, str], Entity]] = {
    ENABLED: AutomationSwitch,
    LAST_RUN: LastRunSensor,
    LAST_RESULT: LastResultSensor,
    NEXT_RUN: NextRunSensor,
}
