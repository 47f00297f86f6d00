"""EdgeIoT node protocol v1 over MQTT: topic tree and JSON payloads (see docs/protocol.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import voluptuous as vol
from voluptuous.humanize import humanize_error

from .messages import (
    FieldValues,
    InboundMessage,
    NodeAnnounced,
    NodeEvent,
    NodeHeartbeat,
    NodeStatus,
)
from .models import ID_PATTERN, INT_MAX, INT_MIN, Value, is_valid_text, node_from_dict
from .schemas import NODE_DEFINITION, SCHEMA_VERSION, Identifier, Integer, Number, Version

DEFAULT_PREFIX = "edgeiot/v1"
MAX_PAYLOAD_BYTES = 256 * 1024
# A `ts` must lie in [0, TS_MAX] seconds: from 1970 to 2261, inside InfluxDB's time range.
TS_MAX = 9.2e9
# An event's `data`: at most this deep (nested objects/arrays) and this large once encoded.
EVENT_DATA_MAX_DEPTH = 8
EVENT_DATA_MAX_BYTES = 16 * 1024

ANNOUNCE = "announce"
STATUS = "status"
HEARTBEAT = "heartbeat"
STATE = "state"
EVENT = "event"
SET = "set"
ACTION = "action"
OTA = "ota"
OTA_STATUS = "ota_status"
GATEWAY_TO_NODE = frozenset({SET, ACTION, OTA})
OTA_STATUS_MAX_BYTES = 1024
OTA_STATES = ("downloading", "verifying", "applying", "rebooting", "done", "failed", "rolled_back")
GATEWAY_LEVEL = "$gateway"

ANNOUNCE_SCHEMA = vol.Schema({vol.Required("v"): Version, **NODE_DEFINITION})
STATUS_SCHEMA = vol.Schema(
    {vol.Required("v"): Version, vol.Required("state"): vol.In(["online", "offline"])}
)
HEARTBEAT_SCHEMA = vol.Schema(
    {
        vol.Required("v"): Version,
        vol.Optional("battery"): vol.All(Integer, vol.Range(min=0, max=100)),
        vol.Optional("rssi"): vol.All(Integer, vol.Range(min=-200, max=50)),
        vol.Optional("uptime"): vol.All(Number, vol.Range(min=0)),
    }
)
EVENT_SCHEMA = vol.Schema(
    {
        vol.Required("v"): Version,
        vol.Required("event"): Identifier,
        vol.Optional("data", default=dict): dict,
    }
)

OTA_STATUS_SCHEMA = vol.Schema(
    {
        vol.Required("v"): Version,
        vol.Required("job"): vol.All(str, vol.Length(min=1, max=64)),
        vol.Required("state"): vol.In(OTA_STATES),
        vol.Optional("progress"): vol.All(Integer, vol.Range(min=0, max=100)),
        vol.Optional("error"): vol.All(str, vol.Length(max=255)),
        vol.Optional("version"): vol.All(str, vol.Length(min=1, max=64)),
    }
)


@dataclass(slots=True, frozen=True)
class OtaStatus:
    """A node's report on an OTA job (`<node_id>/ota_status`): for the provider, not the
    processor."""

    node_id: str
    job: str
    state: str
    progress: int | None = None
    error: str | None = None
    version: str | None = None


class ProtocolError(ValueError):
    """An inbound message that does not follow the protocol; `reason` names the kind of fault."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Topics:
    """The topic tree under one prefix."""

    prefix: str = DEFAULT_PREFIX
    provider: str = "mqtt"

    def subscription(self) -> str:
        """The gateway subscribes to the whole tree, so stray topics are counted, not unseen."""
        return f"{self.prefix}/#"

    def node(self, node_id: str, kind: str, *rest: str) -> str:
        """The topic of one node's `kind` (announce, state/<source>, set/<source>/<field> ...)."""
        return "/".join((self.prefix, node_id, kind, *rest))

    def gateway_status(self, gateway_id: str) -> str:
        """The gateway's own retained status topic (with its Last Will)."""
        return f"{self.prefix}/{GATEWAY_LEVEL}/{gateway_id}/status"

    def decode(
        self, topic: str, payload: bytes, retained: bool = False
    ) -> InboundMessage | OtaStatus | None:
        """Turn one MQTT message into a processor message (None: not meant for the processor).
        `retained`: the broker delivered a retained message because the gateway subscribed.

        Raises ProtocolError for anything that breaks the protocol.
        """
        if not topic.startswith(self.prefix + "/"):
            raise ProtocolError("unknown_topic", "outside the prefix")
        parts = topic[len(self.prefix) + 1 :].split("/")
        if parts[0] == GATEWAY_LEVEL:
            return None
        if len(parts) < 2 or not ID_PATTERN.match(parts[0]):
            raise ProtocolError("unknown_topic", "no valid node id")
        node_id, kind, rest = parts[0], parts[1], parts[2:]
        if kind in GATEWAY_TO_NODE:
            return None  # commands, ours or another gateway's: not for the processor
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ProtocolError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
        if kind == STATE and len(rest) == 1:
            return _decode_state(node_id, rest[0], _json(payload))
        if (rest and kind != EVENT) or len(rest) > 1:
            raise ProtocolError("unknown_topic", f"unexpected levels after {kind}")
        if kind == OTA_STATUS and len(payload) > OTA_STATUS_MAX_BYTES:
            raise ProtocolError("oversized", f"{len(payload)} bytes > {OTA_STATUS_MAX_BYTES}")
        data = _json(payload)
        match kind:
            case "announce":
                valid = _validate(ANNOUNCE_SCHEMA, data)
                valid.pop("v")
                if not _valid_values(valid):
                    raise ProtocolError("invalid_payload", "a text is not valid Unicode")
                return NodeAnnounced(
                    node_from_dict(valid | {"id": node_id, "provider": self.provider}),
                    replayed=retained,
                )
            case "status":
                return NodeStatus(node_id, _validate(STATUS_SCHEMA, data)["state"] == "online")
            case "heartbeat":
                valid = _validate(HEARTBEAT_SCHEMA, data)
                return NodeHeartbeat(node_id, valid.get("battery"), valid.get("rssi"))
            case "ota_status":
                return _decode_ota_status(node_id, data)
            case "event" if len(rest) == 1:
                valid = _validate(EVENT_SCHEMA, data)
                if not ID_PATTERN.match(rest[0]):
                    raise ProtocolError("unknown_topic", "invalid source id")
                return NodeEvent(node_id, rest[0], valid["event"], _event_data(valid["data"]))
        raise ProtocolError("unknown_topic", f"unknown message kind {kind!r}")

    def encode_set(
        self, node_id: str, source_id: str, field_id: str, value: Value
    ) -> tuple[str, bytes]:
        """A command that sets a field on a node (publish with QoS 1, not retained)."""
        payload = json.dumps({"v": SCHEMA_VERSION, "value": value}).encode()
        return self.node(node_id, SET, source_id, field_id), payload

    def encode_action(self, node_id: str, action: str) -> tuple[str, bytes]:
        """A command that runs a node action such as reboot or identify."""
        payload = json.dumps({"v": SCHEMA_VERSION, "action": action}).encode()
        return self.node(node_id, ACTION), payload

    def encode_ota(
        self, node_id: str, job: str, url: str, entry: dict[str, Any]
    ) -> tuple[str, bytes]:
        """The OTA command for library firmware `entry` (QoS 1, not retained)."""
        payload = {"v": SCHEMA_VERSION, "job": job, "url": url, "size": entry["size"],
                   "sha256": entry["sha256"], "version": entry["version"],
                   "format": entry["format"]}  # fmt: skip
        return self.node(node_id, OTA), json.dumps(payload).encode()


def _decode_ota_status(node_id: str, data: Any) -> OtaStatus:
    valid = _validate(OTA_STATUS_SCHEMA, data)
    if not _valid_values(valid):
        raise ProtocolError("invalid_payload", "a text is not valid Unicode")
    return OtaStatus(node_id, valid["job"], valid["state"], valid.get("progress"),
                     valid.get("error"), valid.get("version"))  # fmt: skip


def encode_status(online: bool) -> bytes:
    """A status payload (node or gateway)."""
    return json.dumps({"v": SCHEMA_VERSION, "state": "online" if online else "offline"}).encode()


def _json(payload: bytes) -> Any:
    # Bytes that are not UTF-8 become lone surrogates inside strings, so a bad string is one
    # invalid value (the other values of a `state` still apply), not a lost message.
    try:
        return json.loads(payload.decode("utf-8", "surrogateescape"))
    except ValueError as err:  # includes integers of more than 4300 digits
        raise ProtocolError("invalid_json", str(err)[:200]) from None
    except RecursionError:
        raise ProtocolError("invalid_json", "nested too deeply") from None


def _valid_values(data: Any) -> bool:
    """Whether already depth-checked `data` holds only valid Unicode text (keys included),
    finite numbers and integers of at most 64 bits, which every JSON consumer can read."""
    if isinstance(data, str):
        return is_valid_text(data)
    if isinstance(data, bool) or data is None:
        return True
    if isinstance(data, int):
        return INT_MIN <= data <= INT_MAX
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, dict):
        return all(is_valid_text(key) and _valid_values(item) for key, item in data.items())
    return all(_valid_values(item) for item in data)


def _within_depth(data: Any, depth: int) -> bool:
    """Whether objects and arrays in `data` nest at most `depth` levels."""
    if isinstance(data, dict):
        return depth > 0 and all(_within_depth(item, depth - 1) for item in data.values())
    if isinstance(data, list):
        return depth > 0 and all(_within_depth(item, depth - 1) for item in data)
    return True


def _event_data(data: dict[str, Any]) -> dict[str, Any]:
    if not _within_depth(data, EVENT_DATA_MAX_DEPTH):
        raise ProtocolError("invalid_payload", f"data nested deeper than {EVENT_DATA_MAX_DEPTH}")
    if not _valid_values(data):
        raise ProtocolError(
            "invalid_value", "data holds invalid text, a number that is not finite or too large"
        )
    if len(json.dumps(data)) > EVENT_DATA_MAX_BYTES:
        raise ProtocolError("invalid_payload", f"data larger than {EVENT_DATA_MAX_BYTES} bytes")
    return data


def _validate(schema: vol.Schema, data: Any) -> dict[str, Any]:
    try:
        return dict(schema(data))
    except vol.Invalid as err:
        raise ProtocolError("invalid_payload", humanize_error(data, err)) from None


def _decode_state(node_id: str, source_id: str, data: Any) -> FieldValues:
    # Hot path: checked by hand, the processor checks each value against its field.
    if not isinstance(data, dict) or type(data.get("v")) is not int or data["v"] != SCHEMA_VERSION:
        raise ProtocolError("invalid_payload", "state needs an object with v=1")
    values = data.get("values")
    if not isinstance(values, dict) or not values:
        raise ProtocolError("invalid_payload", "state needs a non-empty values object")
    ts = data.get("ts")
    if ts is not None and (
        isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts <= TS_MAX
    ):
        raise ProtocolError("invalid_payload", f"ts must be a number of seconds in [0, {TS_MAX:g}]")
    if not ID_PATTERN.match(source_id):
        raise ProtocolError("unknown_topic", "invalid source id")
    return FieldValues(node_id, source_id, values, ts)
