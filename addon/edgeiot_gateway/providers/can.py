"""CAN bus provider: any python-can interface, DBC decoding with cantools, cyclic liveness.

Every DBC node that transmits messages becomes an EdgeIoT node, each of its messages a source and
each signal a field. Frames whose id is not in the DBC (or every frame, without a DBC) can be
shown raw. A message is writable when the gateway's own DBC node (`gateway_node`) transmits it,
or when `writable_messages` names it; setting a field encodes the whole frame, the other signals
keeping their last values.

Threads: a python-can Notifier reads the bus in its own thread; a Listener queues the frames and
wakes the event loop at most once per `batch_delay`, where they are decoded in batches. Decoding
costs a dict lookup, a bytes comparison and (when the payload changed) one cantools decode per
frame; unchanged payloads only refresh liveness.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast

import can
import voluptuous as vol
from cantools.database.can import Database
from cantools.database.can import Message as DbcMessage
from cantools.database.can import Signal as DbcSignal
from cantools.database.errors import DecodeError, EncodeError
from voluptuous.humanize import humanize_error

from ..commands import (
    INVALID_VALUE,
    NOT_FOUND,
    NOT_WRITABLE,
    PROVIDER_UNAVAILABLE,
    UNSUPPORTED_ACTION,
    CommandError,
)
from ..config import ConfigError
from ..messages import FieldValues, NodeAnnounced, NodeHeartbeat, NodeStatus
from ..models import FieldType, Node, Value, node_from_dict
from ..schemas import STORED_NODE_SCHEMA
from .base import Provider, ProviderContext, register_provider

_LOGGER = logging.getLogger(__name__)

# Frames handled per event-loop turn, so a flood cannot starve the API.
DRAIN_BATCH = 500
# Frames waiting for the event loop beyond which new ones are dropped (~12 s of a saturated
# 1 Mbit/s bus): a stalled loop must not exhaust memory.
INBOX_MAX = 100_000
# Seconds the Notifier thread blocks in bus.recv(); bounds how long stopping takes.
RECV_TIMEOUT = 0.2
# Seconds a failed reader thread waits for the provider to stop it (instead of spinning).
HALT_WAIT = 1.0
# Seconds a send may block (in a worker thread).
SEND_TIMEOUT = 0.5
# Seconds between NodeHeartbeat messages of a node that keeps sending (refreshes last_seen
# while unchanged payloads produce no values).
HEARTBEAT_SECONDS = 1.0
# A connection that lasted this long resets the reconnect backoff.
STABLE_SECONDS = 10.0

# can.Bus arguments per interface unless bus_options sets them. slcan: python-can polls the
# serial port with a 1 ms read timeout (~5% of a core while idle); 50 ms costs nothing and
# delays no frame (a read returns as soon as bytes arrive).
INTERFACE_DEFAULTS: Final[dict[str, dict[str, Any]]] = {"slcan": {"timeout": 0.05}}

# Keys of extended (29-bit) ids carry this bit, so 0x100 and extended 0x100 differ.
EXTENDED_KEY: Final = 1 << 31

# Schema limits (schemas.py) a generated node must respect.
MAX_SOURCES = 64
MAX_FIELDS = 256
MAX_OPTIONS = 64
NAME_MAX = 128
UNIT_MAX = 16

RAW_NODE = "can-raw"
UNOWNED_NODE = "can-bus"  # messages without a transmitter (Vector__XXX)

# Error-frame classes (Linux can/error.h; python-can keeps them in the arbitration id).
ERR_BUSOFF = 0x40
ERR_CRTL = 0x04
ERR_RESTARTED = 0x100
ERROR_CLASSES: Final = (
    (0x001, "tx_timeout"),
    (0x002, "lost_arbitration"),
    (0x004, "controller"),
    (0x008, "protocol_violation"),
    (0x010, "transceiver"),
    (0x020, "no_ack"),
    (0x040, "bus_off"),
    (0x080, "bus_error"),
    (0x100, "restarted"),
    (0x200, "error_counters"),
)
CRTL_WARNING = 0x04 | 0x08  # rx/tx warning
CRTL_PASSIVE = 0x10 | 0x20  # rx/tx passive
CRTL_ACTIVE = 0x40

BUS_ACTIVE = "active"
BUS_WARNING = "error_warning"
BUS_PASSIVE = "error_passive"
BUS_OFF = "bus_off"
BUS_CLOSED = "closed"

# Drop reasons (counted in diagnostics, listed in docs/protocol.md section 2.13).
CAN_ERROR_FRAME = "can_error_frame"  # an error frame (bus-off, error passive, no ack ...)
UNKNOWN_CAN_ID = "unknown_can_id"  # a frame id not in the DBC (and not shown raw)
CAN_DECODE_ERROR = "can_decode_error"  # a frame the DBC cannot decode, or an unnamed enum value
CAN_OVERFLOW = "can_overflow"  # a frame read while INBOX_MAX frames waited for the event loop
DROP_REASONS: Final = (CAN_ERROR_FRAME, UNKNOWN_CAN_ID, CAN_DECODE_ERROR, CAN_OVERFLOW)

_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MISSING: Final = object()

Number = vol.All(vol.Any(int, float), vol.Coerce(float))

OPTIONS_SCHEMA = vol.Schema(
    {
        # Passed to can.Bus: socketcan, slcan, virtual, pcan, kvaser, gs_usb, ...
        vol.Optional("interface", default="socketcan"): vol.All(str, vol.Length(min=1)),
        vol.Required("channel"): vol.Any(vol.All(str, vol.Length(min=1)), int),
        vol.Optional("bitrate"): vol.Any(None, vol.All(int, vol.Range(min=1000))),
        # Further keyword arguments for can.Bus (fd, data_bitrate, sleep_after_open, ...).
        vol.Optional("bus_options", default=dict): vol.Schema({str: object}),
        vol.Optional("dbc"): vol.Any(None, str, [str]),
        vol.Optional("raw", default=False): bool,
        vol.Optional("gateway_node"): vol.Any(None, str),
        vol.Optional("writable_messages", default=list): [str],
        vol.Optional("offline_after_cycles", default=3.0): vol.All(Number, vol.Range(min=1)),
        vol.Optional("changes_only", default=True): bool,
        vol.Optional("node_prefix", default=""): vol.All(str, vol.Match(r"^[A-Za-z0-9_-]{0,32}$")),
        vol.Optional("raw_max_ids", default=MAX_SOURCES): vol.All(
            int, vol.Range(min=1, max=MAX_SOURCES)
        ),
        vol.Optional("batch_delay", default=0.005): vol.All(Number, vol.Range(min=0, max=1)),
        vol.Optional("reconnect_interval", default=1.0): vol.All(
            Number, vol.Range(min=0.01, max=60)
        ),
        vol.Optional("reconnect_max_interval", default=30.0): vol.All(
            Number, vol.Range(min=0.01, max=3600)
        ),
    },
    extra=vol.PREVENT_EXTRA,
)

type Converter = Callable[[Any], Value | None]


def sanitize_id(name: str, taken: Iterable[str] = ()) -> str:
    """An EdgeIoT id ([A-Za-z0-9_-]{1,64}) for a DBC name, unique among `taken`."""
    base = _INVALID_ID_CHARS.sub("_", name)[:64] or "x"
    used = set(taken)
    candidate, number = base, 1
    while candidate in used:
        number += 1
        suffix = f"_{number}"
        candidate = base[: 64 - len(suffix)] + suffix
    return candidate


def frame_key(arbitration_id: int, extended: bool) -> int:
    """The lookup key of a frame id: extended ids are kept apart from standard ones."""
    return arbitration_id | EXTENDED_KEY if extended else arbitration_id


def raw_source_id(arbitration_id: int, extended: bool) -> str:
    """`id_1a0` for a standard id, `id_18daf110` (8 digits) for an extended one."""
    return f"id_{arbitration_id:08x}" if extended else f"id_{arbitration_id:03x}"


def _decimals(number: float) -> int:
    exponent = Decimal(repr(float(number))).normalize().as_tuple().exponent
    return min(max(0, -exponent), 10) if isinstance(exponent, int) else 10


@dataclass(slots=True, eq=False)
class _NodeState:
    """Liveness of one EdgeIoT node of this provider."""

    id: str
    definition: dict[str, Any]
    own: bool = False  # the gateway's own DBC node: online while the bus is
    online: bool = False
    online_since: float = 0.0
    heartbeat_at: float = 0.0
    specs: list[_MessageSpec] = field(default_factory=list)
    cyclic: list[_MessageSpec] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class _MessageSpec:
    """Everything needed to decode (and encode) one CAN id, prepared once."""

    key: int
    node: _NodeState
    source_id: str
    origin: str
    message: DbcMessage | None = None  # None: a raw source
    writable: bool = False
    timeout: float | None = None  # seconds of silence before the node counts it missing
    converters: dict[str, tuple[str, Converter | None]] = field(default_factory=dict)
    signals: dict[str, DbcSignal] = field(default_factory=dict)  # by field id
    field_types: dict[str, FieldType] = field(default_factory=dict)  # by field id
    choices: dict[str, dict[str, int]] = field(default_factory=dict)  # field id → name → raw
    values: dict[str, Any] = field(default_factory=dict)  # last physical values by signal
    defaults: dict[str, Any] = field(default_factory=dict)
    last_data: bytes | bytearray | None = None
    seen: float = 0.0  # time.monotonic() of the last frame


class _FrameListener(can.Listener):
    """Runs in the Notifier's thread: queues frames, wakes the loop once per batch."""

    def __init__(self, provider: CanProvider, bus: can.BusABC) -> None:
        self._provider = provider
        self._bus = bus
        self._inbox = provider.inbox
        self.halt = threading.Event()
        self.overflow = 0  # frames not queued (only this thread writes it)
        self._failed = False

    def on_message_received(self, msg: can.Message) -> None:
        if len(self._inbox) >= INBOX_MAX:  # the event loop is stalled: count, do not hoard
            self.overflow += 1
            return
        self._inbox.append(msg)
        provider = self._provider
        if not provider.wakeup_pending:
            provider.wakeup_pending = True
            provider.call_threadsafe(provider.schedule_drain)

    def on_error(self, exc: Exception) -> None:
        # The bus failed (unplugged adapter, closed port, bus-off raised by the driver): report
        # it once, then wait to be stopped rather than spin on a dead bus.
        if not self._failed:
            self._failed = True
            self._provider.call_threadsafe(self._provider.bus_failed, self._bus, exc)
        self.halt.wait(HALT_WAIT)

    def stop(self) -> None:
        self.halt.set()


@register_provider
class CanProvider(Provider):
    """Talks to a CAN bus through python-can; decodes frames with DBC files (cantools)."""

    kind = "can"

    def __init__(self, name: str, context: ProviderContext, options: dict[str, Any]) -> None:
        try:
            options = OPTIONS_SCHEMA(options)
        except vol.Invalid as err:
            raise ConfigError(f"CAN provider {name}: {humanize_error(options, err)}") from None
        super().__init__(name, context, options)
        self.channel = options["channel"]
        self.origin = f"can:{self.channel}"
        self.changes_only: bool = options["changes_only"]
        self.inbox: deque[can.Message] = deque()
        self.wakeup_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._specs: dict[int, _MessageSpec] = {}
        self._sources: dict[tuple[str, str], _MessageSpec] = {}
        self._states: dict[str, _NodeState] = {}
        self._own: _NodeState | None = None
        self._raw_enabled: bool = options["raw"]
        self._raw_node: _NodeState | None = None
        self._bus: can.BusABC | None = None
        self._bus_state = BUS_CLOSED
        self._failed: asyncio.Future[Exception] | None = None
        self._listener: _FrameListener | None = None
        self._overflow_seen = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._check_interval = 1.0
        # Counters (diagnostics).
        self.frames_received = 0
        self.frames_decoded = 0
        self.frames_unchanged = 0
        self.frames_raw = 0
        self.frames_remote = 0
        self.frames_overflow = 0
        self.unknown_ids = 0
        self.decode_errors = 0
        self.error_frames = 0
        self.frames_sent = 0
        self.send_errors = 0
        self.bus_opens = 0
        self.last_error: str | None = None

    # Provider interface ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._bus_state not in (BUS_CLOSED, BUS_OFF)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        dbc = self.options.get("dbc")
        paths: list[str] = [dbc] if isinstance(dbc, str) else list(dbc or [])
        database = (
            await asyncio.to_thread(_load_dbc, paths, self.context.data_dir) if paths else None
        )
        self._build(database)
        for state in self._states.values():
            if state.specs:  # the raw node is announced with its first frame id
                self.context.submit(
                    NodeAnnounced(node_from_dict(state.definition), replayed=True), self.origin
                )
        cyclic = [s.timeout for s in self._specs.values() if s.timeout]
        self._check_interval = min(1.0, max(0.02, min(cyclic, default=4.0) / 4))
        self._supervisor = asyncio.create_task(self._supervise(), name=f"edgeiot-can-{self.name}")
        self._watcher = asyncio.create_task(self._watch(), name=f"edgeiot-can-{self.name}-live")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._watcher, self._supervisor) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watcher = self._supervisor = None
        self._drain()  # cancels a pending batch timer
        while self.inbox:
            self._drain()

    async def set_field(self, node: Node, source_id: str, field_id: str, value: Value) -> None:
        spec = self._sources.get((node.id, source_id))
        if spec is None or spec.message is None or field_id not in spec.signals:
            raise CommandError(NOT_FOUND, f"{node.id}/{source_id}/{field_id} is not a CAN signal")
        if not spec.writable:
            raise CommandError(NOT_WRITABLE, f"CAN message {spec.message.name} is not writable")
        signal = spec.signals[field_id]
        physical = self._physical(spec, field_id, value)
        async with self._send_lock:
            bus = self._bus
            if bus is None or not self.connected:
                raise CommandError(PROVIDER_UNAVAILABLE, f"CAN bus {self.channel} is not connected")
            message = spec.message
            data = spec.defaults | spec.values
            data[signal.name] = physical
            _select_multiplexers(message, signal, data)
            try:
                payload = message.encode(data, scaling=True, padding=False, strict=False)
            except (EncodeError, ValueError, KeyError, TypeError) as err:
                raise CommandError(INVALID_VALUE, f"cannot encode {message.name}: {err}") from None
            frame = can.Message(
                arbitration_id=message.frame_id,
                is_extended_id=message.is_extended_frame,
                is_fd=message.is_fd,
                data=payload,
            )
            try:
                await asyncio.to_thread(bus.send, frame, SEND_TIMEOUT)
            except (can.CanError, OSError, ValueError) as err:
                self.send_errors += 1
                self.last_error = f"send: {err}"
                raise CommandError(PROVIDER_UNAVAILABLE, f"CAN send failed: {err}") from None
            self.frames_sent += 1
        # Nobody echoes our own frame: show what was sent (unless that would claim a silent
        # node is online).
        if spec.node.online or spec.node.own:
            self._decode(spec, payload, sent=True)

    async def node_action(self, node: Node, action: str) -> None:
        raise CommandError(UNSUPPORTED_ACTION, f"CAN nodes have no actions ({action!r})")

    def diagnostics(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "interface": self.options["interface"],
            "channel": self.channel,
            "bus_state": self._bus_state,
            "frames_received": self.frames_received,
            "frames_decoded": self.frames_decoded,
            "frames_unchanged": self.frames_unchanged,
            "frames_raw": self.frames_raw,
            "frames_remote": self.frames_remote,
            "frames_overflow": self.frames_overflow,
            "unknown_ids": self.unknown_ids,
            "decode_errors": self.decode_errors,
            "error_frames": self.error_frames,
            "frames_sent": self.frames_sent,
            "send_errors": self.send_errors,
            "bus_opens": self.bus_opens,
            "last_error": self.last_error,
            "queued": len(self.inbox),
            "messages": sum(1 for s in self._specs.values() if s.message is not None),
            "nodes_online": sum(1 for s in self._states.values() if s.online),
        }

    # Model: DBC → nodes, sources, fields ------------------------------------------------------

    def _build(self, database: Database | None) -> None:
        prefix: str = self.options["node_prefix"]
        gateway: str | None = self.options.get("gateway_node")
        writable_names = set(self.options["writable_messages"])
        if database is None:
            self._raw_enabled = True  # no DBC: everything is shown raw
            if gateway or writable_names:
                _LOGGER.warning("CAN provider %s: without a DBC nothing is writable", self.name)
        else:
            node_names = {node.name for node in database.nodes}
            if gateway and gateway not in node_names:
                raise ConfigError(
                    f"CAN provider {self.name}: gateway_node {gateway!r} is not a node of the "
                    f"DBC (nodes: {sorted(node_names)})"
                )
            message_names = {message.name for message in database.messages}
            if unknown := writable_names - message_names:
                raise ConfigError(
                    f"CAN provider {self.name}: writable_messages {sorted(unknown)} are not "
                    "messages of the DBC"
                )
            owners: dict[str | None, list[DbcMessage]] = {}
            for message in database.messages:
                owners.setdefault(message.senders[0] if message.senders else None, []).append(
                    message
                )
            node_order: list[str | None] = [n.name for n in database.nodes if n.name in owners]
            node_order += [o for o in owners if o not in node_order and o is not None]
            if None in owners:
                node_order.append(None)
            taken: set[str] = set()
            for owner in node_order:
                messages = owners[owner]
                base = sanitize_id(prefix + (owner or UNOWNED_NODE), taken)
                chunks = [
                    messages[i : i + MAX_SOURCES] for i in range(0, len(messages), MAX_SOURCES)
                ]
                for number, chunk in enumerate(chunks, start=1):
                    node_id = base if number == 1 else sanitize_id(f"{base}-{number}", taken)
                    taken.add(node_id)
                    name = owner or "CAN bus (no transmitter)"
                    state = _NodeState(node_id, {}, own=owner is not None and owner == gateway)
                    self._add_node(
                        state,
                        name if number == 1 else f"{name} ({number})",
                        chunk,
                        gateway,
                        writable_names,
                    )
        if self._raw_enabled:
            raw_id = sanitize_id(prefix + RAW_NODE, self._states)
            self._raw_node = _NodeState(raw_id, self._node_definition(raw_id, "CAN raw frames"))
            self._states[raw_id] = self._raw_node
        self._own = next((s for s in self._states.values() if s.own), None)

    def _node_definition(self, node_id: str, name: str) -> dict[str, Any]:
        return {
            "id": node_id,
            "provider": self.name,
            "name": name[:NAME_MAX],
            "kind": "can",
            "model": None,
            "actions": [],
            "heartbeat_interval": None,  # liveness comes from cyclic frames (NodeStatus)
            "sources": [],
        }

    def _add_node(
        self,
        state: _NodeState,
        name: str,
        messages: list[DbcMessage],
        gateway: str | None,
        writable_names: set[str],
    ) -> None:
        definition = self._node_definition(state.id, name)
        source_ids: set[str] = set()
        for message in messages:
            source_id = sanitize_id(message.name, source_ids)
            source_ids.add(source_id)
            writable = (gateway is not None and gateway in message.senders) or (
                message.name in writable_names
            )
            spec = _MessageSpec(
                key=frame_key(message.frame_id, message.is_extended_frame),
                node=state,
                source_id=source_id,
                origin=f"can:{self.channel}:0x{message.frame_id:x}",
                message=message,
                writable=writable,
            )
            if message.cycle_time and not state.own:
                spec.timeout = self.options["offline_after_cycles"] * message.cycle_time / 1000
                state.cyclic.append(spec)
            fields = []
            for signal in message.signals[:MAX_FIELDS]:
                field_id = sanitize_id(signal.name, spec.signals)
                fields.append(self._add_signal(spec, field_id, signal))
            for signal in message.signals:
                spec.defaults.setdefault(signal.name, _default(signal))
            _multiplexer_defaults(message, spec.defaults)
            if len(message.signals) > MAX_FIELDS:
                _LOGGER.warning(
                    "CAN message %s: only its first %d signals are shown", message.name, MAX_FIELDS
                )
            definition["sources"].append(
                {"id": source_id, "name": message.name[:NAME_MAX], "fields": fields}
            )
            if spec.key in self._specs:
                _LOGGER.warning(
                    "CAN provider %s: id 0x%x is defined twice in the DBC; using %s",
                    self.name,
                    message.frame_id,
                    message.name,
                )
            self._specs[spec.key] = spec
            self._sources[(state.id, source_id)] = spec
            state.specs.append(spec)
        try:
            state.definition = STORED_NODE_SCHEMA(definition)
        except vol.Invalid as err:
            raise ConfigError(
                f"CAN provider {self.name}: node {state.id}: {humanize_error(definition, err)}"
            ) from None
        self._states[state.id] = state

    def _add_signal(self, spec: _MessageSpec, field_id: str, signal: DbcSignal) -> dict[str, Any]:
        scale, offset = signal.scale, signal.offset
        plain = scale == 1 and offset == 0
        definition: dict[str, Any] = {
            "id": field_id,
            "name": signal.name[:NAME_MAX],
            "writable": spec.writable,
        }
        if signal.unit:
            definition["unit"] = signal.unit[:UNIT_MAX]
        converter: Converter | None = None
        if signal.length == 1 and not signal.is_signed and plain and not signal.is_float:
            kind = FieldType.BOOL
            converter = bool
        elif signal.choices:
            names: dict[str, int] = {}
            by_raw: dict[float, str] = {}
            for raw, label in signal.choices.items():
                text = str(label)[:NAME_MAX] or str(int(raw))
                if text in names:
                    text = f"{text} ({int(raw)})"[-NAME_MAX:]
                names[text] = int(raw)
                by_raw[int(raw)] = text
            kind = FieldType.ENUM if len(names) <= MAX_OPTIONS else FieldType.STRING
            if kind is FieldType.ENUM:
                definition["options"] = list(names)
            spec.choices[field_id] = names
            lookup = by_raw.get
            converter = lookup if plain else functools.partial(_choice_of, lookup, scale, offset)
            if kind is FieldType.STRING:
                converter = functools.partial(_choice_or_number, converter)
        else:
            integral = float(scale).is_integer() and float(offset).is_integer()
            kind = FieldType.INT if integral and not signal.is_float else FieldType.FLOAT
            low, high = _representable(signal)
            if signal.minimum is not None:
                low = signal.minimum if low is None else max(low, signal.minimum)
            if signal.maximum is not None:
                high = signal.maximum if high is None else min(high, signal.maximum)
            if low is not None and high is not None and low <= high:
                definition["min"], definition["max"] = low, high
            if kind is FieldType.FLOAT:
                if signal.is_float:
                    converter = float
                else:
                    converter = functools.partial(
                        round, ndigits=max(_decimals(scale), _decimals(offset))
                    )
                if scale and not signal.is_float:
                    definition["step"] = abs(float(scale))
        definition["type"] = kind.value
        spec.converters[signal.name] = (field_id, converter)
        spec.signals[field_id] = signal
        spec.field_types[field_id] = kind
        return definition

    def _raw_spec(self, msg: can.Message, key: int) -> _MessageSpec | None:
        """The raw source for a frame id not in the DBC, added (and announced) on first sight."""
        node = self._raw_node
        assert node is not None
        if len(node.specs) >= self.options["raw_max_ids"]:
            return None
        source_id = raw_source_id(msg.arbitration_id, msg.is_extended_id)
        spec = _MessageSpec(
            key=key,
            node=node,
            source_id=source_id,
            origin=f"can:{self.channel}:0x{msg.arbitration_id:x}",
        )
        node.specs.append(spec)
        node.definition["sources"].append(
            {
                "id": source_id,
                "name": f"CAN id 0x{msg.arbitration_id:x}",
                "fields": [
                    {"id": "data", "name": "Data", "type": "string", "writable": False},
                    {
                        "id": "dlc",
                        "name": "DLC",
                        "type": "int",
                        "min": 0,
                        "max": 64,
                        "writable": False,
                    },
                ],
                "events": [],
            }
        )
        self._specs[key] = spec
        self._sources[(node.id, source_id)] = spec
        self.context.submit(NodeAnnounced(node_from_dict(node.definition)), self.origin)
        return spec

    # Connection ------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Open the bus, run until it fails, reopen with backoff; never gives up."""
        minimum = self.options["reconnect_interval"]
        maximum = max(minimum, self.options["reconnect_max_interval"])
        delay = minimum
        while True:
            try:
                bus = await self._open()
            except Exception as err:  # python-can raises many types for a missing interface
                self.last_error = f"open: {err}"
                _LOGGER.warning(
                    "CAN provider %s cannot open %s %s (retry in %.1fs): %s",
                    self.name,
                    self.options["interface"],
                    self.channel,
                    delay,
                    err,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, maximum)
                continue
            opened = time.monotonic()
            try:
                exc = await self._run(bus)
            except Exception as err:  # a bug must not end the supervision: log it, reopen
                _LOGGER.exception("CAN provider %s failed on bus %s", self.name, self.channel)
                exc = err
            self.last_error = f"bus: {exc!r}"
            if time.monotonic() - opened > STABLE_SECONDS:
                delay = minimum
            _LOGGER.warning(
                "CAN provider %s: bus %s failed (reopen in %.1fs): %r",
                self.name,
                self.channel,
                delay,
                exc,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, maximum)

    async def _open(self) -> can.BusABC:
        task = asyncio.ensure_future(asyncio.to_thread(self._open_bus))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The open goes on in its thread: wait for it, and close what it opened.
            with contextlib.suppress(Exception):
                bus = await task
                await asyncio.to_thread(bus.shutdown)
            raise

    def _open_bus(self) -> can.BusABC:
        interface = self.options["interface"]
        kwargs = INTERFACE_DEFAULTS.get(interface, {}) | self.options["bus_options"]
        if self.options.get("bitrate"):
            kwargs["bitrate"] = self.options["bitrate"]
        return can.Bus(interface=interface, channel=self.channel, **kwargs)

    async def _run(self, bus: can.BusABC) -> Exception:
        """Read `bus` until it fails; returns the failure. Always closes the bus."""
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[Exception] = loop.create_future()
        self._failed = failed
        self._listener = listener = _FrameListener(self, bus)
        self._overflow_seen = 0
        notifier: can.Notifier | None = None
        try:
            # No loop= here: the listener runs in the Notifier's thread and hands frames over in
            # batches (one wakeup per batch, not per frame), and a read error does not kill the
            # thread with an unhandled exception but reaches on_error().
            notifier = can.Notifier(bus, [listener], timeout=RECV_TIMEOUT)
            self.bus_opens += 1
            self._bus = bus
            self._set_bus_state(BUS_ACTIVE)
            _LOGGER.info(
                "CAN provider %s: %s %s open", self.name, self.options["interface"], self.channel
            )
            return await failed
        finally:
            self._bus = None
            listener.halt.set()
            await asyncio.to_thread(_close, notifier, bus)
            while self.inbox:  # frames read before the failure are still good
                self._drain()
            self._count_overflow()
            self._listener = None
            self._set_bus_state(BUS_CLOSED)

    def bus_failed(self, bus: can.BusABC, exc: Exception) -> None:
        """(Event loop) The reader thread of `bus` failed."""
        if bus is self._bus and self._failed is not None and not self._failed.done():
            self._failed.set_result(exc)

    def call_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        """Run `callback` on the event loop (from the reader thread)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(callback, *args)

    def _set_bus_state(self, state: str) -> None:
        was_connected = self.connected
        self._bus_state = state
        if self.connected == was_connected:
            return
        if self.connected:
            self.context.connection_changed(self.name, True)
            if self._own is not None:
                self._set_online(self._own, True, time.monotonic())
        else:
            for node in self._states.values():
                node.online = False
            # The gateway marks every node of this provider offline.
            self.context.connection_changed(self.name, False)

    # Event loop: frames ------------------------------------------------------------------------

    def schedule_drain(self) -> None:
        """(Event loop) Frames are queued: drain them after `batch_delay`, as one batch."""
        delay = self.options["batch_delay"]
        if delay and self._loop is not None and not self._stopping:
            self._drain_timer = self._loop.call_later(delay, self._drain)
        else:
            self._drain()

    def _drain(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()  # (harmless when it is the timer that runs)
            self._drain_timer = None
        self.wakeup_pending = False
        if self._listener is not None and self._listener.overflow != self._overflow_seen:
            self._count_overflow()
        inbox = self.inbox
        count = min(len(inbox), DRAIN_BATCH)
        if not count:
            return
        now = time.monotonic()
        specs, decode, changes_only = self._specs, self._decode, self.changes_only
        unchanged = remote = 0
        good = False
        for _ in range(count):
            msg = inbox.popleft()
            try:
                if msg.is_error_frame:
                    self._error_frame(msg)
                    continue
                good = True
                if msg.is_remote_frame:
                    remote += 1
                    continue
                arbitration_id = msg.arbitration_id
                spec = specs.get(
                    arbitration_id | EXTENDED_KEY if msg.is_extended_id else arbitration_id
                )
                if spec is None:
                    spec = self._unknown(msg)
                    if spec is None:
                        continue
                spec.seen = now
                if not spec.node.online:
                    self._set_online(spec.node, True, now)
                if changes_only and msg.data == spec.last_data:
                    unchanged += 1
                    continue
                decode(spec, msg.data, msg.dlc)
            except Exception as err:  # a bug must not stop the stream: count it, log it
                _LOGGER.exception("CAN provider %s failed on %r", self.name, msg)
                self.context.drops.drop("internal_error", self.origin, repr(err))
        self.frames_received += count
        self.frames_unchanged += unchanged
        self.frames_remote += remote
        if good and self._bus_state == BUS_OFF:
            self._set_bus_state(BUS_ACTIVE)  # frames flow again: the controller recovered
        if inbox and not self.wakeup_pending and self._loop is not None:
            self.wakeup_pending = True
            self._loop.call_soon(self._drain)

    def _count_overflow(self) -> None:
        listener = self._listener
        if listener is None:
            return
        lost, self._overflow_seen = listener.overflow - self._overflow_seen, listener.overflow
        self.frames_overflow += lost
        for _ in range(lost):
            self.context.drops.drop(
                CAN_OVERFLOW, self.origin, f"{INBOX_MAX} frames were waiting for the event loop"
            )

    def _decode(
        self,
        spec: _MessageSpec,
        data: bytes | bytearray,
        dlc: int | None = None,
        sent: bool = False,
    ) -> None:
        """Decode one payload of `spec` and submit the (changed) values."""
        message = spec.message
        if message is None:
            self.frames_raw += 1
            spec.last_data = data
            values: dict[str, object] = {
                "data": data.hex(),
                "dlc": len(data) if dlc is None else dlc,
            }
            self.context.submit(FieldValues(spec.node.id, spec.source_id, values), spec.origin)
            return
        try:
            # cantools takes any bytes-like payload; without containers it returns a dict.
            decoded = cast(
                "dict[str, Any]",
                message.decode(data, decode_choices=False, allow_truncated=False),  # type: ignore[arg-type]
            )
        except (DecodeError, ValueError, KeyError, IndexError) as err:
            self.decode_errors += 1
            detail = f"{message.name}: {err or type(err).__name__} (data {bytes(data).hex()})"
            self.context.drops.drop(CAN_DECODE_ERROR, spec.origin, detail)
            return
        if not sent:
            self.frames_decoded += 1
        spec.last_data = data
        last, converters = spec.values, spec.converters
        out: dict[str, object] = {}
        changes_only = self.changes_only
        for name, value in decoded.items():
            if changes_only and last.get(name, _MISSING) == value:
                continue
            field_id, convert = converters[name]
            if convert is None:
                out[field_id] = value
            elif (converted := convert(value)) is not None:
                out[field_id] = converted
            else:
                self.context.drops.drop(
                    CAN_DECODE_ERROR, spec.origin, f"{message.name}.{name}: {value} has no name"
                )
        last.update(decoded)
        if out:
            self.context.submit(FieldValues(spec.node.id, spec.source_id, out), spec.origin)

    def _unknown(self, msg: can.Message) -> _MessageSpec | None:
        key = frame_key(msg.arbitration_id, msg.is_extended_id)
        if self._raw_enabled and (spec := self._raw_spec(msg, key)) is not None:
            return spec
        self.unknown_ids += 1
        detail = (
            f"raw source limit ({self.options['raw_max_ids']}) reached"
            if self._raw_enabled
            else "id not in the DBC (set raw = true to show it)"
        )
        origin = f"can:{self.channel}:0x{msg.arbitration_id:x}"
        self.context.drops.drop(UNKNOWN_CAN_ID, origin, f"{detail}; data {msg.data.hex()}")
        return None

    def _error_frame(self, msg: can.Message) -> None:
        self.error_frames += 1
        classes = msg.arbitration_id
        names = [name for bit, name in ERROR_CLASSES if classes & bit] or ["unspecified"]
        data = bytes(msg.data)
        state: str | None = None
        if classes & ERR_BUSOFF:
            state = BUS_OFF
        elif classes & ERR_RESTARTED:
            state = BUS_ACTIVE
        elif classes & ERR_CRTL and len(data) > 1:
            if data[1] & CRTL_PASSIVE:
                state = BUS_PASSIVE
            elif data[1] & CRTL_WARNING:
                state = BUS_WARNING
            elif data[1] & CRTL_ACTIVE:
                state = BUS_ACTIVE
        if state is not None and self._bus_state not in (BUS_CLOSED, state):
            _LOGGER.warning("CAN provider %s: bus %s is %s", self.name, self.channel, state)
            self._set_bus_state(state)
        self.context.drops.drop(
            CAN_ERROR_FRAME,
            f"can:{self.channel}:0x{classes:x}",
            f"error frame {'+'.join(names)} data {data.hex()}",
        )

    # Event loop: liveness ----------------------------------------------------------------------

    def _set_online(self, node: _NodeState, online: bool, now: float) -> None:
        node.online = online
        if online:
            node.online_since = node.heartbeat_at = now
        self.context.submit(NodeStatus(node.id, online), self.origin)

    async def _watch(self) -> None:
        """Mark nodes offline whose cyclic frames stopped; heartbeat the others."""
        while True:
            await asyncio.sleep(self._check_interval)
            self.check_liveness(time.monotonic())

    def check_liveness(self, now: float) -> None:
        """One liveness pass (public for tests and benches).

        A node is offline as soon as one of its cyclic messages, seen since it came online, is
        overdue by `offline_after_cycles` cycles; a cyclic message it has not sent since then
        (optional, or sent only in some modes) does not count.
        """
        for node in self._states.values():
            if not node.online or node.own:
                continue
            since = node.online_since
            overdue = next(
                (s for s in node.cyclic if s.seen >= since and now - s.seen > (s.timeout or 0.0)),
                None,
            )
            if overdue is not None:
                _LOGGER.info(
                    "CAN node %s: no %s for %.2fs", node.id, overdue.source_id, now - overdue.seen
                )
                self._set_online(node, False, now)
                continue
            if now - node.heartbeat_at >= HEARTBEAT_SECONDS:
                latest = max((s.seen for s in node.specs), default=0.0)
                if latest > node.heartbeat_at:
                    node.heartbeat_at = now
                    self.context.submit(NodeHeartbeat(node.id), self.origin)

    # Encoding ----------------------------------------------------------------------------------

    def _physical(self, spec: _MessageSpec, field_id: str, value: Value) -> float | int:
        """The physical (scaled) signal value for a validated field value."""
        signal = spec.signals[field_id]
        kind = spec.field_types[field_id]
        if kind is FieldType.BOOL:
            return int(bool(value))
        if kind in (FieldType.ENUM, FieldType.STRING):
            names = spec.choices[field_id]
            raw: int | None = names.get(str(value))
            if raw is None:
                with contextlib.suppress(ValueError):
                    raw = int(str(value), 0)
            if raw is None or (kind is FieldType.ENUM and str(value) not in names):
                raise CommandError(INVALID_VALUE, f"{field_id}: {value!r} is not a choice")
            return raw * signal.scale + signal.offset
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CommandError(INVALID_VALUE, f"{field_id}: {value!r} is not a number")
        low, high = _representable(signal)
        if (low is not None and value < low) or (high is not None and value > high):
            raise CommandError(INVALID_VALUE, f"{field_id}: {value} does not fit the signal")
        return value


def _load_dbc(paths: list[str], base: Path) -> Database:
    """Load DBC files; relative paths are relative to `base` (the gateway's data directory)."""
    database = Database()
    for path in paths:
        try:
            database.add_dbc_file(base / Path(path).expanduser())
        except OSError as err:
            raise ConfigError(f"cannot read DBC {path}: {err}") from None
        except Exception as err:  # the DBC parser raises its own types for syntax errors
            raise ConfigError(f"cannot parse DBC {path}: {err!r}") from None
    return database


def _close(notifier: can.Notifier | None, bus: can.BusABC) -> None:
    if notifier is not None:
        notifier.stop(timeout=RECV_TIMEOUT + HALT_WAIT + 1)
    try:
        bus.shutdown()
    except Exception as err:  # a vanished adapter cannot be closed cleanly
        _LOGGER.debug("CAN bus shutdown: %r", err)


def _representable(signal: DbcSignal) -> tuple[float | None, float | None]:
    """The physical range the signal's bits can hold (None for IEEE floats)."""
    if signal.is_float:
        return None, None
    if signal.is_signed:
        raw_low, raw_high = -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    else:
        raw_low, raw_high = 0, (1 << signal.length) - 1
    low = raw_low * signal.scale + signal.offset
    high = raw_high * signal.scale + signal.offset
    if low > high:
        low, high = high, low
    digits = max(_decimals(signal.scale), _decimals(signal.offset))
    return round(low, digits), round(high, digits)


def _default(signal: DbcSignal) -> float | int:
    """A signal's value before any frame was seen: its initial value, else 0 (kept in range)."""
    if signal.raw_initial is not None:
        return signal.raw_initial * signal.scale + signal.offset
    value: float | int = 0
    low, high = _representable(signal)
    if signal.minimum is not None:
        low = signal.minimum
    if signal.maximum is not None:
        high = signal.maximum
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return value


def _multiplexer_defaults(message: DbcMessage, defaults: dict[str, Any]) -> None:
    """A multiplexer's default must be one of its ids, or nothing can be encoded."""
    for signal in message.signals:
        if not signal.is_multiplexer:
            continue
        ids = sorted(
            {
                number
                for child in message.signals
                if child.multiplexer_signal == signal.name
                for number in child.multiplexer_ids or ()
            }
        )
        if ids and defaults.get(signal.name) not in ids:
            defaults[signal.name] = ids[0] * signal.scale + signal.offset


def _select_multiplexers(message: DbcMessage, signal: DbcSignal, data: dict[str, Any]) -> None:
    """Set the multiplexer signals so that `signal` is part of the encoded frame."""
    while signal.multiplexer_signal is not None and signal.multiplexer_ids:
        multiplexer = message.get_signal_by_name(signal.multiplexer_signal)
        if data.get(multiplexer.name) not in signal.multiplexer_ids:
            data[multiplexer.name] = signal.multiplexer_ids[0]
        signal = multiplexer


def _choice_of(
    lookup: Callable[[int], str | None], scale: float, offset: float, value: float
) -> str | None:
    raw = (value - offset) / scale
    return lookup(round(raw)) if math.isfinite(raw) else None


def _choice_or_number(convert: Converter, value: Any) -> Value:
    named = convert(value)
    return named if named is not None else str(value)
