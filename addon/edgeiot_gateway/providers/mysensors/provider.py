"""MySensors provider: a MySensors 2.x gateway over serial, TCP (Ethernet gateway) or MQTT.

Only the transport differs between the three; every message goes through one handler:

- presentation (S_*) → a source per child sensor, with the fields its type offers; V_* types a
  child sends later add fields. Nodes are announced as `<node_id_prefix>-<n>` (`ms-12`), once
  per burst of presentation (re-announces are debounced by `announce_delay`);
- set → field values; req → answered with the last value known for it (reported by the node or
  set by the gateway); the gateway's sets ask for an echo when the caller wants one (`ack`,
  default `request_ack`); an inbound echo (ack bit) is the node confirming our message, never a
  request to answer;
- internal: I_ID_REQUEST gets a free node id (1-254, kept in the state file before it is sent),
  addressed to the token the node sent as its child id; I_CONFIG the unit system, I_TIME the
  time; battery, heartbeat and sketch name/version update the node; I_GATEWAY_READY starts a
  discovery; log messages are counted;
- smart sleep: commands for a node that announced sleeping (I_PRE_SLEEP_NOTIFICATION) wait in a
  queue (newest value per child and type) and go out, in order and once, at its next
  I_PRE_SLEEP_NOTIFICATION; within the window it then listens they are sent at once;
- stream: OTA firmware requests are answered by `ota` (ota_jobs.py) for a node that
  `install_firmware` assigned library firmware to; others are counted and left unanswered.

Bad input is dropped with a `mysensors_*` reason, never raised, and leaves nothing behind (a
node whose only messages were rejected is not created). The serial and TCP connections
are reopened with backoff; the MQTT client reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from ...commands import (
    INVALID_VALUE,
    NOT_FOUND,
    PROVIDER_UNAVAILABLE,
    UNSUPPORTED_ACTION,
    CommandError,
)
from ...messages import FieldValues, NodeAnnounced, NodeEvent, NodeHeartbeat
from ...models import InvalidValueError, Node, Value
from ...supervision import LoopHealth
from ..base import Provider, ProviderContext, register_provider
from . import protocol as ms
from . import values as mv
from .definition import COVER_ACTION, COVER_VALUES, INTERNAL_ACTIONS, build_node
from .nodes import UNIT_MAX, Child, IdAssigner, NodeState, int_payload, text
from .options import OPTIONS_SCHEMA
from .ota import check_entry, firmware_reply, load_image
from .ota_jobs import OtaJobs, Progress
from .state_file import StateFile
from .transport import VERSION_REQUEST, MqttTransport, StreamTransport, Transport

_LOGGER = logging.getLogger(__name__)


# Inbound items handled per event-loop turn, and the inbox size at which reading pauses.
DRAIN_BATCH = 1000
INBOX_HIGH = 20_000
INBOX_LOW = 2_000
SAVE_DELAY = 1.0  # seconds: state changes are written at most this often
ANNOUNCE_MAX_WAIT = 10  # announce_delays: a node that keeps changing is announced anyway
MAX_SOURCES = 64  # the node definition schema's limit

SOURCE_ID = re.compile(r"^child-(\d{1,3})$")

_C = ms.Command
_I = ms.Internal
_S = ms.Stream
DISCOVER = ms.Message(ms.AUTO_NODE, ms.NODE_CHILD, _C.INTERNAL, False, _I.I_DISCOVER_REQUEST)


@register_provider
class MySensorsProvider(Provider):
    """A MySensors 2.x gateway (serial, Ethernet/TCP or MQTT) and the nodes behind it."""

    kind = "mysensors"

    def __init__(self, name: str, context: ProviderContext, options: dict[str, Any]) -> None:
        options = OPTIONS_SCHEMA(dict(options))
        super().__init__(name, context, options)
        self.metric = options["unit_system"] == "metric"
        self.ota = OtaJobs(options["ota_timeout"], options["ota_idle_timeout"])
        self.state_path = self._state_path(context, name, options)
        self.health: LoopHealth = context.health
        self._ack = bool(options["request_ack"])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nodes: dict[int, NodeState] = {}
        self._by_id: dict[str, NodeState] = {}
        self._specs = mv.SpecCache(metric=self.metric)
        self._ids = IdAssigner()
        self._rejected = False
        self._inbox: deque[bytes | tuple[str, bytes]] = deque()
        self._drain_pending = False
        self._paused = False
        self._connected_reported = False
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._state = StateFile(self.state_path, lambda: self._nodes, SAVE_DELAY)
        self._transport: Transport
        if options["transport"] == "mqtt":
            self._transport = MqttTransport(self, options, context.gateway_id)
        else:
            self._transport = StreamTransport(self, options)
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "received", "sent", "announces", "acks", "log_messages", "heartbeats",
                "requests_answered", "requests_unanswered", "ids_assigned", "queued",
                "flushed", "gateway_ready", "firmware_requests", "firmware_unanswered",
                "ignored", "echoes_unmatched",
            ),
            0,
        )  # fmt: skip
        self.gateway_version: str | None = None

    @staticmethod
    def _state_path(context: ProviderContext, name: str, options: dict[str, Any]) -> Path:
        if options.get("state_file"):
            return Path(options["state_file"]).expanduser().resolve()
        return (context.data_dir / f"mysensors-{name}.json").resolve()

    # Provider interface ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._transport.connected

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for node in await asyncio.to_thread(self._state.load, self.options["node_id_prefix"]):
            self._nodes[node.number] = node
            self._by_id[node.node_id] = node
        _LOGGER.info(
            "MySensors provider %s: %s, %d known nodes, state in %s",
            self.name, self._transport.origin, len(self._nodes), self.state_path,
        )  # fmt: skip
        await self._transport.start()

    async def stop(self) -> None:
        self._stopping = True
        self.ota.cancel_all("the gateway stopped, which cancels the update")
        await self._transport.stop()
        while self._inbox:  # what arrived before the transport closed
            self._drain()
        for node in self._nodes.values():
            if node.announce_handle is not None:
                self._announce(node)  # the processor is still running: keep what was presented
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._state.close()
        except OSError:
            _LOGGER.exception("MySensors provider %s could not save %s", self.name, self.state_path)

    async def set_field(self, node: Node, source_id: str, field_id: str, value: Value) -> None:
        await self.set_field_echo(node, source_id, field_id, value, self._ack)

    async def set_field_echo(
        self, node: Node, source_id: str, field_id: str, value: Value, echo: bool
    ) -> None:
        """A C_SET that asks the node for an echo (`echo`) or not."""
        state = self._state_of(node)
        match = SOURCE_ID.match(source_id)
        value_type = mv.VALUE_TYPES.get(field_id)
        child = state.children.get(int(match.group(1))) if match else None
        if match is None or value_type is None or child is None:
            raise CommandError(
                NOT_FOUND, f"{node.id} has no MySensors value {source_id}/{field_id}"
            )
        payload = mv.encode_value(value)
        try:
            ms.check_payload(payload, ms.MAX_PAYLOAD_BYTES)
        except ms.ParseError as err:
            raise CommandError(INVALID_VALUE, f"not a MySensors value: {err}") from None
        child_id = int(match.group(1))
        message = ms.Message(state.number, child_id, _C.SET, echo, value_type, payload)
        self._command(state, message)
        child.values[value_type] = payload  # sent or queued: what a req of the node gets now
        self._persist_soon()

    async def node_action(self, node: Node, action: str) -> None:
        state = self._state_of(node)
        internal = INTERNAL_ACTIONS.get(action)
        if internal is not None:
            kind, payload = internal
            reply = self._internal_reply(kind) if payload is None else payload
            message = ms.Message(state.number, ms.NODE_CHILD, _C.INTERNAL, False, kind, reply)
        elif (cover := COVER_ACTION.match(action)) and int(cover.group(1)) in state.children:
            value_type = COVER_VALUES[cover.group(2)]
            message = ms.Message(state.number, int(cover.group(1)), _C.SET, self._ack,
                                 value_type, "1")  # fmt: skip
        else:
            raise CommandError(UNSUPPORTED_ACTION, f"{node.id} has no MySensors action {action}")
        self._command(state, message)

    def check_firmware(self, node: Node, entry: dict[str, Any]) -> None:
        check_entry(entry)

    async def install_firmware(
        self, node: Node, entry: dict[str, Any], path: Path, progress: Progress
    ) -> None:
        """OTA through the node's bootloader (ota_jobs.py); returns once it runs the firmware."""
        state = self._state_of(node)
        image = await asyncio.to_thread(load_image, entry, path)
        reboot = ms.Message(state.number, ms.NODE_CHILD, _C.INTERNAL, False, _I.I_REBOOT, "")
        await self.ota.install(state.node_id, image, lambda: self._command(state, reboot), progress)

    def diagnostics(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "transport": self.options["transport"],
            "origin": self._transport.origin,
            "nodes": len(self._nodes),
            "inbox": len(self._inbox),
            "sleep_queue": sum(len(n.queue) for n in self._nodes.values()),
            "ota_jobs": len(self.ota),
            "reconnects": self._transport.reconnects,
            "gateway_version": self.gateway_version,
            **self.stats,
        }

    # Transport callbacks (event loop) ----------------------------------------------------------

    def connection(self, connected: bool) -> None:
        if connected == self._connected_reported:
            return
        self._connected_reported = connected
        _LOGGER.info("MySensors provider %s %s %s", self.name,
                     "connected to" if connected else "lost", self._transport.origin)  # fmt: skip
        self.context.connection_changed(self.name, connected)
        if connected:
            self._send(VERSION_REQUEST)  # the gateway answers with its library version

    def feed(self, items: list[bytes]) -> None:
        """Lines from a serial/TCP connection."""
        self._inbox.extend(items)
        if len(self._inbox) > INBOX_HIGH and not self._paused:
            self._paused = True
            self._transport.pause()
        if not self._drain_pending and self._loop is not None:
            self._drain_pending = True
            self._loop.call_soon(self._drain)

    def feed_threadsafe(self, item: tuple[str, bytes]) -> None:
        """An MQTT message, from paho's network thread."""
        self._inbox.append(item)
        if not self._drain_pending and self._loop is not None and not self._loop.is_closed():
            self._drain_pending = True
            self._loop.call_soon_threadsafe(self._drain)

    def drop_raw(self, reason: str, raw: bytes, detail: str) -> None:
        """Input the transport itself rejects (over-long lines)."""
        self.context.drops.drop(reason, self._transport.origin, f"{detail}: {raw[:60]!r}")

    def _drain(self) -> None:
        self._drain_pending = False
        inbox, handle, drop = self._inbox, self._handle, self.context.drops.drop
        count = min(len(inbox), DRAIN_BATCH)
        for _ in range(count):
            item = inbox.popleft()
            origin = self._transport.origin
            try:
                if isinstance(item, bytes):
                    message = ms.parse_line(item)
                    if message is None:
                        continue  # a blank line (CR LF line ends, a gateway's empty print)
                else:
                    origin = f"mysensors:{item[0]}"
                    message = ms.parse_topic(self.options["out_prefix"], *item)
                handle(message)
            except ms.ParseError as err:
                raw = item if isinstance(item, bytes) else item[1]
                drop(err.reason, origin, f"{err}: {raw[:60]!r}")
            except Exception as err:  # a bug must not stop the stream: count it, log it
                _LOGGER.exception("MySensors provider %s failed on %r", self.name, item)
                drop("internal_error", origin, repr(err))
        self.stats["received"] += count
        if inbox and not self._drain_pending and self._loop is not None:
            self._drain_pending = True
            self._loop.call_soon(self._drain)
        if self._paused and len(inbox) < INBOX_LOW:
            self._paused = False
            self._transport.resume()

    # The message handler -----------------------------------------------------------------------

    def _handle(self, message: ms.Message) -> None:
        if message.node_id == ms.AUTO_NODE:
            self._unassigned(message)
            return
        node = self._nodes.get(message.node_id)
        fresh = node is None
        if node is None:  # kept only if the message is accepted
            node = NodeState(message.node_id, f"{self.options['node_id_prefix']}-{message.node_id}")
        self._rejected = False
        command = message.command
        if message.ack:
            self._on_echo(node, message)
        elif command == _C.SET:
            self._on_set(node, message)
        elif command == _C.INTERNAL:
            self._on_internal(node, message)
        elif command == _C.PRESENTATION:
            self._on_presentation(node, message)
        elif command == _C.REQ:
            self._on_req(node, message)
        else:
            self._on_stream(node, message)
        if fresh and not self._rejected:
            self._register(node)

    def _on_echo(self, node: NodeState, message: ms.Message) -> None:
        """The node's echo of a message we sent: confirmed, never answered again."""
        if message.command == _C.SET and node.echoed(message):
            self.stats["acks"] += 1
        else:
            self.stats["echoes_unmatched"] += 1
        if message.command == _C.SET and message.child_id != ms.NODE_CHILD:
            self._on_set(node, message)  # the value the node has now
        else:
            self._alive(node)

    def _unassigned(self, message: ms.Message) -> None:
        """A message from node 255: a node without an id."""
        if message.command != _C.INTERNAL:
            detail = f"node 255 (no id yet) sent {message.type_name()}"
            self.context.drops.drop(ms.INVALID_NODE, self._transport.origin, detail)
        elif message.ack:
            self.stats["echoes_unmatched"] += 1  # an echo is never a request
        elif message.type == _I.I_ID_REQUEST:
            self._assign_id(message.child_id)
        else:
            self.stats["ignored"] += 1  # e.g. a parent search before it has an id

    def _on_set(self, node: NodeState, message: ms.Message) -> None:
        if message.child_id == ms.NODE_CHILD:
            self._drop(ms.INVALID_NODE, message, "child 255 is the node itself")
            return
        value_type, payload = message.type, message.payload
        known = node.children.get(message.child_id)
        spec = self._specs.spec(known.sensor_type if known else None, value_type)
        value: object = None
        if spec.event is None and value_type != ms.SetReq.V_UNIT_PREFIX:
            value = mv.decode_value(spec.type, payload)
            try:
                self._specs.probe(spec).coerce(value)
            except InvalidValueError as err:
                self._drop(ms.INVALID_PAYLOAD, message, str(err))
                return
        child = self._child(node, message)
        if child is None:
            return
        source_id = f"child-{message.child_id}"
        if value_type == ms.SetReq.V_UNIT_PREFIX:
            child.values[value_type] = payload
            unit = text(payload, UNIT_MAX)
            if unit != child.unit:
                child.unit = unit
                self._changed(node)
            self._persist_soon()
            self._alive(node)
            return
        if spec.event is not None:
            sensor = child.sensor_spec()
            if spec.event not in child.events and not (sensor and spec.event in sensor.events):
                child.events.append(spec.event)
                self._changed(node)
            self._ready(node)
            event = NodeEvent(node.node_id, source_id, spec.event, {"value": payload})
            self.context.submit(event, self._transport.origin)
            return
        child.values[value_type] = payload
        self._persist_soon()
        if value_type not in child.value_types:
            child.value_types.append(value_type)
            self._changed(node)
        self._ready(node)
        values = {mv.FIELD_IDS[value_type]: value}
        self.context.submit(FieldValues(node.node_id, source_id, values), self._transport.origin)

    def _on_req(self, node: NodeState, message: ms.Message) -> None:
        if message.child_id == ms.NODE_CHILD:
            self._drop(ms.INVALID_NODE, message, "req for child 255")
            return
        child = node.children.get(message.child_id)
        payload = child.values.get(message.type) if child else None
        if payload is None:
            self.stats["requests_unanswered"] += 1  # nothing known: the node keeps its default
        else:
            self.stats["requests_answered"] += 1
            self._send(ms.Message(node.number, message.child_id, _C.SET, False, message.type,
                                  payload))  # fmt: skip
        self._alive(node)

    def _on_presentation(self, node: NodeState, message: ms.Message) -> None:
        sensor_type = message.type
        if message.child_id == ms.NODE_CHILD:
            if sensor_type not in mv.NODE_TYPES:
                self._drop(ms.INVALID_PAYLOAD, message, "child 255 must present a node type")
                return
            node.library = text(message.payload)  # the MySensors library version
            node.repeater = sensor_type == ms.Presentation.S_ARDUINO_REPEATER_NODE
            self._changed(node)
            return
        if sensor_type in mv.NODE_TYPES:
            self._drop(ms.INVALID_PAYLOAD, message, "a node type presented for a child")
            return
        child = self._child(node, message)
        if child is None:
            return
        primary = mv.SENSOR_SPECS[sensor_type].values
        child.sensor_type = sensor_type
        child.description = text(message.payload)
        child.value_types = [*primary, *(v for v in child.value_types if v not in primary)]
        self._changed(node)

    def _on_internal(self, node: NodeState, message: ms.Message) -> None:
        kind, payload = message.type, message.payload
        reply: str | None = None
        if kind == _I.I_BATTERY_LEVEL:
            level = int_payload(payload)
            if level is None or not 0 <= level <= 100:
                self._drop(ms.INVALID_PAYLOAD, message, "battery level is not 0-100")
                return
            self._alive(node, battery=level)
            return
        if kind in (_I.I_LOG_MESSAGE, _I.I_DEBUG):
            self.stats["log_messages"] += 1
            _LOGGER.debug("MySensors %s node %d: %s", self.name, node.number, payload)
            return
        if kind in (_I.I_TIME, _I.I_CONFIG):
            reply = self._internal_reply(kind)
        elif kind in (_I.I_SKETCH_NAME, _I.I_SKETCH_VERSION):
            shown = text(payload)
            attribute = "sketch_name" if kind == _I.I_SKETCH_NAME else "sketch_version"
            if getattr(node, attribute) != shown:
                setattr(node, attribute, shown)
                self._changed(node)
        elif kind == _I.I_GATEWAY_READY:
            self.stats["gateway_ready"] += 1
            _LOGGER.info("MySensors gateway %s ready: %s", self._transport.origin, payload)
            self._send(DISCOVER)  # nodes answer with I_DISCOVER_RESPONSE: they are alive
            return
        elif kind == _I.I_VERSION and node.number == ms.GATEWAY_NODE:
            self.gateway_version = text(payload)
            return
        elif kind == _I.I_HEARTBEAT_RESPONSE:
            self.stats["heartbeats"] += 1
        elif kind == _I.I_PRE_SLEEP_NOTIFICATION:
            # The node listens for `payload` ms, then sleeps: send it what waited, now.
            self._mark_sleeper(node)
            window = max(int_payload(payload) or 0, 0) / 1000
            node.awake_until = time.monotonic() + window
            if node.queue:
                self._flush_queue(node)
        elif kind == _I.I_POST_SLEEP_NOTIFICATION:
            self._mark_sleeper(node)
        elif kind == _I.I_LOCKED:
            _LOGGER.warning("MySensors node %d is locked: %s", node.number, payload)
        if reply is not None:
            self._send(ms.Message(node.number, ms.NODE_CHILD, _C.INTERNAL, False, kind, reply))
        self._alive(node)

    def _on_stream(self, node: NodeState, message: ms.Message) -> None:
        """Stream messages: OTA firmware (ST_SOUND/ST_IMAGE are not supported)."""
        if message.type in (_S.ST_FIRMWARE_CONFIG_REQUEST, _S.ST_FIRMWARE_REQUEST):
            self.stats["firmware_requests"] += 1
            running = node.running
            reply = firmware_reply(self.ota, node, message)  # raises ParseError
            if node.running != running:
                self._changed(node)  # its `firmware` is the type.version it runs
            if reply is None:
                self.stats["firmware_unanswered"] += 1
            else:
                self._send(reply)
        else:
            self.stats["ignored"] += 1
        self._alive(node)

    # Node state ---------------------------------------------------------------------------------

    def _add_node(self, number: int) -> NodeState:
        return self._register(NodeState(number, f"{self.options['node_id_prefix']}-{number}"))

    def _register(self, node: NodeState) -> NodeState:
        self._nodes[node.number] = node
        self._by_id[node.node_id] = node
        self._persist_soon()
        return node

    def _internal_reply(self, kind: int) -> str:
        """What the controller answers to (or sends as) I_TIME and I_CONFIG."""
        if kind == _I.I_CONFIG:
            return "M" if self.metric else "I"
        now = time.time()
        if self.options["local_time"]:
            now += time.localtime(now).tm_gmtoff
        return str(int(now))

    def _state_of(self, node: Node) -> NodeState:
        state = self._by_id.get(node.id)
        if state is None:
            raise CommandError(NOT_FOUND, f"{node.id} is not a node of {self.name}")
        return state

    def _child(self, node: NodeState, message: ms.Message) -> Child | None:
        child_id = message.child_id
        if child_id == ms.NODE_CHILD:
            self._drop(ms.INVALID_NODE, message, "child 255 is the node itself")
            return None
        child = node.children.get(child_id)
        if child is None:
            if len(node.children) >= MAX_SOURCES:
                self._drop(ms.TOO_MANY_CHILDREN, message, f"more than {MAX_SOURCES} children")
                return None
            child = node.children[child_id] = Child()
            self._changed(node)
        return child

    def _mark_sleeper(self, node: NodeState) -> None:
        if not node.smart_sleep:
            node.smart_sleep = True
            self._persist_soon()

    def _assign_id(self, token: int) -> None:
        """A free id for the node that sent `token` (its child id; 255 from old libraries)."""
        number, new = self._ids.assign(token, self._nodes, time.monotonic())
        if number is None:
            self.context.drops.drop(ms.NO_FREE_ID, self._transport.origin, "all ids are used")
            return
        if new:
            self._add_node(number)
            self.stats["ids_assigned"] += 1
        self._spawn(self._send_id(number, token))

    async def _send_id(self, number: int, token: int) -> None:
        try:
            await self._state.save()  # the id is taken for good before the node hears of it
        except OSError:
            _LOGGER.exception("MySensors provider %s could not save node id %d to %s",
                              self.name, number, self.state_path)  # fmt: skip
        _LOGGER.info("MySensors provider %s assigned node id %d", self.name, number)
        # The node takes the response whose child id is its token (MyTransport.cpp).
        self._send(ms.Message(ms.AUTO_NODE, token, _C.INTERNAL, False, _I.I_ID_RESPONSE,
                              str(number)))  # fmt: skip

    # Announcing ----------------------------------------------------------------------------------

    def _changed(self, node: NodeState) -> None:
        """The node's definition changed: announce it once it has been quiet for
        `announce_delay` (a presentation is a burst of messages), at the latest after
        ANNOUNCE_MAX_WAIT delays."""
        self._persist_soon()
        loop = self._loop
        if loop is None or self._stopping:
            return
        delay, now = self.options["announce_delay"], loop.time()
        if node.announce_handle is None:
            node.changes_since = now
        elif now - node.changes_since < ANNOUNCE_MAX_WAIT * delay:
            node.announce_handle.cancel()
        else:
            return  # changing for too long: announce as planned, then again
        node.announce_handle = loop.call_later(delay, self._announce, node)

    def _ready(self, node: NodeState) -> None:
        """Before a value or event: the processor must know the node's current definition."""
        if node.announce_handle is not None or not node.announced:
            self._announce(node)

    def _alive(self, node: NodeState, battery: int | None = None) -> None:
        """The node spoke: a heartbeat (folded into a pending announce)."""
        if battery is not None:
            node.battery = battery
        if node.announce_handle is not None:
            return
        if not node.announced:
            self._changed(node)
            return
        self.context.submit(NodeHeartbeat(node.node_id, battery), self._transport.origin)

    def _announce(self, node: NodeState) -> None:
        if node.announce_handle is not None:
            node.announce_handle.cancel()
            node.announce_handle = None
        origin = self._transport.origin
        # The processor ignores an unchanged definition; sending it anyway re-adds a node that
        # was removed through the API once it presents itself again.
        interval = self.options.get("heartbeat_interval")
        definition = build_node(node, self.name, self._specs.spec, interval)
        self.context.submit(NodeAnnounced(definition), origin)
        self.context.submit(NodeHeartbeat(node.node_id, node.battery), origin)
        node.announced = True
        self.stats["announces"] += 1

    # Sending ------------------------------------------------------------------------------------

    def _send(self, message: ms.Message) -> bool:
        if self._transport.send(message):
            self.stats["sent"] += 1
            return True
        return False

    def _command(self, node: NodeState, message: ms.Message) -> None:
        """A command for a node: sent now, or queued while the node sleeps."""
        if message.ack:
            node.expect_echo(message)
        if not node.awake(time.monotonic()):
            node.enqueue(message)
            self.stats["queued"] += 1
            return
        if not self._send(message):
            raise CommandError(
                PROVIDER_UNAVAILABLE, f"MySensors gateway {self._transport.origin} is not connected"
            )

    def _flush_queue(self, node: NodeState) -> None:
        while node.queue:
            key, message = next(iter(node.queue.items()))
            if not self._send(message):
                return  # not connected: keep the rest for the next wake-up
            del node.queue[key]
            self.stats["flushed"] += 1

    def _drop(self, reason: str, message: ms.Message, detail: str) -> None:
        self._rejected = True
        line = message.encode().decode().rstrip("\n")
        self.context.drops.drop(reason, self._transport.origin, f"{detail}: {line[:80]!r}")

    # Persistence and tasks ----------------------------------------------------------------------

    def _persist_soon(self) -> None:
        if self._loop is not None and not self._stopping:
            self._state.save_soon()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"edgeiot-mysensors-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (err := task.exception()) is not None:
            _LOGGER.error("MySensors provider %s: %r", self.name, err, exc_info=err)


__all__ = ["MySensorsProvider"]
