"""The node's MQTT link: micropython-lib's `umqtt.simple` (PyPI `micropython-umqtt-simple`),
driven from asyncio.

Why umqtt.simple: it is micropython-lib's own MQTT 3.1.1 client, small enough for an ESP8266,
released on a registry (fetched at build and test time, pinned by sha256), and has what the
protocol needs: a fixed client id with `clean_session=False`, a Last Will, QoS 1 both ways.

It is blocking: `connect`, `subscribe` and a QoS-1 `publish` wait on the socket for the broker's
answer, and `wait_msg` reads a whole packet. Rather than a thread (ESP8266 has none) or a second
hand-written client, one task owns the client and calls it only when it will not wait long:
- incoming packets: `select.poll` on the socket with timeout 0 says whether bytes are waiting;
  only then `check_msg()` reads one packet (the rest of it is on its way), otherwise the task
  sleeps `POLL_MS` and every other task runs;
- outgoing: the owner drains a bounded outbox; a QoS-1 publish blocks for one round trip to the
  broker on the local network (PUBLISH → PUBACK), and messages arriving meanwhile still reach the
  callback;
- liveness: a PINGREQ every keepalive/2; when nothing at all (not even a PINGRESP) arrived for
  1.5 times the keepalive the link counts as dead and is closed;
- a call that hangs for good (a half-open TCP connection in the middle of a blocking exchange)
  stops the event loop, so the hardware watchdog (fed by a task of that loop) resets the board.
"""

import select
import socket
import time

from umqtt.simple import MQTTClient

POLL_MS = 5
IPPROTO_TCP = getattr(socket, "IPPROTO_TCP", 6)  # the same numbers on Linux and lwIP
TCP_NODELAY = getattr(socket, "TCP_NODELAY", 1)


class Link:
    """One connection to the broker (a new Link per connection attempt)."""

    def __init__(self, broker, will_topic, will_payload, on_message):
        self._client = MQTTClient(
            broker["client_id"],
            broker["host"],
            port=broker["port"],
            user=broker["user"],
            password=broker["password"] or "" if broker["user"] is not None else None,
            keepalive=broker["keepalive"],
        )
        self._client.set_callback(on_message)
        self._client.set_last_will(will_topic, will_payload, retain=True, qos=1)
        self._keepalive_ms = broker["keepalive"] * 1000
        self._poller = None
        self._last_rx = self._last_ping = time.ticks_ms()

    def connect(self):
        """Connect with a persistent session; True when the broker kept our session."""
        present = self._client.connect(clean_session=False)
        try:  # umqtt writes a packet in pieces: without this, Nagle holds each back for an ACK
            self._client.sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        except OSError:
            pass
        self._poller = select.poll()
        self._poller.register(self._client.sock, select.POLLIN)
        self._last_rx = self._last_ping = time.ticks_ms()
        return bool(present)

    def subscribe(self, topic):
        self._client.subscribe(topic, qos=1)

    def publish(self, topic, payload, retain=False):
        self._client.publish(topic, payload, retain=retain, qos=1)

    def service(self):
        """Handle what arrived and keep the connection alive; raise OSError when it is dead."""
        now = time.ticks_ms()
        for _ in range(8):  # a bounded batch, then let other tasks run
            events = self._poller.poll(0)
            if not events:
                break
            if events[0][1] & (select.POLLHUP | select.POLLERR):
                raise OSError("connection closed by the broker")
            self._last_rx = now
            self._client.check_msg()
        if time.ticks_diff(now, self._last_rx) > self._keepalive_ms * 3 // 2:
            raise OSError("no answer from the broker for 1.5 x keepalive")
        if time.ticks_diff(now, self._last_ping) >= self._keepalive_ms // 2:
            self._last_ping = now
            self._client.ping()

    def disconnect(self):
        """Clean DISCONNECT (no Last Will)."""
        try:
            self._client.disconnect()
        except OSError:
            self.close()

    def close(self):
        """Drop the connection without DISCONNECT (the broker then sends the Last Will)."""
        try:
            if self._client.sock is not None:
                self._client.sock.close()
        except OSError:
            pass
