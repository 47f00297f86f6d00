"""CAN bus provider: any python-can interface, DBC decoding with cantools, cyclic liveness.

Every DBC node that transmits messages becomes an EdgeIoT node, each of its messages a source and
each signal a field (dbc.py says which type, and publishes exactly what cantools decodes). Frames
whose id is not in the DBC (or every frame, without a DBC) can be shown raw. A message is
writable when the gateway's own DBC node (`gateway_node`) transmits it, or when
`writable_messages` names it; setting a field encodes the whole frame, the other signals keeping
their last values.

Threads: a python-can Notifier reads the bus in its own thread; a Listener (transport.py) queues
the frames and wakes the event loop at most once per `batch_delay`, where they are decoded in
batches. Decoding costs a dict lookup, a bytes comparison and (when the payload changed) one
cantools decode per frame; unchanged payloads only refresh liveness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import can
import voluptuous as vol
from cantools.database.errors import DecodeError, EncodeError
from voluptuous.humanize import humanize_error

from ...commands import (
    INVALID_VALUE,
    NOT_FOUND,
    NOT_WRITABLE,
    PROVIDER_UNAVAILABLE,
    UNSUPPORTED_ACTION,
    CommandError,
)
from ...config import ConfigError
from ...messages import FieldValues, NodeAnnounced, NodeHeartbeat, NodeStatus
from ...models import Node, Value, node_from_dict
from ...supervision import keep_running
from ..base import Provider, ProviderContext, register_provider
from . import transport
from .dbc import (
    EXTENDED_KEY,
    MAX_SOURCES,
    frame_key,
    load_dbc,
    select_multiplexers,
)
from .model import BusModel, MessageSpec, NodeState
from .transport import BUS_ACTIVE, BUS_CLOSED, BUS_OFF, FrameListener

_LOGGER = logging.getLogger(__name__)

# Frames handled per event-loop turn, so a flood cannot starve the API.
DRAIN_BATCH = 500
# Seconds a send may block (in a worker thread).
SEND_TIMEOUT = 0.5
# Seconds between NodeHeartbeat messages of a node that keeps sending (refreshes last_seen
# while unchanged payloads produce no values).
HEARTBEAT_SECONDS = 1.0
# A connection that lasted this long resets the reconnect backoff.
STABLE_SECONDS = 10.0
# Drop reasons (counted in diagnostics, listed in docs/protocol.md section 2.13).
CAN_ERROR_FRAME = "can_error_frame"  # an error frame (bus-off, error passive, no ack ...)
UNKNOWN_CAN_ID = "unknown_can_id"  # a frame id not in the DBC (and not shown raw)
CAN_DECODE_ERROR = "can_decode_error"  # a frame cantools cannot decode (short, unknown mux)
CAN_SIGNAL_INVALID = "can_signal_invalid"  # one signal's value no field holds (NaN float)
CAN_OVERFLOW = "can_overflow"  # a frame read while INBOX_MAX frames waited for the event loop
DROP_REASONS = (CAN_ERROR_FRAME, UNKNOWN_CAN_ID, CAN_DECODE_ERROR, CAN_SIGNAL_INVALID, CAN_OVERFLOW)

_MISSING = object()

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
        self.model = BusModel(name, self.channel, options)
        self._bus: can.BusABC | None = None
        self._bus_state = BUS_CLOSED
        self._failed: asyncio.Future[Exception] | None = None
        self._listener: FrameListener | None = None
        self._overflow_seen = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._check_interval = 1.0
        self.bus_loop = f"can {name} bus"
        self.decode_loop = f"can {name} decode"
        # Counters (diagnostics).
        self.frames_received = 0
        self.frames_decoded = 0
        self.frames_unchanged = 0
        self.frames_raw = 0
        self.frames_remote = 0
        self.frames_overflow = 0
        self.unknown_ids = 0
        self.decode_errors = 0  # frames
        self.invalid_signals = 0  # signal values
        self.out_of_range = 0  # signal values outside the DBC's [min|max] (published)
        self.error_frames = 0
        self.frames_sent = 0
        self.send_errors = 0
        self.bus_opens = 0
        self.last_error: str | None = None

    # Provider interface ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._bus_state not in (BUS_CLOSED, BUS_OFF)

    @property
    def error(self) -> str | None:
        return self.last_error

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        dbc = self.options.get("dbc")
        paths: list[str] = [dbc] if isinstance(dbc, str) else list(dbc or [])
        database = (
            await asyncio.to_thread(load_dbc, paths, self.context.data_dir) if paths else None
        )
        self.model.build(database)
        for state in self.model.states.values():
            if state.specs:  # the raw node is announced with its first frame id
                self.context.submit(
                    NodeAnnounced(node_from_dict(state.definition), replayed=True), self.origin
                )
        cyclic = [s.timeout for s in self.model.specs.values() if s.timeout]
        self._check_interval = min(1.0, max(0.02, min(cyclic, default=4.0) / 4))
        self._supervisor = asyncio.create_task(self._supervise(), name=f"edgeiot-can-{self.name}")
        self._watcher = asyncio.create_task(
            keep_running(f"can {self.name} liveness", self._watch_step, self.context.health),
            name=f"edgeiot-can-{self.name}-live",
        )

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
        spec = self.model.sources.get((node.id, source_id))
        if spec is None or spec.message is None or field_id not in spec.signals:
            raise CommandError(NOT_FOUND, f"{node.id}/{source_id}/{field_id} is not a CAN signal")
        if not spec.writable:
            raise CommandError(NOT_WRITABLE, f"CAN message {spec.message.name} is not writable")
        signal = spec.signals[field_id]
        physical = signal.physical(value)
        if physical is None:
            raise CommandError(INVALID_VALUE, f"{field_id}: {value!r} does not fit the signal")
        async with self._send_lock:
            bus = self._bus
            if bus is None or not self.connected:
                raise CommandError(PROVIDER_UNAVAILABLE, f"CAN bus {self.channel} is not connected")
            message = spec.message
            data = spec.defaults | {k: signal_number(spec, k, v) for k, v in spec.values.items()}
            data[signal.signal.name] = physical
            select_multiplexers(message, signal.signal, data)
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
            "invalid_signals": self.invalid_signals,
            "out_of_range": self.out_of_range,
            "error_frames": self.error_frames,
            "frames_sent": self.frames_sent,
            "send_errors": self.send_errors,
            "bus_opens": self.bus_opens,
            "last_error": self.last_error,
            "queued": len(self.inbox),
            "messages": sum(1 for s in self.model.specs.values() if s.message is not None),
            "nodes_online": sum(1 for s in self.model.states.values() if s.online),
        }

    # Connection ------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Open the bus, run until it fails, reopen with backoff; never gives up."""
        minimum = self.options["reconnect_interval"]
        maximum = max(minimum, self.options["reconnect_max_interval"])
        delay = minimum
        health = self.context.health
        while True:
            try:
                bus = await self._open()
            except Exception as err:  # python-can raises many types for a missing interface
                self.last_error = f"open: {err}"
                health.failed(self.bus_loop, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, maximum)
                continue
            health.recovered(self.bus_loop)
            opened = time.monotonic()
            try:
                exc = await self._run(bus)
            except Exception as err:  # a bug must not end the supervision: record it, reopen
                exc = err
            self.last_error = f"bus: {exc!r}"
            if time.monotonic() - opened > STABLE_SECONDS:
                delay = minimum
            health.failed(self.bus_loop, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, maximum)

    async def _open(self) -> can.BusABC:
        task = asyncio.ensure_future(asyncio.to_thread(transport.open_bus, self.options))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # The open goes on in its thread: wait for it, and close what it opened.
            with contextlib.suppress(Exception):
                bus = await task
                await asyncio.to_thread(bus.shutdown)
            raise

    async def _run(self, bus: can.BusABC) -> Exception:
        """Read `bus` until it fails; returns the failure. Always closes the bus."""
        loop = asyncio.get_running_loop()
        failed: asyncio.Future[Exception] = loop.create_future()
        self._failed = failed
        self._listener = listener = FrameListener(self, bus)
        self._overflow_seen = 0
        notifier: can.Notifier | None = None
        try:
            # No loop= here: the listener runs in the Notifier's thread and hands frames over in
            # batches (one wakeup per batch, not per frame), and a read error does not kill the
            # thread with an unhandled exception but reaches on_error().
            notifier = can.Notifier(bus, [listener], timeout=transport.RECV_TIMEOUT)
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
            await asyncio.to_thread(transport.close_bus, notifier, bus)
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
            if self.model.own is not None:
                self._set_online(self.model.own, True, time.monotonic())
        else:
            for node in self.model.states.values():
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
        specs, decode, changes_only = self.model.specs, self._decode, self.changes_only
        unchanged = remote = failures = 0
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
            except Exception as err:  # a bug must not stop the stream: count, log, go on
                failures += 1
                self.context.health.failed(self.decode_loop, err)
                self.context.drops.drop("internal_error", self.origin, f"{msg!r}: {err!r}")
        if not failures:
            self.context.health.recovered(self.decode_loop)
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
        detail = f"{transport.INBOX_MAX} frames were waiting for the event loop"
        for _ in range(lost):
            self.context.drops.drop(CAN_OVERFLOW, self.origin, detail)

    def _decode(
        self,
        spec: MessageSpec,
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
            # The reference decode; without containers cantools returns a dict.
            decoded = cast(
                "dict[str, Any]",
                message.decode(data, decode_choices=True, scaling=True, allow_truncated=False),  # type: ignore[arg-type]
            )
        except (DecodeError, ValueError, KeyError, IndexError) as err:
            self.decode_errors += 1
            detail = f"{message.name}: {err or type(err).__name__} (data {bytes(data).hex()})"
            self.context.drops.drop(CAN_DECODE_ERROR, spec.origin, detail)
            return
        if not sent:
            self.frames_decoded += 1
        spec.last_data = data
        last, plain, converters = spec.values, spec.plain, spec.converters
        out: dict[str, object] = {}
        changes_only = self.changes_only
        for name, value in decoded.items():
            if changes_only and last.get(name, _MISSING) == value:
                continue
            if (number := plain.get(name)) is not None:
                field_id, low, high = number
                out[field_id] = value
                if value < low or value > high:
                    self.out_of_range += 1
                continue
            convert = converters.get(name)
            if convert is None:  # past the fields shown of a huge message
                continue
            if not convert.values(value, out):
                self.invalid_signals += 1
                detail = f"{message.name}.{name}: {value!r} is not a value a field holds"
                self.context.drops.drop(CAN_SIGNAL_INVALID, spec.origin, detail)
            elif convert.low is not None and convert.out_of_range(convert.number(value)):
                self.out_of_range += 1
        last.update(decoded)
        if out:
            self.context.submit(FieldValues(spec.node.id, spec.source_id, out), spec.origin)

    def _unknown(self, msg: can.Message) -> MessageSpec | None:
        key = frame_key(msg.arbitration_id, msg.is_extended_id)
        model = self.model
        if model.raw_enabled and (spec := model.raw_spec(msg, key)) is not None:
            assert model.raw_node is not None
            announced = NodeAnnounced(node_from_dict(model.raw_node.definition))
            self.context.submit(announced, self.origin)
            return spec
        self.unknown_ids += 1
        detail = (
            f"raw source limit ({self.options['raw_max_ids']}) reached"
            if self.model.raw_enabled
            else "id not in the DBC (set raw = true to show it)"
        )
        origin = f"can:{self.channel}:0x{msg.arbitration_id:x}"
        self.context.drops.drop(UNKNOWN_CAN_ID, origin, f"{detail}; data {msg.data.hex()}")
        return None

    def _error_frame(self, msg: can.Message) -> None:
        self.error_frames += 1
        classes = msg.arbitration_id
        data = bytes(msg.data)
        state = transport.error_frame_state(classes, data)
        if state is not None and self._bus_state not in (BUS_CLOSED, state):
            _LOGGER.warning("CAN provider %s: bus %s is %s", self.name, self.channel, state)
            self._set_bus_state(state)
        self.context.drops.drop(
            CAN_ERROR_FRAME,
            f"can:{self.channel}:0x{classes:x}",
            f"error frame {'+'.join(transport.error_names(classes))} data {data.hex()}",
        )

    # Event loop: liveness ----------------------------------------------------------------------

    def _set_online(self, node: NodeState, online: bool, now: float) -> None:
        node.online = online
        if online:
            node.online_since = node.heartbeat_at = now
        self.context.submit(NodeStatus(node.id, online), self.origin)

    async def _watch_step(self) -> None:
        """Mark nodes offline whose cyclic frames stopped; heartbeat the others."""
        await asyncio.sleep(self._check_interval)
        self.check_liveness(time.monotonic())

    def check_liveness(self, now: float) -> None:
        """One liveness pass (public for tests and benches).

        A node is offline as soon as one of its cyclic messages, seen since it came online, is
        overdue by `offline_after_cycles` cycles; a cyclic message it has not sent since then
        (optional, or sent only in some modes) does not count.
        """
        for node in self.model.states.values():
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


def signal_number(spec: MessageSpec, name: str, value: Any) -> Any:
    """A last decoded value as cantools encodes it (a label as its scaled raw value)."""
    shown = spec.converters.get(name)
    return value if shown is None else shown.number(value)
