"""MQTT provider: EdgeIoT node protocol v1 through a broker, with a persistent QoS-1 session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import voluptuous as vol
from paho.mqtt.enums import CallbackAPIVersion

from ..messages import NodeAnnounced
from ..models import Node, Value
from ..protocol import DEFAULT_PREFIX, OtaStatus, ProtocolError, Topics, encode_status
from . import mqtt_ota
from .base import Provider, ProviderContext, register_provider

_LOGGER = logging.getLogger(__name__)

# Packets read (and messages handled) per readable callback, so a flood cannot starve the API.
READ_BATCH = 2000
# paho's housekeeping (keepalive PINGREQ, dead-connection detection) runs this often.
MISC_INTERVAL = 1.0
# Reconnect backoff in seconds: doubles after each failed attempt, from MIN after a good session.
RECONNECT_MIN_DELAY = 1.0
RECONNECT_MAX_DELAY = 10.0
# stop(): how long to wait for the broker to acknowledge the retained "offline" status, for
# the DISCONNECT to be written, and for a connection attempt in progress to finish.
STOP_PUBLISH_TIMEOUT = 2.0
STOP_DISCONNECT_TIMEOUT = 1.0
STOP_CONNECT_TIMEOUT = 6.0  # paho's TCP connect timeout is 5 s

OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
        vol.Optional("username"): vol.Any(None, str),
        vol.Optional("password"): vol.Any(None, str),
        vol.Optional("prefix", default=DEFAULT_PREFIX): vol.All(str, vol.Match(r"^[^#+]+[^/#+]$")),
        vol.Optional("client_id"): vol.All(str, vol.Length(min=1, max=128)),
        vol.Optional("keepalive", default=30): vol.All(int, vol.Range(min=5, max=3600)),
        # durable: PUBACK once the message's effects are committed (nothing lost on a crash);
        # received: PUBACK on receipt (a crash loses what was not yet committed).
        vol.Optional("ack", default="durable"): vol.In(["durable", "received"]),
    },
    extra=vol.PREVENT_EXTRA,
)

# The private paho 2.x API that _LoopClient relies on (paho-mqtt is pinned < 3). Without it,
# reads fall back to the public loop_read(), which is correct but slower.
_PRIVATE_READ = all(
    hasattr(mqtt.Client, name) for name in ("_packet_read", "_loop_rc_handle", "_sock_recv")
)
READ_CHUNK = 64 * 1024  # bytes per recv() of the buffered read


class _LoopClient(mqtt.Client):
    """paho's client, driven by the asyncio event loop instead of a network thread.

    The only place that uses private paho API (paho-mqtt 2.x, pinned < 3):

    - `read_packets` calls `_packet_read()` until the socket has nothing more, since the
      public `loop_read(max_packets)` ignores its argument and stops after as many packets as
      there are messages in flight (often one);
    - `_sock_recv` is overridden to read the socket in 64 KiB chunks: paho asks for 1 byte
      (packet type), 1 byte per length byte, then the body, i.e. about three recv() system
      calls per message otherwise.
    """

    _rbuf: bytes = b""  # bytes received but not yet handed to paho: _rbuf[_rpos:]
    _rpos: int = 0
    _rsock: object = None  # the socket _rbuf came from

    @property
    def buffered(self) -> bool:
        """Whether received bytes wait in the read buffer (the selector cannot see them)."""
        return self._rpos < len(self._rbuf)

    def read_packets(self, limit: int) -> bool:
        """Read and handle the packets available now, at most `limit`.

        Returns True if it stopped at the limit with data possibly left to read.
        """
        if not _PRIVATE_READ:
            self.loop_read()
            return self.buffered
        for _ in range(limit):
            if self._sock is None:
                return False
            rc = self._packet_read()
            if rc == mqtt.MQTT_ERR_AGAIN:  # nothing more to read for now
                return False
            if rc != mqtt.MQTT_ERR_SUCCESS:  # as loop_read: close, then on_disconnect
                self._loop_rc_handle(rc)
                return False
        return True

    def force_close(self) -> None:
        """Close the connection at once (socket callbacks run; no DISCONNECT is sent)."""
        if hasattr(self, "_sock_close"):
            self._sock_close()
        elif (sock := self.socket()) is not None:
            sock.close()

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._rsock:  # a new connection: forget what the old one left
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            # Raises BlockingIOError when the socket has nothing; b"" means it was closed.
            buf = super()._sock_recv(READ_CHUNK)
            if len(buf) <= bufsize:
                self._rbuf, self._rpos = b"", 0
                return buf
            self._rbuf, pos = buf, 0
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]


def _set_nodelay(sock: object) -> None:
    """Send small packets (PUBACKs) at once: the broker holds back further QoS-1 messages
    until the ones in flight are acknowledged, so Nagle's delay would throttle the stream."""
    if (setsockopt := getattr(sock, "setsockopt", None)) is not None:
        with contextlib.suppress(OSError):  # not TCP (a Unix socket)
            setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@register_provider
class MqttProvider(Provider):
    """Talks to EdgeIoT nodes through an MQTT broker.

    paho runs on the asyncio event loop, as in Home Assistant's MQTT integration: the socket is
    watched with add_reader/add_writer, a 1 s timer runs paho's keepalive, and (re)connecting,
    which blocks on DNS and TCP, runs in the default executor. Each readable callback reads
    the available packets (up to READ_BATCH) and hands the messages to the processor; their
    PUBACKs go out once the store and the recorder's journal have committed what they caused
    (`ack = "durable"`, the default; `"received"` acknowledges on receipt). The session is
    persistent (clean_session=False, fixed client id) and commands use QoS 1, so nothing is lost
    across a broker restart or a gateway crash: the broker redelivers what was not acknowledged.
    """

    kind = "mqtt"

    def __init__(self, name: str, context: ProviderContext, options: dict[str, Any]) -> None:
        options = OPTIONS_SCHEMA(options)
        super().__init__(name, context, options)
        self.topics = Topics(options["prefix"], name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        # topic, payload, mid, qos, retained (delivered from the broker's retained store)
        self._inbox: list[tuple[str, bytes, int, int, bool]] = []
        self._generation = 0  # connections so far: an ack is only sent on its own connection
        self.acks_deferred = 0  # acknowledgements waiting for the store/journal commit
        self._connected = False
        self._error: str | None = None  # why the last connection attempt or session ended
        self._stopping = False
        self._stopped = False
        self._session_up = False  # a CONNACK accepted the current connection
        self._socket_closed = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None
        self._connect_job: asyncio.Future[Any] | None = None
        self._misc_timer: asyncio.TimerHandle | None = None
        self._watched: tuple[object, int] | None = None  # (socket, fd) given to add_reader
        self._writing = False  # add_writer is set for the watched fd
        self.received = 0
        self.ota = mqtt_ota.MqttOta(self.topics, self._publish, context.downloads, context.drops)
        client_id = options.get("client_id") or f"edgeiot-gateway-{context.gateway_id}"
        self._client = _LoopClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if options.get("username"):
            self._client.username_pw_set(options["username"], options.get("password"))
        self._client.max_queued_messages_set(0)  # unbounded: a QoS-1 command is never refused
        self._client.max_inflight_messages_set(100)
        # PUBACK only once a message's effects are committed (see _process_inbox).
        self._ack_durable = options["ack"] == "durable"
        self._client.manual_ack_set(self._ack_durable)
        status = self.topics.gateway_status(context.gateway_id)
        self._client.will_set(status, encode_status(False), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_socket_open = self._on_socket_event
        self._client.on_socket_close = self._on_socket_close
        self._client.on_socket_register_write = self._on_socket_event
        self._client.on_socket_unregister_write = self._on_socket_event

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def error(self) -> str | None:
        return self._error

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        opts = self.options
        _LOGGER.info("MQTT provider %s connecting to %s:%s", self.name, opts["host"], opts["port"])
        # Only records the parameters; the connection is made by _keep_connected.
        self._client.connect_async(opts["host"], opts["port"], keepalive=opts["keepalive"])
        self._misc_timer = loop.call_later(MISC_INTERVAL, self._misc)
        self._connector = loop.create_task(self._keep_connected(), name=f"edgeiot-{self.name}")

    async def stop(self) -> None:
        self._stopping = True  # no more reconnects
        if self._connected:
            status = self.topics.gateway_status(self.context.gateway_id)
            info = self._client.publish(status, encode_status(False), qos=1, retain=True)
            await self._wait(info.is_published, STOP_PUBLISH_TIMEOUT)
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        if (job := self._connect_job) is not None and not job.done():
            await asyncio.wait([job], timeout=STOP_CONNECT_TIMEOUT)  # it may open a socket
        self._client.disconnect()  # queues DISCONNECT; written below or by the writer callback
        self._on_writable()
        await self._wait(lambda: self._client.socket() is None, STOP_DISCONNECT_TIMEOUT)
        if self._client.socket() is not None:
            self._drop_connection()
        self._stopped = True
        if self._misc_timer is not None:
            self._misc_timer.cancel()
            self._misc_timer = None
        self._unwatch()
        self._process_inbox()

    async def set_field(self, node: Node, source_id: str, field_id: str, value: Value) -> None:
        self._publish(*self.topics.encode_set(node.id, source_id, field_id, value))

    async def node_action(self, node: Node, action: str) -> None:
        self._publish(*self.topics.encode_action(node.id, action))

    def check_firmware(self, node: Node, entry: dict[str, Any]) -> None:
        mqtt_ota.check_firmware(node, entry)

    async def install_firmware(
        self,
        node: Node,
        entry: dict[str, Any],
        path: Path,
        progress: Callable[[str, int, str | None], None],
    ) -> None:
        await self.ota.install(node, entry, path, progress)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish any message (automations); QoS-1 messages wait in paho while disconnected."""
        self._publish(topic, payload, qos, retain)

    def _publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        # While disconnected paho keeps QoS-1 messages and sends them after reconnecting.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def diagnostics(self) -> dict[str, Any]:
        return {
            "connected": self._connected,
            "received": self.received,
            "queued": len(self._inbox),
            "acks_deferred": self.acks_deferred,
        }

    # connection -----------------------------------------------------------------------------

    async def _keep_connected(self) -> None:
        """Connect, and reconnect with backoff (1 s doubling to 10 s) whenever it is lost."""
        assert self._loop is not None
        delay: float | None = None
        failing = False
        opts = self.options
        while not self._stopping:
            self._session_up = False
            self._socket_closed.clear()
            # reconnect() blocks (DNS, TCP connect); its socket callbacks come back to the loop.
            self._connect_job = self._loop.run_in_executor(None, self._client.reconnect)
            try:
                rc = await asyncio.shield(self._connect_job)
            except Exception as err:  # OSError mostly: refused, unreachable, unknown host
                log = _LOGGER.debug if failing else _LOGGER.warning
                log("MQTT provider %s cannot connect to %s:%s: %s (retrying)",
                    self.name, opts["host"], opts["port"], err)  # fmt: skip
                failing = True
                self._error = f"cannot connect to {opts['host']}:{opts['port']}: {err}"
            else:
                if rc == mqtt.MQTT_ERR_SUCCESS:
                    await self._socket_closed.wait()
                else:
                    self._error = f"connect failed: {mqtt.error_string(rc)}"
                    _LOGGER.warning("MQTT provider %s: %s", self.name, self._error)
            if self._session_up:
                delay, failing = None, False
            delay = RECONNECT_MIN_DELAY if delay is None else min(delay * 2, RECONNECT_MAX_DELAY)
            await asyncio.sleep(delay)

    async def _wait(self, done: Callable[[], bool], seconds: float) -> None:
        """Poll `done` until it is true, the connection is gone or `seconds` have passed."""
        assert self._loop is not None
        deadline = self._loop.time() + seconds
        with contextlib.suppress(RuntimeError, ValueError):  # is_published: publish failed
            while not done() and self._client.socket() is not None:
                if self._loop.time() >= deadline:
                    return
                await asyncio.sleep(0.01)

    # paho callbacks (on the event loop; socket callbacks also in the executor) ---------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            _LOGGER.warning("MQTT provider %s: connection refused: %s", self.name, reason)
            self._error = f"connection refused: {reason}"
            return
        self._session_up = True
        self._generation += 1
        client.subscribe(self.topics.subscription(), qos=1)
        status = self.topics.gateway_status(self.context.gateway_id)
        client.publish(status, encode_status(True), qos=1, retain=True)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            _LOGGER.error("MQTT provider %s: subscription refused: %s", self.name, reasons)
            self._error = f"subscription refused: {reasons}"
            return
        self._set_connected(True)  # connected = the subscription is active

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        _LOGGER.warning("MQTT provider %s disconnected: %s", self.name, reason)
        self._error = f"disconnected: {reason}"
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.context.connection_changed, self.name, connected)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        # Handled after the read (see _on_readable), acknowledged once durable.
        try:
            self._inbox.append(
                (message.topic, message.payload, message.mid, message.qos, bool(message.retain))
            )
        except UnicodeDecodeError as err:  # raising here would wedge paho's reader
            self.context.drops.drop("unknown_topic", "(topic not UTF-8)", str(err))

    def _on_socket_event(self, _c: mqtt.Client, _u: Any, _sock: Any) -> None:
        """Socket opened, or writes became pending/done: update what the loop watches."""
        self._in_loop(self._sync_watch)

    def _on_socket_close(self, _c: mqtt.Client, _u: Any, _sock: Any) -> None:
        # Called just before paho closes the socket, so the fd is still valid here.
        self._in_loop(self._sync_watch)
        self._in_loop(self._socket_closed.set)

    def _in_loop(self, func: Callable[[], object]) -> None:
        """Run `func` now if on the event loop thread, else soon on the loop."""
        if threading.get_ident() == self._loop_thread:
            func()
        elif self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(func)

    # event loop -----------------------------------------------------------------------------

    def _sync_watch(self) -> None:
        """Make the loop's reader/writer match paho's socket and its pending writes."""
        loop = self._loop
        if loop is None:
            return
        sock = self._client.socket()
        if self._watched is None or self._watched[0] is not sock:
            self._unwatch()
            if sock is None or self._stopped or (fd := sock.fileno()) < 0:
                return
            _set_nodelay(sock)
            loop.add_reader(fd, self._on_readable)
            self._watched = (sock, fd)
        want_write = self._client.want_write()
        if want_write and not self._writing:
            loop.add_writer(self._watched[1], self._on_writable)
            self._writing = True
        elif self._writing and not want_write:
            loop.remove_writer(self._watched[1])
            self._writing = False

    def _unwatch(self) -> None:
        if self._watched is None or self._loop is None:
            return
        fd = self._watched[1]
        self._watched = None
        # The fd may be closed already (a socket closed from the executor): then asyncio can
        # raise while updating its selector, after having forgotten the fd anyway.
        if self._writing:
            self._writing = False
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_writer(fd)
        with contextlib.suppress(OSError, ValueError):
            self._loop.remove_reader(fd)

    def _on_readable(self) -> None:
        client = self._client
        try:
            more = client.read_packets(READ_BATCH)
        except Exception:  # a bug: paho's packet state is unknown now, so start afresh
            _LOGGER.exception("MQTT provider %s: reading failed; reconnecting", self.name)
            self._drop_connection()
            more = False
        if not self._ack_durable and client.want_write():  # PUBACKs on their way at once
            self._on_writable()
        self._process_inbox()
        # Stopped at the batch limit with bytes in the read buffer: the selector will not
        # report them, so come back on the next loop turn.
        if more and client.buffered and self._loop is not None and not self._stopped:
            self._loop.call_soon(self._on_readable)

    def _on_writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception:  # a bug: as in _on_readable
            _LOGGER.exception("MQTT provider %s: writing failed; reconnecting", self.name)
            self._drop_connection()
        self._sync_watch()  # drop the writer once everything is written

    def _drop_connection(self) -> None:
        """Close the connection; _keep_connected reconnects (the session keeps messages)."""
        self._client.force_close()
        if self._connected:
            self._set_connected(False)

    def _misc(self) -> None:
        assert self._loop is not None
        self._misc_timer = self._loop.call_later(MISC_INTERVAL, self._misc)
        if self._client.socket() is not None:
            try:
                self._client.loop_misc()  # keepalive; closes a dead connection
            except Exception:
                _LOGGER.exception("MQTT provider %s: keepalive failed", self.name)

    def _process_inbox(self) -> None:
        inbox = self._inbox
        if not inbox:
            return
        self._inbox = []
        decode, submit = self.topics.decode, self.context.submit
        mids = [mid for _t, _p, mid, qos, _r in inbox if qos == 1] if self._ack_durable else []
        for topic, payload, _mid, _qos, retained in inbox:
            try:
                message = decode(topic, payload, retained)
                if isinstance(message, OtaStatus):
                    self.ota.status(message, topic)
                elif message is not None:
                    submit(message, topic)
                    if isinstance(message, NodeAnnounced) and not retained:
                        self.ota.announced(message.node)
            except ProtocolError as err:
                self.context.drops.drop(err.reason, topic, str(err))
            except Exception as err:  # a bug must not stop the stream: count it, log it
                _LOGGER.exception("MQTT provider %s failed on %s", self.name, topic)
                self.context.drops.drop("internal_error", topic, repr(err)[:300])
        self.received += len(inbox)
        if mids:
            # Dropped messages are acknowledged too: they were handled (counted).
            self.acks_deferred += len(mids)
            generation = self._generation
            self.context.when_durable(lambda: self._acknowledge(generation, mids))

    def _acknowledge(self, generation: int, mids: list[int]) -> None:
        """PUBACK messages whose effects are durable now. On a newer connection the broker
        redelivers them instead (the session keeps unacknowledged messages)."""
        self.acks_deferred -= len(mids)
        if generation != self._generation or self._client.socket() is None:
            return
        for mid in mids:
            self._client.ack(mid, 1)
        self._on_writable()
