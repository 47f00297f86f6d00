"""Gateway commands shared by the WebSocket and REST APIs, with structured error codes."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from voluptuous.humanize import humanize_error

from . import __version__
from .models import InvalidValueError, Node, Value, node_from_dict
from .pacing import pause
from .schemas import (
    BACKUP_OUTLINE,
    BACKUP_VALUE_SCHEMA,
    NAME_MAX,
    SCHEMA_VERSION,
    STORED_NODE_SCHEMA,
    Scalar,
)

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
INVALID_DEFINITION = "invalid_definition"
ALREADY_EXISTS = "already_exists"
WRONG_KIND = "wrong_kind"
INVALID_FIRMWARE = "invalid_firmware"
FIRMWARE_TOO_LARGE = "firmware_too_large"
IN_USE = "in_use"
BUSY = "busy"
NOT_SUPPORTED = "not_supported"
# Errors of a firmware job (install_firmware), reported as the job's error rather than a result.
TIMEOUT = "timeout"
FIRMWARE_REJECTED = "firmware_rejected"


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
        self._restoring = asyncio.Lock()  # one restore swaps the state at a time

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
            "providers": self.providers(),
        }

    def providers(self) -> list[dict[str, Any]]:
        """Each provider's connection: `error` says why it is not connected (null if unknown)."""
        return [
            {"name": p.name, "type": p.kind, "connected": p.connected,
             "error": None if p.connected else p.error}
            for p in self.gateway.providers.values()
        ]  # fmt: skip

    def state(self) -> dict[str, Any]:
        """Everything a client needs to mirror the gateway."""
        return {
            "gateway": self.info(),
            "status": self.status(),
            "alarms": self.gateway.automations.alarms(),
            "automations": self.gateway.automations.listing(),
            "nodes": [n.as_dict() for n in self._nodes.values()],
        }

    def status(self) -> dict[str, Any]:
        """The gateway's health figures, as streamed in `gateway status` events."""
        return {
            "processed": self.gateway.processor.processed,
            "dropped": self.gateway.drops.total,
            "recorder": self.recorder_status(),
            "problems": self.gateway.health.problems(),
            "providers": self.providers(),
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
            value = field.coerce(Scalar(raw))
        except vol.Invalid as err:
            raise CommandError(INVALID_VALUE, f"{field_id}: {err.msg}") from None
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
        nodes = list(self._nodes.values())
        return {
            "format": "edgeiot-backup",
            "version": 1,
            "gateway_id": self.gateway.gateway_id,
            "created": time.time(),
            "nodes": [n.definition() for n in nodes],
            "values": [
                {
                    "node_id": n.id,
                    "source_id": s.id,
                    "field_id": f.id,
                    "value": f.value,
                    "updated": f.updated,
                }
                for n in nodes
                for s in n.sources.values()
                for f in s.fields.values()
                if f.value is not None
            ],
            "automations": self.gateway.automations.backup(),
            # By reference: the entries, not the files (those stay in <data_dir>/firmware/).
            "firmware": self.gateway.firmware.list(),
        }

    async def restore(self, document: object) -> dict[str, int]:
        """Replace every node and value with exactly the backup's; a bad backup changes nothing.

        The document is checked node by node and value by value with pauses, so a large restore
        never stalls the event loop.
        """
        nodes = await _restored_nodes(document)
        automations = self.gateway.automations
        assert isinstance(document, dict)  # checked by _restored_nodes
        try:
            definitions = automations.check_backup(document.get("automations", []))
        except CommandError as err:
            raise CommandError(INVALID_BACKUP, err.message) from None
        async with self._restoring:
            await self.gateway.store.replace_all(list(nodes.values()))
            self.gateway.processor.replace_all(nodes.values())
            await automations.restore(definitions)
        return {"nodes": len(nodes), "automations": len(definitions)}

    def diagnostics(self) -> dict[str, Any]:
        """Counters: processed messages, drops by reason, providers, API clients."""
        gateway = self.gateway
        return {
            "processed": gateway.processor.processed,
            "dropped": dict(gateway.drops.counts),
            "providers": {p.name: p.diagnostics() for p in gateway.providers.values()},
            "api_clients": gateway.api.client_count if gateway.api else 0,
            "api_errors": dict(gateway.api.errors) if gateway.api else {},
            "api_coalesced": gateway.api.coalesced if gateway.api else 0,
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


def _validate(schema: vol.Schema, data: object, where: str) -> Any:
    try:
        return schema(data)
    except vol.Invalid as err:
        raise CommandError(INVALID_BACKUP, where + humanize_error(data, err)) from None


async def _restored_nodes(document: object) -> dict[str, Node]:
    """The nodes of a backup with their values; invalid_backup for anything ambiguous."""
    backup = _validate(BACKUP_OUTLINE, document, "")
    nodes: dict[str, Node] = {}
    for index, data in enumerate(backup["nodes"]):
        node = node_from_dict(_validate(STORED_NODE_SCHEMA, data, f"nodes[{index}]: "))
        if node.id in nodes:
            raise CommandError(INVALID_BACKUP, f"nodes[{index}]: duplicate node id {node.id!r}")
        nodes[node.id] = node
        await pause()
    seen: set[tuple[str, str, str]] = set()
    for index, data in enumerate(backup["values"]):
        item = _validate(BACKUP_VALUE_SCHEMA, data, f"values[{index}]: ")
        key = (item["node_id"], item["source_id"], item["field_id"])
        owner = nodes.get(key[0])
        field = owner.field(key[1], key[2]) if owner else None
        if field is None:
            raise CommandError(INVALID_BACKUP, f"values[{index}]: no field {'/'.join(key)}")
        if key in seen:
            raise CommandError(INVALID_BACKUP, f"values[{index}]: {'/'.join(key)} given twice")
        seen.add(key)
        if item["value"] is not None:
            try:
                field.value, field.updated = field.coerce(item["value"]), item["updated"]
            except InvalidValueError as err:
                raise CommandError(INVALID_BACKUP, f"values[{index}]: {err}") from None
        await pause()
    return nodes
