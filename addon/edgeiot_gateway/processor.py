"""The message processor: the only place inbound messages change nodes and field values."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable

from . import bus
from .diagnostics import DropCounter
from .limits import Budget, LimitReached, Limits
from .messages import (
    FieldValues,
    InboundMessage,
    NodeAnnounced,
    NodeEvent,
    NodeHeartbeat,
    NodeStatus,
)
from .models import InvalidValueError, Node

_LOGGER = logging.getLogger(__name__)

# A node that declared a heartbeat interval is offline after this many intervals of silence.
HEARTBEAT_GRACE = 2.5
# Removed node ids remembered (oldest forgotten first), so replayed announces do not re-add them.
MAX_TOMBSTONES = 10_000


class MessageProcessor:
    """Applies provider messages to the node registry and emits events on the bus."""

    def __init__(
        self, events: bus.EventBus, drops: DropCounter, limits: Limits | None = None
    ) -> None:
        self.nodes: dict[str, Node] = {}
        self.budget = Budget(limits or Limits())
        # Nodes removed through the API (in removal order): only a live announce re-adds them.
        self.removed: dict[str, None] = {}
        self.events = events
        self.drops = drops
        self.processed = 0

    def load(self, nodes: Iterable[Node], removed: Iterable[str] = ()) -> None:
        """Take nodes restored from the store (offline until they speak) and the ids of
        removed nodes."""
        for node in nodes:  # stored before a limit was lowered: kept, and counted
            self.budget.take(node.id, self.budget.usage(node))
            self.nodes[node.id] = node
        self.removed = dict.fromkeys(removed)

    def handle(self, message: InboundMessage, origin: str) -> None:
        """Apply one message; bad content is counted and logged, never raised."""
        self.processed += 1
        match message:
            case FieldValues():
                self._values(message, origin)
            case NodeAnnounced():
                if message.node.id in self.removed:
                    if message.replayed:
                        detail = (
                            f"node {message.node.id!r} was removed; it returns when it announces"
                        )
                        self.drops.drop("removed_node", origin, detail)
                        return
                    del self.removed[message.node.id]
                self._announce(message.node, origin)
            case NodeStatus():
                if node := self._known(message.node_id, origin):
                    self._set_online(node, message.online)
            case NodeHeartbeat():
                if node := self._known(message.node_id, origin):
                    self._heartbeat(node, message)
            case NodeEvent():
                if node := self._known(message.node_id, origin):
                    source = node.sources.get(message.source_id)
                    if source is None or message.event not in source.events:
                        detail = f"{message.source_id}/{message.event} is not declared"
                        self.drops.drop("unknown_event", origin, detail)
                        return
                    node.last_seen = time.time()
                    if not node.online:
                        self._set_online(node, True)
                    self.events.emit(
                        bus.NODE_EVENT,
                        {"node_id": node.id, "source_id": message.source_id,
                         "event_type": message.event, "data": message.data},
                    )  # fmt: skip

    def _known(self, node_id: str, origin: str) -> Node | None:
        node = self.nodes.get(node_id)
        if node is None:
            self.drops.drop("unknown_node", origin, f"node {node_id!r} has not announced itself")
        return node

    def _values(self, message: FieldValues, origin: str) -> None:
        node = self._known(message.node_id, origin)
        if node is None:
            return
        source = node.sources.get(message.source_id)
        if source is None:
            self.drops.drop("unknown_field", origin, f"no source {message.source_id!r}")
            return
        now = time.time()
        updated = now if message.timestamp is None else message.timestamp
        node.last_seen = now
        emit = self.events.emit
        for field_id, raw in message.values.items():
            field = source.fields.get(field_id)
            if field is None:
                self.drops.drop("unknown_field", origin, f"no field {field_id!r}")
                continue
            try:
                field.value = field.coerce(raw)
            except InvalidValueError as err:
                self.drops.drop("invalid_value", origin, str(err))
                continue
            field.updated = updated
            emit(
                bus.FIELD_VALUE,
                {"node_id": node.id, "source_id": source.id, "field_id": field_id,
                 "value": field.value, "updated": updated},
            )  # fmt: skip
        if not node.online:
            self._set_online(node, True)

    def _announce(self, announced: Node, origin: str) -> None:
        existing = self.nodes.get(announced.id)
        if existing is not None and (
            existing.definition() | {"name_by_user": None} == announced.definition()
        ):
            existing.last_seen = time.time()
            return
        try:
            usage = self.budget.check(announced, known=existing is not None)
        except LimitReached as err:
            self.drops.drop("limit_reached", origin, f"{announced.id}: {err}")
            return
        self.budget.take(announced.id, usage)
        if existing is None:
            announced.last_seen = time.time()
            self.nodes[announced.id] = announced
            self.events.emit(bus.NODE_ADDED, {"node": announced.as_dict()})
            return
        existing.last_seen = time.time()
        # Keep what the node did not define: the user's name, liveness and still-valid values.
        announced.name_by_user = existing.name_by_user
        announced.online, announced.battery, announced.rssi = (
            existing.online, existing.battery, existing.rssi)  # fmt: skip
        announced.last_seen = existing.last_seen
        for source in announced.sources.values():
            for field in source.fields.values():
                old = existing.field(source.id, field.id)
                if old is not None and old.type == field.type and old.value is not None:
                    with contextlib.suppress(InvalidValueError):
                        field.value, field.updated = field.coerce(old.value), old.updated
        self.nodes[announced.id] = announced
        self.events.emit(bus.NODE_UPDATED, {"node": announced.as_dict()})

    def _heartbeat(self, node: Node, message: NodeHeartbeat) -> None:
        node.last_seen = time.time()
        changed = False
        if message.battery is not None and message.battery != node.battery:
            node.battery, changed = message.battery, True
        if message.rssi is not None and message.rssi != node.rssi:
            node.rssi, changed = message.rssi, True
        if not node.online:
            self._set_online(node, True)
        elif changed:
            self._emit_status(node)

    def _set_online(self, node: Node, online: bool, reason: str | None = None) -> None:
        if node.online == online:
            return
        node.online = online
        if online:
            node.last_seen = time.time()
        _LOGGER.info("Node %s is %s%s", node.id, "online" if online else "offline",
                     f" ({reason})" if reason else "")  # fmt: skip
        self._emit_status(node)

    def _emit_status(self, node: Node) -> None:
        self.events.emit(
            bus.NODE_STATUS,
            {"node_id": node.id, "online": node.online, "battery": node.battery,
             "rssi": node.rssi, "last_seen": node.last_seen},
        )  # fmt: skip

    def check_liveness(self, now: float) -> None:
        """Mark nodes offline whose heartbeat is overdue."""
        for node in self.nodes.values():
            interval = node.heartbeat_interval
            if (
                node.online
                and interval
                and node.last_seen is not None
                and now - node.last_seen > HEARTBEAT_GRACE * interval
            ):
                self._set_online(node, False, "heartbeat timeout")

    def set_provider_offline(self, provider: str) -> None:
        """Mark every node of a provider offline (its transport is gone)."""
        for node in self.nodes.values():
            if node.provider == provider:
                self._set_online(node, False, f"{provider} disconnected")

    def rename(self, node: Node, name: str | None) -> None:
        """Give a node a user name (None restores the node's own)."""
        node.name_by_user = name
        self.events.emit(bus.NODE_UPDATED, {"node": node.as_dict()})

    def remove(self, node_id: str) -> None:
        """Forget a node; until it announces itself anew, replayed announces are ignored."""
        if self.nodes.pop(node_id, None) is not None:
            self.budget.release(node_id)
            self.removed[node_id] = None
            if len(self.removed) > MAX_TOMBSTONES:
                del self.removed[next(iter(self.removed))]
            self.events.emit(bus.NODE_REMOVED, {"node_id": node_id})

    def replace_all(self, nodes: Iterable[Node]) -> None:
        """Swap the whole registry (restore): removed, then added, events for everything."""
        for node_id in list(self.nodes):
            self.remove(node_id)
        for node in nodes:
            self.budget.take(node.id, self.budget.usage(node))
            self.removed.pop(node.id, None)
            self.nodes[node.id] = node
            self.events.emit(bus.NODE_ADDED, {"node": node.as_dict()})
