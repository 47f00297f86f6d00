"""How MySensors lines reach the provider: a serial port or TCP socket (one line per message),
or an MQTT broker (one topic per message); reconnected with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Protocol, cast

import paho.mqtt.client as mqtt
import serialx
from paho.mqtt.enums import CallbackAPIVersion

from ...supervision import LoopHealth
from . import protocol as ms

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0
STABLE_CONNECTION = 10.0  # seconds up after which the reconnect backoff starts over
VERSION_REQUEST = ms.Message(
    ms.GATEWAY_NODE, ms.NODE_CHILD, ms.Command.INTERNAL, False, ms.Internal.I_VERSION
)


class LineSink(Protocol):
    """What a transport hands its input to (the provider)."""

    name: str
    health: LoopHealth

    def feed(self, items: list[bytes]) -> None:
        """Lines from a serial/TCP connection (event loop)."""

    def feed_threadsafe(self, item: tuple[str, bytes]) -> None:
        """An MQTT message (topic, payload), from paho's network thread."""

    def drop_raw(self, reason: str, raw: bytes, detail: str) -> None:
        """Input the transport itself rejects (over-long lines)."""

    def connection(self, connected: bool) -> None:
        """The link to the MySensors gateway came up or went down."""


class Transport:
    """How lines reach the gateway; the provider handles everything else."""

    origin: str
    connected: bool = False
    reconnects: int = 0

    async def start(self) -> None:
        """Begin connecting (returns at once)."""

    async def stop(self) -> None:
        """Disconnect and release everything."""

    def send(self, message: ms.Message) -> bool:
        """Send one message; False when not connected."""
        raise NotImplementedError

    def pause(self) -> None:
        """Stop reading for a while (the inbox is full)."""

    def resume(self) -> None:
        """Read again."""


class LineProtocol(asyncio.Protocol):
    """Splits a byte stream into lines; over-long lines are dropped whole."""

    def __init__(self, provider: LineSink) -> None:
        self.provider = provider
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.last_received = time.monotonic()
        self._rest = b""
        self._discarding = False  # inside a line that is already too long

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def data_received(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        lines = (self._rest + data if self._rest else data).split(b"\n")
        rest = lines.pop()
        if self._discarding:
            if not lines:
                self._rest = b""
                return
            del lines[0]  # the end of the over-long line
            self._discarding = False
        if len(rest) > ms.MAX_LINE_BYTES:
            self.provider.drop_raw(ms.LINE_TOO_LONG, rest, f"over {ms.MAX_LINE_BYTES} bytes")
            self._discarding = True
            rest = b""
        self._rest = rest
        if lines:
            self.provider.feed(lines)

    def eof_received(self) -> bool | None:
        return None  # close the connection; the transport reconnects

    def write(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        transport.write(data)
        return True


class StreamTransport(Transport):
    """A serial port (serialx) or an Ethernet gateway's TCP socket, reopened with backoff."""

    def __init__(self, provider: LineSink, options: dict[str, Any]) -> None:
        self._provider = provider
        self._options = options
        self._serial = options["transport"] == "serial"
        if self._serial:
            self.origin = f"mysensors:{options['device']}"
            self._check_interval = 0.0  # a vanished serial port fails reads by itself
        else:
            self.origin = f"mysensors:{options['host']}:{options['port']}"
            self._check_interval = float(options["check_interval"])
        self._protocol: LineProtocol | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"edgeiot-{self.origin}")

    async def stop(self) -> None:
        protocol = self._protocol
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.closed), CLOSE_TIMEOUT)
            if isinstance(protocol.transport, serialx.BaseSerialTransport):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(protocol.transport.wait_closed(), CLOSE_TIMEOUT)
        self.connected = False

    def send(self, message: ms.Message) -> bool:
        protocol = self._protocol
        return protocol is not None and self.connected and protocol.write(message.encode())

    def pause(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.pause_reading()

    def resume(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.resume_reading()

    async def _open(self, protocol: LineProtocol) -> None:
        loop = asyncio.get_running_loop()
        options = self._options
        transport: asyncio.BaseTransport
        if self._serial:
            transport, _ = await serialx.create_serial_connection(
                loop, lambda: protocol, options["device"], baudrate=options["baud_rate"]
            )
        else:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: protocol, options["host"], options["port"]),
                CONNECT_TIMEOUT,
            )
        protocol.transport = cast(asyncio.Transport, transport)

    async def _run(self) -> None:
        minimum = float(self._options["reconnect_interval"])
        maximum = max(minimum, float(self._options["reconnect_max_interval"]))
        delay = minimum
        health, loop_name = self._provider.health, f"mysensors {self._provider.name} link"
        while True:
            protocol = LineProtocol(self._provider)
            try:
                await self._open(protocol)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # OSError, SerialException, TimeoutError ...
                health.failed(loop_name, err)  # logged (rate-limited), counted, in the status
                await asyncio.sleep(delay)
                delay = min(delay * 2, maximum)
                continue
            health.recovered(loop_name)
            opened = time.monotonic()
            self._protocol, self.connected = protocol, True
            self._provider.connection(True)
            try:
                await self._watch(protocol)
            finally:
                self._protocol, self.connected = None, False
            error = protocol.closed.result() if protocol.closed.done() else None
            health.failed(loop_name, ConnectionError(f"{self.origin}: {error or 'closed'}"))
            self.reconnects += 1
            self._provider.connection(False)
            if time.monotonic() - opened > STABLE_CONNECTION:
                delay = minimum
            await asyncio.sleep(delay)
            delay = min(delay * 2, maximum)

    async def _watch(self, protocol: LineProtocol) -> None:
        """Wait for the connection to end; on TCP, check that the gateway still answers."""
        interval = self._check_interval
        if not interval:
            await asyncio.shield(protocol.closed)  # a cancelled watch must not cancel `closed`
            return
        while not protocol.closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(protocol.closed), interval)
            except TimeoutError:
                idle = time.monotonic() - protocol.last_received
                if idle >= 3 * interval and protocol.transport is not None:
                    _LOGGER.warning("MySensors %s: silent for %.0f s, reconnecting",
                                    self.origin, idle)  # fmt: skip
                    protocol.transport.abort()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(protocol.closed), CLOSE_TIMEOUT)
                    return
                if idle >= interval:
                    protocol.write(VERSION_REQUEST.encode())


class MqttTransport(Transport):
    """A MySensors MQTT gateway: it publishes under `out_prefix`, listens under `in_prefix`."""

    def __init__(self, provider: LineSink, options: dict[str, Any], gateway_id: str) -> None:
        self._provider = provider
        self._options = options
        self.origin = f"mysensors:mqtt://{options['host']}:{options['port']}"
        self._out, self._in, self._qos = options["out_prefix"], options["in_prefix"], options["qos"]
        client_id = options.get("client_id") or f"edgeiot-{gateway_id}-{provider.name}"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,  # the MySensors gateway publishes with QoS 0: nothing to keep
            protocol=mqtt.MQTTv311,
        )
        if options.get("username"):
            self._client.username_pw_set(options["username"], options.get("password"))
        minimum = max(1, round(float(options["reconnect_interval"])))
        maximum = max(minimum, round(float(options["reconnect_max_interval"])))
        self._client.reconnect_delay_set(min_delay=minimum, max_delay=maximum)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        options = self._options
        self._client.connect_async(options["host"], options["port"], options["keepalive"])
        self._client.loop_start()

    async def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self.connected = False

    def send(self, message: ms.Message) -> bool:
        if not self.connected:
            return False
        info = self._client.publish(message.topic(self._in), message.payload, qos=self._qos)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # paho network thread

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            _LOGGER.warning("MySensors %s: connection refused: %s", self.origin, reason)
            return
        client.subscribe(f"{self._out}/#", qos=self._qos)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            _LOGGER.error("MySensors %s: subscription refused: %s", self.origin, reasons)
            return
        self._set_connected(True)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self.connected and not self._stopping:
            _LOGGER.warning("MySensors %s: disconnected (%s)", self.origin, reason)
            self.reconnects += 1
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._provider.connection, connected)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._provider.feed_threadsafe((message.topic, message.payload))
