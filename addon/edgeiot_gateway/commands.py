"""Gateway commands shared by the WebSocket and REST APIs, with structured error codes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from voluptuous.humanize import humanize_error

from . import __version__
from .models import InvalidValueError, Node, Value, node_from_dict
from .schemas import BACKUP_SCHEMA, NAME_MAX, SCHEMA_VERSION

if TYPE_CHECKING:
    from .gateway import Gateway
    from .providers import Provider

# Error codes (docs/protocol.md lists them with their meaning).
INVALID_MESSAGE = "invalid_message"
UNKNOWN_COMMAND = "unknown_command"
NOT_FOUND = "not_found"
INVALID_VALUE = "invalid_value"
NOT_WRITABLE = "not_writable"
UNSUPPORTED_ACTION = "unsupported_action"
PROVIDER_UNAVAILABLE = "provider_unavailable"
SCHEMA_INCOMPATIBLE = "schema_incompatible"
INVALID_BACKUP = "invalid_backup"
MESSAGE_TOO_LARGE = "message_too_large"
INTERNAL_ERROR = "internal_error"


class CommandError(Exception):
    """A command that cannot be carried out; `code` is one of the error codes above."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Commands:
    """What API clients can ask of the gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @property
    def _nodes(self) -> dict[str, Node]:
        return self.gateway.processor.nodes

    def info(self) -> dict[str, Any]:
        """The gateway's identity and providers."""
        gateway = self.gateway
        return {
            "gateway_id": gateway.gateway_id,
            "version": __version__,
            "schema_version": SCHEMA_VERSION,
            "providers": [
                {"name": p.name, "type": p.kind, "connected": p.connected}
                for p in gateway.providers.values()
            ],
        }

    def state(self) -> dict[str, Any]:
        """Everything a client needs to mirror the gateway."""
        return {
            "gateway": self.info(),
            "status": self.status(),
            "nodes": [n.as_dict() for n in self._nodes.values()],
        }

    def status(self) -> dict[str, Any]:
        """The gateway's health figures, as streamed in `gateway status` events."""
        return {
            "processed": self.gateway.processor.processed,
            "dropped": self.gateway.drops.total,
            "recorder": self.recorder_status(),
            "problems": self.gateway.health.problems(),
        }

    def node(self, node_id: str) -> Node:
        """The node with that id, or not_found."""
        node = self._nodes.get(node_id)
        if node is None:
            raise CommandError(NOT_FOUND, f"no node {node_id!r}")
        return node

    async def set_field(
        self, node_id: str, source_id: str, field_id: str, raw: object, ack: bool | None = None
    ) -> Value:
        """Validate a value against the field and send it to the node; returns the sent value.

        `ack`: ask the node to echo it (MySensors); None: the provider's default."""
        node = self.node(node_id)
        field = node.field(source_id, field_id)
        if field is None:
            raise CommandError(NOT_FOUND, f"node {node_id!r} has no field {source_id}/{field_id}")
        if not field.writable:
            raise CommandError(NOT_WRITABLE, f"{node_id}/{source_id}/{field_id} is read-only")
        try:
            value = field.coerce(raw)
        except InvalidValueError as err:
            raise CommandError(INVALID_VALUE, str(err)) from None
        provider = self._provider(node)
        if ack is None:
            await provider.set_field(node, source_id, field_id, value)
        else:
            await provider.set_field_echo(node, source_id, field_id, value, ack)
        return value

    async def node_action(self, node_id: str, action: str) -> None:
        """Run an action the node declared."""
        node = self.node(node_id)
        if action not in node.actions:
            raise CommandError(UNSUPPORTED_ACTION, f"node {node_id!r} has no action {action!r}")
        await self._provider(node).node_action(node, action)

    def rename_node(self, node_id: str, name: str | None) -> dict[str, Any]:
        """Give a node a user name; None or "" restores its own name."""
        node = self.node(node_id)
        if name is not None and len(name) > NAME_MAX:
            raise CommandError(INVALID_VALUE, f"a name has at most {NAME_MAX} characters")
        self.gateway.processor.rename(node, name or None)
        return node.as_dict()

    def remove_node(self, node_id: str) -> None:
        """Forget a node (it comes back if it announces itself again)."""
        self.node(node_id)
        self.gateway.processor.remove(node_id)

    def backup(self) -> dict[str, Any]:
        """The whole store as one JSON document."""
        nodes = [n.as_dict() for n in self._nodes.values()]
        return {
            "format": "edgeiot-backup",
            "version": 1,
            "gateway_id": self.gateway.gateway_id,
            "created": time.time(),
            "nodes": [n.definition() for n in self._nodes.values()],
            "values": [
                {
                    "node_id": n["id"],
                    "source_id": s["id"],
                    "field_id": f["id"],
                    "value": f["value"],
                    "updated": f["updated"],
                }
                for n in nodes
                for s in n["sources"]
                for f in s["fields"]
                if f["value"] is not None
            ],
        }

    async def restore(self, document: object) -> dict[str, int]:
        """Replace every node and value with a backup's."""
        try:
            backup = BACKUP_SCHEMA(document)
        except vol.Invalid as err:
            raise CommandError(INVALID_BACKUP, humanize_error(document, err)) from None
        nodes = {data["id"]: node_from_dict(data) for data in backup["nodes"]}
        for item in backup["values"]:
            node = nodes.get(item["node_id"])
            field = node.field(item["source_id"], item["field_id"]) if node else None
            if field is None or item["value"] is None:
                continue
            try:
                field.value, field.updated = field.coerce(item["value"]), item["updated"]
            except InvalidValueError as err:
                raise CommandError(INVALID_BACKUP, str(err)) from None
        await self.gateway.store.replace_all(list(nodes.values()))
        self.gateway.processor.replace_all(nodes.values())
        return {"nodes": len(nodes)}

    def diagnostics(self) -> dict[str, Any]:
        """Counters: processed messages, drops by reason, providers, API clients."""
        gateway = self.gateway
        return {
            "processed": gateway.processor.processed,
            "dropped": dict(gateway.drops.counts),
            "providers": {p.name: p.diagnostics() for p in gateway.providers.values()},
            "api_clients": gateway.api.client_count if gateway.api else 0,
            "api_errors": dict(gateway.api.errors) if gateway.api else {},
            "store_writes": gateway.store.writes,
            "recorder": self.recorder_status(),
            "loops": gateway.health.as_dict(),
            "acks_waiting": gateway.durability.waiting,
        }

    def recorder_status(self) -> dict[str, Any] | None:
        """The InfluxDB recorder's figures (None when recording is off)."""
        recorder = self.gateway.recorder
        return None if recorder is None else recorder.status()

    def _provider(self, node: Node) -> Provider:
        # A disconnected provider may still accept commands (MQTT queues QoS-1 until reconnected).
        provider = self.gateway.providers.get(node.provider)
        if provider is None:
            raise CommandError(PROVIDER_UNAVAILABLE, f"provider {node.provider!r} is not running")
        return provider
