"""The live connection to one gateway: mirrors its state, keeps devices and entities in step."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.dispatcher import async_dispatcher_send

from . import limit
from .automation_entities import AutomationMirror
from .automations import notify_event
from .client import (
    CommandTimeout,
    EdgeIoTClient,
    EdgeIoTError,
    FailedCommand,
    InvalidAuth,
    InvalidState,
    WrongGateway,
)
from .const import (
    ATTR_DATA,
    ATTR_EVENT_TYPE,
    ATTR_NODE_ID,
    ATTR_SOURCE_ID,
    DOMAIN,
    EVENT_NODE,
    LOGGER,
    OPTION_FORGOTTEN,
    RECONNECT_MAX,
    RECONNECT_MIN,
)
from .devices import (
    follow_rename,
    move_node,
    prune_registry,
    register_gateway_device,
    register_node_device,
)
from .discovery import DISABLED_BY_DEFAULT, TELEMETRY_KEYS, EntityInfo, entity_infos
from .firmware import FirmwareState
from .helpers import field_key, node_identifier
from .partitions import CONF_PARTITION, Partitions, partition_entries
from .problems import LoopProblems
from .wrong_gateway import async_clear_wrong_gateway, async_raise_wrong_gateway

type Listener = Callable[[], None]
type EventListener = Callable[[str, dict[str, Any]], None]


def _size(infos: Iterable[EntityInfo]) -> int:
    """How many entities HA creates enabled for these (what HA's limit counts)."""
    return sum(1 for info in infos if info.kind not in DISABLED_BY_DEFAULT)


def signal_add_entities(entry_id: str, platform: str) -> str:
    """Dispatcher signal carrying new EntityInfo lists for one platform."""
    return f"{DOMAIN}_{entry_id}_add_{platform}"


class EdgeIoTHub:
    """Owns the client of one config entry; entities read state from here and subscribe."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry[Any], client: EdgeIoTClient) -> None:
        self.hass = hass
        self.entry = entry
        self.client = client
        self.gateway: dict[str, Any] = {}
        self.status: dict[str, Any] = {}  # processed, dropped, recorder figures
        self.providers: dict[str, bool] = {}  # provider name → connected
        self.alarms: dict[str, dict[str, Any]] = {}  # alarm task id → its state (alarm_list)
        self.automations = AutomationMirror(hass, self)  # tasks and schedules: their entities
        self.nodes: dict[str, dict[str, Any]] = {}
        self.fields: dict[str, dict[str, Any]] = {}
        self._node_fields: dict[str, list[str]] = defaultdict(list)  # node id → its field keys
        self.connected = False
        # The gateway this entry belongs to; another one answering at the address is refused.
        self._gateway_id: str = entry.unique_id or ""
        # node id → entity key → the EntityInfo of the entity added for it
        self._entities: dict[str, dict[str, EntityInfo]] = defaultdict(dict)
        self._definition_listeners: dict[tuple[str, str], list[Listener]] = defaultdict(list)
        # Nodes whose device the user deleted in HA; they come back when they are online again.
        self.forgotten: set[str] = set(entry.options.get(OPTION_FORGOTTEN, ()))
        self._budget = limit.EntityBudget(hass)
        # Which entry owns each node's device and entities (partitions.py); partition number →
        # the loaded partition entry (0, the main entry, is `entry`).
        self.partitions = Partitions(hass, entry)
        self._attached: dict[int, ConfigEntry[Any]] = {}
        self._main_loaded = False
        self._problems = LoopProblems(hass, entry.entry_id)
        self._field_listeners: dict[str, list[Listener]] = defaultdict(list)
        self._node_listeners: dict[str, list[Listener]] = defaultdict(list)
        self._event_listeners: dict[str, list[EventListener]] = defaultdict(list)
        self._gateway_listeners: list[Listener] = []
        self._listen_task: asyncio.Task[None] | None = None
        self.firmware = FirmwareState(hass, self)  # library and jobs, for updates and actions

    @property
    def gateway_id(self) -> str:
        """The gateway's id (also the config entry's unique id)."""
        return self._gateway_id

    @callback
    def owner_entry(self, node_id: str) -> ConfigEntry[Any] | None:
        """The config entry holding the node's device and entities: the main entry or one of
        its partition entries; None while that partition entry is not loaded."""
        partition = self.partitions.partition_of(node_id)
        return self.entry if not partition else self._attached.get(partition)

    async def async_command(
        self, command: str, errors: Mapping[str, str] | None = None, **args: Any
    ) -> Any:
        """Run a gateway command for an entity or action; failures become HomeAssistantError
        (`errors` maps gateway error codes to the exception's translation key)."""
        try:
            return await self.client.command(command, **args)
        except FailedCommand as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=(errors or {}).get(err.code, "command_failed"),
                translation_placeholders={"code": err.code, "message": err.message},
            ) from err
        except CommandTimeout as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="command_timeout",
                translation_placeholders={"command": command},
            ) from err
        except EdgeIoTError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="not_connected",
                translation_placeholders={"error": str(err)},
            ) from err

    async def async_set_field(
        self, node_id: str, source_id: str, field_id: str, value: Any
    ) -> None:
        """Send a checked value to a node's field."""
        await self.async_command(
            "set_field", node_id=node_id, source_id=source_id, field_id=field_id, value=value
        )

    # Setup and the connection loop ---------------------------------------------------------

    async def async_connect(self) -> None:
        """Connect, check the gateway id, load the full state; raises EdgeIoTError subclasses.

        Any failure leaves the socket closed, so the caller can simply retry.
        """
        await self.client.connect()
        try:
            found = self.client.gateway_id
            if not self._gateway_id:
                self._gateway_id = found
            if found != self._gateway_id:
                raise WrongGateway(self._gateway_id, found)
            await self.client.call("set_api_schema", schema_version=1)
            await self.client.enable_coalescing()
            result = await self.client.call("start_listening")
            self._apply_state(result["state"])
        except EdgeIoTError:
            await self.client.disconnect()
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            await self.client.disconnect()
            raise InvalidState(f"malformed state from the gateway: {err!r}") from err
        self.connected = True
        async_clear_wrong_gateway(self.hass, self.entry.entry_id)

    @callback
    def async_start_listening(self) -> None:
        """Run the receive loop (and reconnects) in the background."""
        self._listen_task = self.entry.async_create_background_task(
            self.hass, self._listen_forever(), f"{DOMAIN} {self.entry.entry_id} listener"
        )
        self.entry.async_on_unload(
            self.hass.bus.async_listen(
                dr.EVENT_DEVICE_REGISTRY_UPDATED, partial(follow_rename, self)
            )
        )

    async def async_stop(self) -> None:
        """Stop the loop and close the connection."""
        self._main_loaded = False
        self._problems.stop()
        await self.partitions.async_save()
        if self._listen_task is not None:
            self._listen_task.cancel()
            await asyncio.gather(self._listen_task, return_exceptions=True)
        await self.client.disconnect()

    async def _listen_forever(self) -> None:
        """Listen; on any failure back off and reconnect, until the entry unloads."""
        delay = RECONNECT_MIN
        while True:
            if self.connected:
                self.firmware.async_schedule_refresh()  # runs once listen below has started
                try:
                    await self.client.listen(self._on_event)
                except EdgeIoTError as err:
                    LOGGER.warning("Lost the connection to gateway %s: %s", self.gateway_id, err)
                except Exception:  # a malformed message must not end the listener for good
                    LOGGER.exception(
                        "Listening to gateway %s failed; reconnecting", self.gateway_id
                    )
                await self.client.disconnect()
                self._set_connected(False)
                delay = RECONNECT_MIN
            await asyncio.sleep(delay)
            try:
                await self.async_connect()
            except InvalidAuth:
                LOGGER.error("Gateway %s refused the token; starting reauthentication",
                             self.gateway_id)  # fmt: skip
                self.entry.async_start_reauth(self.hass)
                return
            except WrongGateway as err:
                LOGGER.debug("Reconnect to gateway %s refused: %s", self.gateway_id, err)
                async_raise_wrong_gateway(self.hass, self.entry.entry_id, err, self.client.url)
            except EdgeIoTError as err:
                LOGGER.debug("Reconnect to gateway %s failed: %s", self.gateway_id, err)
            except Exception:  # whatever it is, keep retrying: never stay stuck
                LOGGER.exception("Unexpected error reconnecting to gateway %s", self.gateway_id)
                await self.client.disconnect()
            else:
                LOGGER.info("Reconnected to gateway %s", self.gateway_id)
                self._set_connected(True)
                continue
            delay = min(delay * 2, RECONNECT_MAX)

    @callback
    def _notify_gateway(self) -> None:
        for listener in list(self._gateway_listeners):
            listener()

    @callback
    def _set_providers(self, providers: Any) -> None:
        """Providers as the gateway pushes them (`gateway status`): no polling."""
        self.providers = {p["name"]: bool(p["connected"]) for p in providers}

    @callback
    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        if not connected:
            self.firmware.async_connection_lost()
        for listeners in [*self._node_listeners.values(), self._gateway_listeners]:
            for listener in list(listeners):
                listener()

    # State -----------------------------------------------------------------------------------

    @callback
    def _apply_state(self, state: dict[str, Any]) -> None:
        """Take a full state dump (first connect or reconnect) and reconcile with HA."""
        nodes = state["nodes"]
        fresh = {node["id"]: node for node in nodes}
        # A malformed node raises here, before anything changes.
        sizes = {node["id"]: _size(entity_infos(node)) for node in nodes}
        self.gateway = state["gateway"]
        self.status = state["status"]
        self._problems.update(self.gateway_id, self.status.get("problems", []))
        self._budget.load(self.entry.entry_id, self.gateway_id)
        self._set_providers(self.gateway.get("providers", ()))
        self.alarms = {alarm["id"]: alarm for alarm in state.get("alarms", ())}
        register_gateway_device(
            self.hass, self.entry, self.gateway_id, self.gateway, self.client.base_url
        )
        self.automations.load(state.get("automations", ()))
        for node_id in set(self.nodes) - set(fresh):
            self._remove_node(node_id)
        self.partitions.assign_dump(self.gateway_id, sizes, self._budget.limited)
        for node in nodes:
            self._upsert_node(node)
        for partition, entry in [(0, self.entry), *self._attached.items()]:
            self._prune(partition, entry)
        self._sync_partitions()

    @callback
    def _prune(self, partition: int, entry: ConfigEntry[Any]) -> None:
        nodes = self.partitions.nodes_of(partition)
        owned = {n: self._entities[n] for n in nodes if n in self.nodes}
        prune_registry(self.hass, entry, self.gateway_id, self.nodes, owned)

    @callback
    def _sync_partitions(self) -> None:
        if self._main_loaded:
            self.partitions.async_sync_entries()

    @callback
    def async_main_loaded(self) -> None:
        """The main entry is loaded: create missing partition entries, (re)load the others."""
        self._main_loaded = True
        self._sync_partitions()
        for entry in partition_entries(self.hass, self.entry.entry_id).values():
            if entry.state is not ConfigEntryState.LOADED and entry.disabled_by is None:
                self.hass.config_entries.async_schedule_reload(entry.entry_id)

    @callback
    def async_attach_partition(self, entry: ConfigEntry[Any]) -> None:
        """A partition entry is being set up: give it its nodes' devices (moved from another
        entry of the gateway if need be) and entities, before its platforms load."""
        partition = int(entry.data[CONF_PARTITION])
        self._attached[partition] = entry
        self._budget.load(entry.entry_id, self.gateway_id)
        for node_id in self.partitions.nodes_of(partition):
            node = self.nodes.get(node_id)
            if node is None or node_id in self.forgotten:
                continue
            self._budget.forget(move_node(self.hass, entry, self.gateway_id, node_id))
            register_node_device(
                self.hass, entry, self.gateway_id, node,
                sync_name=node.get("name_by_user") is not None, main_entry_id=self.entry.entry_id,
            )  # fmt: skip
            self._add_missing_entities(node)
        self._prune(partition, entry)
        self._budget.report(self.entry.entry_id, self.gateway_id)

    @callback
    def async_detach_partition(self, entry: ConfigEntry[Any]) -> None:
        """A partition entry unloaded: its nodes wait until it is loaded again."""
        partition = int(entry.data[CONF_PARTITION])
        if self._attached.get(partition) is entry:
            del self._attached[partition]

    @callback
    def _on_event(self, event: dict[str, Any]) -> None:
        match event["event"]:
            case "field value":
                key = field_key(event["node_id"], event["source_id"], event["field_id"])
                if (field := self.fields.get(key)) is not None:
                    field["value"], field["updated"] = event["value"], event["updated"]
                    for listener in list(self._field_listeners.get(key, ())):
                        listener()
            case "node status":
                if (node := self.nodes.get(event["node_id"])) is not None:
                    for item in ("online", "battery", "rssi", "last_seen"):
                        node[item] = event[item]
                    if node["id"] in self.forgotten:
                        if node["online"]:
                            self._upsert_node(node)
                        return
                    self._add_missing_entities(node)
                    for listener in list(self._node_listeners.get(node["id"], ())):
                        listener()
            case "node added" | "node updated":
                self._upsert_node(event["node"])
            case "node removed":
                self._remove_node(event["node_id"])
            case "node event":
                self._node_event(event)
            case "notify":
                notify_event(self.hass, event)
            case "firmware progress":
                self.firmware.async_on_progress(event)
            case "alarm updated":
                self.alarms[event["alarm"]["id"]] = event["alarm"]
                self._notify_gateway()
            case "automation updated" | "automation run":
                self.automations.on_event(event)
            case "automation removed":
                self.automations.on_event(event)
                if self.alarms.pop(event["id"], None) is not None:
                    self._notify_gateway()
            case "gateway status":
                self.status = event["status"]
                if "providers" in self.status:
                    self._set_providers(self.status["providers"])
                self._problems.update(self.gateway_id, self.status.get("problems", []))
                self._notify_gateway()

    @callback
    def _upsert_node(self, node: dict[str, Any]) -> None:
        infos = {info.key: info for info in entity_infos(node)}  # raises before any change
        node_id = node["id"]
        previous = self.nodes.get(node_id)
        self.nodes[node_id] = node
        if node_id in self.forgotten:
            if not node.get("online"):
                return  # deleted in HA: stays out of HA until it is online again
            self._remember(node_id)
        self._forget_fields(node_id)
        keys = self._node_fields[node_id]
        for source in node["sources"]:
            for field in source["fields"]:
                key = field_key(node_id, source["id"], field["id"])
                self.fields[key] = field
                keys.append(key)
        if self.partitions.assign(node_id, _size(infos.values())):
            self._sync_partitions()
        if (owner := self.owner_entry(node_id)) is None:
            return  # its partition entry is not loaded yet: done when it is (attach)
        user_name = node.get("name_by_user")
        if previous is None:  # first sight: a name the gateway has wins
            sync_name = user_name is not None
        else:  # afterwards only a change on the gateway overrides HA's
            sync_name = previous.get("name_by_user") != user_name
        register_node_device(
            self.hass, owner, self.gateway_id, node,
            sync_name=sync_name, main_entry_id=self.entry.entry_id,
        )  # fmt: skip
        added = self._entities[node_id]
        # Gone, or now another platform (a field became writable): the old entity goes.
        stale = {
            key
            for key, info in added.items()
            if key not in TELEMETRY_KEYS and infos.get(key) != info
        }
        if stale:
            self._remove_entities(node_id, stale)
        # A changed definition (name, unit, range, options ...) rebuilds the entity.
        for key, info in infos.items():
            if key in added and added[key].definition != info.definition:
                added[key] = info
                for listener in list(self._definition_listeners.get((node_id, key), ())):
                    listener()
        self._add_missing_entities(node)
        # Existing entities re-read their (possibly changed) field.
        for listener in list(self._node_listeners.get(node_id, ())):
            listener()

    @callback
    def _add_missing_entities(self, node: dict[str, Any]) -> None:
        node_id = node["id"]
        if (owner := self.owner_entry(node_id)) is None:
            return
        added = self._entities[node_id]
        new = [info for info in entity_infos(node) if info.key not in added]
        if not new:
            return
        unique_ids = {info.key: f"{self.gateway_id}.{node_id}.{info.key}" for info in new}
        by_platform: dict[str, list[EntityInfo]] = defaultdict(list)
        for info in self._budget.admit(owner.entry_id, new, unique_ids):
            added[info.key] = info
            by_platform[info.platform].append(info)
        for platform, infos in by_platform.items():
            async_dispatcher_send(self.hass, signal_add_entities(owner.entry_id, platform), infos)
        self._budget.report(self.entry.entry_id, self.gateway_id)

    @callback
    def _remove_entities(self, node_id: str, keys: set[str]) -> None:
        registry = er.async_get(self.hass)
        unique_ids = set()
        for key in keys:
            info = self._entities[node_id].pop(key)
            unique_ids.add(uid := f"{self.gateway_id}.{node_id}.{key}")
            if entity_id := registry.async_get_entity_id(info.platform, DOMAIN, uid):
                registry.async_remove(entity_id)
        self._budget.forget(unique_ids)

    @callback
    def _forget_fields(self, node_id: str) -> None:
        for key in self._node_fields.pop(node_id, ()):
            self.fields.pop(key, None)

    @callback
    def async_forget_node(self, node_id: str) -> None:
        """The user deleted the node's device in HA: keep it out of HA and offer (repair issue)
        to remove it from the gateway too, which HA never does on its own."""
        self._forget_fields(node_id)
        self._entities.pop(node_id, None)
        self._set_forgotten(self.forgotten | {node_id})
        node = self.nodes.get(node_id, {})
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._forgotten_issue(node_id),
            is_fixable=True,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="node_forgotten",
            translation_placeholders={"node": node.get("name_by_user") or node.get("name", node_id),
                                      "node_id": node_id, "gateway": self.gateway_id},
            data={"entry_id": self.entry.entry_id, "node_id": node_id},
        )  # fmt: skip

    def _forgotten_issue(self, node_id: str) -> str:
        return f"node_forgotten_{self.entry.entry_id}_{node_id}"

    @callback
    def _remember(self, node_id: str) -> None:
        self._set_forgotten(self.forgotten - {node_id})
        ir.async_delete_issue(self.hass, DOMAIN, self._forgotten_issue(node_id))

    @callback
    def _set_forgotten(self, forgotten: set[str]) -> None:
        self.forgotten = forgotten
        self.hass.config_entries.async_update_entry(
            self.entry, options={**self.entry.options, OPTION_FORGOTTEN: sorted(forgotten)}
        )

    @callback
    def _remove_node(self, node_id: str) -> None:
        if node_id in self.forgotten:
            self._remember(node_id)
        prefix = f"{self.gateway_id}.{node_id}."
        self._budget.forget({uid for uid in self._budget.limited if uid.startswith(prefix)})
        self._budget.report(self.entry.entry_id, self.gateway_id)
        owner = self.owner_entry(node_id)
        self.partitions.release(node_id)
        self.nodes.pop(node_id, None)
        self._forget_fields(node_id)
        self._entities.pop(node_id, None)
        registry = dr.async_get(self.hass)
        identifier = node_identifier(self.gateway_id, node_id)
        device = owner and registry.async_get_device_by_identifier(identifier, owner.entry_id)
        if device:
            registry.async_remove_device(device.id)
        self._sync_partitions()

    @callback
    def _node_event(self, event: dict[str, Any]) -> None:
        registry = dr.async_get(self.hass)
        identifier = node_identifier(self.gateway_id, event["node_id"])
        owner = self.owner_entry(event["node_id"])
        device = owner and registry.async_get_device_by_identifier(identifier, owner.entry_id)
        data = {
            "device_id": device.id if device else None,
            ATTR_NODE_ID: event["node_id"],
            ATTR_SOURCE_ID: event["source_id"],
            ATTR_EVENT_TYPE: event["event_type"],
            ATTR_DATA: event["data"],
        }
        self.hass.bus.async_fire(EVENT_NODE, data)
        key = f"{event['node_id']}.{event['source_id']}"
        for listener in list(self._event_listeners.get(key, ())):
            listener(event["event_type"], event["data"])

    @callback
    def current_infos(self, entry_id: str, platform: str) -> list[EntityInfo]:
        """Entities of a platform in entry `entry_id` known so far (its platform being set up
        adds these)."""
        owners = {n: owner.entry_id for n, owner in [(0, self.entry), *self._attached.items()]}
        return [
            info
            for node_id, infos in self._entities.items()
            if owners.get(self.partitions.partition_of(node_id) or 0) == entry_id
            for info in infos.values()
            if info.platform == platform
        ]

    @callback
    def async_readd(self, node_id: str, key: str) -> None:
        """Add the entity for `key` again (after its old object was removed to rebuild it)."""
        info = self._entities.get(node_id, {}).get(key)
        if info is not None and (owner := self.owner_entry(node_id)) is not None:
            async_dispatcher_send(
                self.hass, signal_add_entities(owner.entry_id, info.platform), [info]
            )

    @callback
    def subscribe_definition(self, node_id: str, key: str, listener: Listener) -> CALLBACK_TYPE:
        """Call `listener` when the definition behind entity `key` of the node changes."""
        self._definition_listeners[node_id, key].append(listener)
        return lambda: self._definition_listeners[node_id, key].remove(listener)

    # Subscriptions for entities -----------------------------------------------------------------

    @callback
    def subscribe_field(self, key: str, listener: Listener) -> CALLBACK_TYPE:
        """Call `listener` when the field's value changes."""
        self._field_listeners[key].append(listener)
        return lambda: self._field_listeners[key].remove(listener)

    @callback
    def subscribe_node(self, node_id: str, listener: Listener) -> CALLBACK_TYPE:
        """Call `listener` when the node's status or definition, or the connection, changes."""
        self._node_listeners[node_id].append(listener)
        return lambda: self._node_listeners[node_id].remove(listener)

    @callback
    def subscribe_gateway(self, listener: Listener) -> CALLBACK_TYPE:
        """Call `listener` when the gateway's status figures or the connection change."""
        self._gateway_listeners.append(listener)
        return lambda: self._gateway_listeners.remove(listener)

    @callback
    def subscribe_events(
        self, node_id: str, source_id: str, listener: EventListener
    ) -> CALLBACK_TYPE:
        """Call `listener(event_type, data)` on each event of a node's source."""
        key = f"{node_id}.{source_id}"
        self._event_listeners[key].append(listener)
        return lambda: self._event_listeners[key].remove(listener)
