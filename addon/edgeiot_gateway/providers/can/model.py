"""The CAN provider's model of the bus: DBC transmitters as nodes, messages as sources (with
what decoding and encoding each needs), the raw node for ids the DBC lacks."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import can
import voluptuous as vol
from cantools.database.can import Database
from cantools.database.can import Message as DbcMessage
from voluptuous.humanize import humanize_error

from ...config import ConfigError
from ...models import FieldType
from ...schemas import STORED_NODE_SCHEMA
from .dbc import (
    MAX_FIELDS,
    MAX_SOURCES,
    NAME_MAX,
    SignalField,
    default,
    frame_key,
    multiplexer_defaults,
    raw_source_id,
    sanitize_id,
    signal_field,
)

_LOGGER = logging.getLogger(__name__)

# A DBC node is split into several EdgeIoT nodes past these (the gateway's default limits).
NODE_FIELDS_MAX = 512
NODE_DEFINITION_BYTES = 48 * 1024

RAW_NODE = "can-raw"
UNOWNED_NODE = "can-bus"  # messages without a transmitter (Vector__XXX)


@dataclass(slots=True, eq=False)
class NodeState:
    """Liveness of one EdgeIoT node of this provider."""

    id: str
    definition: dict[str, Any]
    own: bool = False  # the gateway's own DBC node: online while the bus is
    online: bool = False
    online_since: float = 0.0
    heartbeat_at: float = 0.0
    specs: list[MessageSpec] = field(default_factory=list)
    cyclic: list[MessageSpec] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class MessageSpec:
    """Everything needed to decode (and encode) one CAN id, prepared once."""

    key: int
    node: NodeState
    source_id: str
    origin: str
    message: DbcMessage | None = None  # None: a raw source
    writable: bool = False
    timeout: float | None = None  # seconds of silence before the node counts it missing
    # By signal name: plain numbers (field id and DBC range), or how to convert the value.
    plain: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    converters: dict[str, SignalField] = field(default_factory=dict)
    signals: dict[str, SignalField] = field(default_factory=dict)  # by field id
    values: dict[str, Any] = field(default_factory=dict)  # last decoded values by signal
    defaults: dict[str, Any] = field(default_factory=dict)
    last_data: bytes | bytearray | None = None
    seen: float = 0.0  # time.monotonic() of the last frame


class BusModel:
    """The nodes and message specs of one CAN provider, built from its DBC and options."""

    def __init__(self, name: str, channel: str | int, options: dict[str, Any]) -> None:
        self.name = name
        self.channel = channel
        self.options = options
        self.specs: dict[int, MessageSpec] = {}  # by frame key
        self.sources: dict[tuple[str, str], MessageSpec] = {}  # by (node id, source id)
        self.states: dict[str, NodeState] = {}
        self.own: NodeState | None = None
        self.raw_enabled: bool = options["raw"]
        self.raw_node: NodeState | None = None

    def build(self, database: Database | None) -> None:
        """Nodes, sources and fields for the DBC (without one: only the raw node)."""
        prefix: str = self.options["node_prefix"]
        gateway: str | None = self.options.get("gateway_node")
        writable_names = set(self.options["writable_messages"])
        if database is None:
            self.raw_enabled = True  # no DBC: everything is shown raw
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
                base = sanitize_id(prefix + (owner or UNOWNED_NODE), taken)
                self._add_owner(
                    owner=owner,
                    base=base,
                    messages=owners[owner],
                    gateway=gateway,
                    writable_names=writable_names,
                    taken=taken,
                )
        if self.raw_enabled:
            raw_id = sanitize_id(prefix + RAW_NODE, self.states)
            self.raw_node = NodeState(raw_id, self._node_definition(raw_id, "CAN raw frames"))
            self.states[raw_id] = self.raw_node
        self.own = next((s for s in self.states.values() if s.own), None)

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

    def _add_owner(
        self,
        *,
        owner: str | None,
        base: str,
        messages: list[DbcMessage],
        gateway: str | None,
        writable_names: set[str],
        taken: set[str],
    ) -> None:
        """The nodes of one DBC transmitter: one, or several when it has too many messages."""
        own = owner is not None and owner == gateway
        name = owner or "CAN bus (no transmitter)"
        states: list[NodeState] = []
        fields = size = 0
        source_ids: set[str] = set()
        for message in messages:
            state = states[-1] if states else None
            spec, source = self._message_spec(message, gateway, writable_names)
            count, length = len(source["fields"]), len(json.dumps(source))
            if (
                state is None
                or len(state.specs) >= MAX_SOURCES
                or fields + count > NODE_FIELDS_MAX
                or size + length > NODE_DEFINITION_BYTES
            ):
                number = len(states) + 1
                node_id = base if number == 1 else sanitize_id(f"{base}-{number}", taken)
                taken.add(node_id)
                label = name if number == 1 else f"{name} ({number})"
                state = NodeState(node_id, self._node_definition(node_id, label), own=own)
                states.append(state)
                fields = size = 0
                source_ids = set()
            fields, size = fields + count, size + length
            spec.node = state
            spec.source_id = source["id"] = sanitize_id(message.name, source_ids)
            source_ids.add(spec.source_id)
            if message.cycle_time and not own:
                spec.timeout = self.options["offline_after_cycles"] * message.cycle_time / 1000
                state.cyclic.append(spec)
            state.definition["sources"].append(source)
            if spec.key in self.specs:
                _LOGGER.warning(
                    "CAN provider %s: id 0x%x is defined twice in the DBC; using %s",
                    self.name,
                    message.frame_id,
                    message.name,
                )
            self.specs[spec.key] = spec
            self.sources[(state.id, spec.source_id)] = spec
            state.specs.append(spec)
        for state in states:
            try:
                state.definition = STORED_NODE_SCHEMA(state.definition)
            except vol.Invalid as err:
                raise ConfigError(
                    f"CAN provider {self.name}: node {state.id}: "
                    f"{humanize_error(state.definition, err)}"
                ) from None
            self.states[state.id] = state

    def _message_spec(
        self, message: DbcMessage, gateway: str | None, writable_names: set[str]
    ) -> tuple[MessageSpec, dict[str, Any]]:
        """A message's decoding spec and its source definition (node and id set by the caller)."""
        writable = (gateway is not None and gateway in message.senders) or (
            message.name in writable_names
        )
        placeholder = NodeState("", {})
        spec = MessageSpec(
            key=frame_key(message.frame_id, message.is_extended_frame),
            node=placeholder,
            source_id="",
            origin=f"can:{self.channel}:0x{message.frame_id:x}",
            message=message,
            writable=writable,
        )
        fields: list[dict[str, Any]] = []
        taken: set[str] = set()
        for signal in message.signals:
            if len(fields) >= MAX_FIELDS - 1:
                _LOGGER.warning(
                    "CAN message %s: only its first %d fields are shown", message.name, len(fields)
                )
                break
            shown = signal_field(signal, sanitize_id(signal.name, taken), taken)
            fields += shown.definitions(writable)
            plain = shown.kind in (FieldType.INT, FieldType.FLOAT) and shown.label_id is None
            if plain and not signal.is_float:  # published as cantools decodes it
                low = -math.inf if shown.low is None else shown.low
                high = math.inf if shown.high is None else shown.high
                spec.plain[signal.name] = (shown.field_id, low, high)
            else:
                spec.converters[signal.name] = shown
            spec.signals[shown.field_id] = shown
        for signal in message.signals:
            spec.defaults.setdefault(signal.name, default(signal))
        multiplexer_defaults(message, spec.defaults)
        return spec, {"id": "", "name": message.name[:NAME_MAX], "fields": fields}

    def raw_spec(self, msg: can.Message, key: int) -> MessageSpec | None:
        """The raw source for a frame id not in the DBC, added (and announced) on first sight."""
        node = self.raw_node
        assert node is not None
        if len(node.specs) >= self.options["raw_max_ids"]:
            return None
        source_id = raw_source_id(msg.arbitration_id, msg.is_extended_id)
        spec = MessageSpec(
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
        self.specs[key] = spec
        self.sources[(node.id, source_id)] = spec
        return spec
