"""The bus side of the CAN provider: opening a python-can bus, the reader thread's listener,
closing, and what error frames say about the controller's state."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

import can

_LOGGER = logging.getLogger(__name__)

# Frames waiting for the event loop beyond which new ones are dropped (~12 s of a saturated
# 1 Mbit/s bus): a stalled loop must not exhaust memory.
INBOX_MAX = 100_000
# Seconds the Notifier thread blocks in bus.recv(); bounds how long stopping takes.
RECV_TIMEOUT = 0.2
# Seconds a failed reader thread waits for the provider to stop it (instead of spinning).
HALT_WAIT = 1.0

# can.Bus arguments per interface unless bus_options sets them. slcan: python-can polls the
# serial port with a 1 ms read timeout (~5% of a core while idle); 50 ms costs nothing and
# delays no frame (a read returns as soon as bytes arrive).
INTERFACE_DEFAULTS: Final[dict[str, dict[str, Any]]] = {"slcan": {"timeout": 0.05}}

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


class FrameSink(Protocol):
    """What the listener hands frames to (the provider)."""

    inbox: deque[can.Message]
    wakeup_pending: bool

    def call_threadsafe(self, callback: Callable[..., object], *args: Any) -> None: ...

    def schedule_drain(self) -> None: ...

    def bus_failed(self, bus: can.BusABC, exc: Exception) -> None: ...


class FrameListener(can.Listener):
    """Runs in the Notifier's thread: queues frames, wakes the loop once per batch."""

    def __init__(self, sink: FrameSink, bus: can.BusABC) -> None:
        self._sink = sink
        self._bus = bus
        self._inbox = sink.inbox
        self.halt = threading.Event()
        self.overflow = 0  # frames not queued (only this thread writes it)
        self._failed = False

    def on_message_received(self, msg: can.Message) -> None:
        if len(self._inbox) >= INBOX_MAX:  # the event loop is stalled: count, do not hoard
            self.overflow += 1
            return
        self._inbox.append(msg)
        sink = self._sink
        if not sink.wakeup_pending:
            sink.wakeup_pending = True
            sink.call_threadsafe(sink.schedule_drain)

    def on_error(self, exc: Exception) -> None:
        # The bus failed (unplugged adapter, closed port, bus-off raised by the driver): report
        # it once, then wait to be stopped rather than spin on a dead bus.
        if not self._failed:
            self._failed = True
            self._sink.call_threadsafe(self._sink.bus_failed, self._bus, exc)
        self.halt.wait(HALT_WAIT)

    def stop(self) -> None:
        self.halt.set()


def open_bus(options: dict[str, Any]) -> can.BusABC:
    """(Worker thread) Open the bus the provider's options describe."""
    interface = options["interface"]
    kwargs = INTERFACE_DEFAULTS.get(interface, {}) | options["bus_options"]
    if options.get("bitrate"):
        kwargs["bitrate"] = options["bitrate"]
    return can.Bus(interface=interface, channel=options["channel"], **kwargs)


def close_bus(notifier: can.Notifier | None, bus: can.BusABC) -> None:
    """(Worker thread) Stop the reader thread and shut the bus down."""
    if notifier is not None:
        notifier.stop(timeout=RECV_TIMEOUT + HALT_WAIT + 1)
    try:
        bus.shutdown()
    except Exception as err:  # a vanished adapter cannot be closed cleanly
        _LOGGER.debug("CAN bus shutdown: %r", err)


def error_frame_state(classes: int, data: bytes) -> str | None:
    """The bus state an error frame reports (None: it does not say)."""
    if classes & ERR_BUSOFF:
        return BUS_OFF
    if classes & ERR_RESTARTED:
        return BUS_ACTIVE
    if classes & ERR_CRTL and len(data) > 1:
        if data[1] & CRTL_PASSIVE:
            return BUS_PASSIVE
        if data[1] & CRTL_WARNING:
            return BUS_WARNING
        if data[1] & CRTL_ACTIVE:
            return BUS_ACTIVE
    return None


def error_names(classes: int) -> list[str]:
    """The error classes an error frame's id carries."""
    return [name for bit, name in ERROR_CLASSES if classes & bit] or ["unspecified"]
