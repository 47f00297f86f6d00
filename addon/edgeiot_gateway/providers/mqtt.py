"""MQTT provider: EdgeIoT node protocol v1 through a broker, with a persistent QoS-1 session."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
import voluptuous as vol
from paho.mqtt.enums import CallbackAPIVersion

from ..models import Node, Value
from ..protocol import DEFAULT_PREFIX, ProtocolError, Topics, encode_status
from .base import Provider, ProviderContext, register_provider

_LOGGER = logging.getLogger(__name__)

# Messages handled per event-loop turn, so a flood cannot starve the API.
DRAIN_BATCH = 2000

OPTIONS_SCHEMA = vol.Schema(
    {
        vol.Optional("host", default="127.0.0.1"): str,
        vol.Optional("port", default=1883): vol.All(int, vol.Range(min=1, max=65535)),
        vol.Optional("username"): vol.Any(None, str),
        vol.Optional("password"): vol.Any(None, str),
        vol.Optional("prefix", default=DEFAULT_PREFIX): vol.All(str, vol.Match(r"^[^#+]+[^/#+]$")),
        vol.Optional("client_id"): vol.All(str, vol.Length(min=1, max=128)),
        vol.Optional("keepalive", default=30): vol.All(int, vol.Range(min=5, max=3600)),
    },
    extra=vol.PREVENT_EXTRA,
)


@register_provider
class MqttProvider(Provider):
    """Talks to EdgeIoT nodes through an MQTT broker.

    paho runs its network loop in a thread; received messages are queued and handed to the
    processor in batches on the event loop. The session is persistent (clean_session=False,
    fixed client id) and commands use QoS 1, so nothing is lost across a broker restart.
    """

    kind = "mqtt"

    def __init__(self, name: str, context: ProviderContext, options: dict[str, Any]) -> None:
        options = OPTIONS_SCHEMA(options)
        super().__init__(name, context, options)
        self.topics = Topics(options["prefix"], name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._wakeup_pending = False
        self._connected = False
        self.received = 0
        client_id = options.get("client_id") or f"edgeiot-gateway-{context.gateway_id}"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        if options.get("username"):
            self._client.username_pw_set(options["username"], options.get("password"))
        self._client.max_queued_messages_set(0)  # unbounded: a QoS-1 command is never refused
        self._client.max_inflight_messages_set(100)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        status = self.topics.gateway_status(context.gateway_id)
        self._client.will_set(status, encode_status(False), qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        opts = self.options
        _LOGGER.info("MQTT provider %s connecting to %s:%s", self.name, opts["host"], opts["port"])
        self._client.connect_async(opts["host"], opts["port"], keepalive=opts["keepalive"])
        self._client.loop_start()

    async def stop(self) -> None:
        if self._connected:
            status = self.topics.gateway_status(self.context.gateway_id)
            info = self._client.publish(status, encode_status(False), qos=1, retain=True)
            await asyncio.to_thread(info.wait_for_publish, 2)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self._drain()

    async def set_field(self, node: Node, source_id: str, field_id: str, value: Value) -> None:
        self._publish(*self.topics.encode_set(node.id, source_id, field_id, value))

    async def node_action(self, node: Node, action: str) -> None:
        self._publish(*self.topics.encode_action(node.id, action))

    def _publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=False)
        # While disconnected paho keeps QoS-1 messages and sends them after reconnecting.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def diagnostics(self) -> dict[str, Any]:
        return {"connected": self._connected, "received": self.received, "queued": len(self._inbox)}

    # paho network thread ------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            _LOGGER.warning("MQTT provider %s: connection refused: %s", self.name, reason)
            return
        client.subscribe(self.topics.subscription(), qos=1)
        status = self.topics.gateway_status(self.context.gateway_id)
        client.publish(status, encode_status(True), qos=1, retain=True)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            _LOGGER.error("MQTT provider %s: subscription refused: %s", self.name, reasons)
            return
        self._set_connected(True)  # connected = the subscription is active

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        _LOGGER.warning("MQTT provider %s disconnected: %s", self.name, reason)
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.context.connection_changed, self.name, connected)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.append((message.topic, message.payload))
        if not self._wakeup_pending and self._loop is not None:
            self._wakeup_pending = True
            self._loop.call_soon_threadsafe(self._drain)

    # event loop -----------------------------------------------------------------------------

    def _drain(self) -> None:
        self._wakeup_pending = False
        inbox, decode, submit = self._inbox, self.topics.decode, self.context.submit
        count = min(len(inbox), DRAIN_BATCH)
        for _ in range(count):
            topic, payload = inbox.popleft()
            try:
                if (message := decode(topic, payload)) is not None:
                    submit(message, topic)
            except ProtocolError as err:
                self.context.drops.drop(err.reason, topic, str(err))
            except Exception as err:  # a bug must not stop the stream: count it, log it
                _LOGGER.exception("MQTT provider %s failed on %s", self.name, topic)
                self.context.drops.drop("internal_error", topic, repr(err))
        self.received += count
        if inbox and not self._wakeup_pending and self._loop is not None:
            self._wakeup_pending = True
            self._loop.call_soon(self._drain)
