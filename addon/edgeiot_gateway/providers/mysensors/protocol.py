"""MySensors 2.x protocol: the message codec, type numbers, drop reasons, OTA payloads.

A MySensors message is one line on a serial or Ethernet (TCP) gateway,

    node-id;child-sensor-id;command;ack;type;payload\\n

or, on an MQTT gateway, the topic `<prefix>/node-id/child-sensor-id/command/ack/type` with the
payload as the MQTT payload. Ids are decimal: node 0 is the gateway, 255 a node without an id
yet (and the broadcast address), child 255 the node itself. `command` is one of `Command`;
`type` is an `S_*` (presentation), `V_*` (set/req), `I_*` (internal) or `ST_*` (stream) number.
The payload is the rest of the line, so it may itself contain `;` (V_POSITION does).
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from enum import IntEnum

GATEWAY_NODE = 0
AUTO_NODE = 255  # a node without an id yet; also the broadcast address
NODE_CHILD = 255  # the child id of messages about the node itself
MAX_NODE_ID = 254
MAX_LINE_BYTES = 256  # longer lines are noise (the gateway sends at most ~120 bytes)
MAX_PAYLOAD_BYTES = 25  # a radio message carries at most 25 payload bytes (32 - 7 header)
FIRMWARE_BLOCK_SIZE = 16


class Command(IntEnum):
    """The `command` field: what kind of message it is."""

    PRESENTATION = 0
    SET = 1
    REQ = 2
    INTERNAL = 3
    STREAM = 4


class Presentation(IntEnum):
    """Sensor types (`S_*`), presented by nodes for each child sensor."""

    S_DOOR = 0
    S_MOTION = 1
    S_SMOKE = 2
    S_BINARY = 3
    S_DIMMER = 4
    S_COVER = 5
    S_TEMP = 6
    S_HUM = 7
    S_BARO = 8
    S_WIND = 9
    S_RAIN = 10
    S_UV = 11
    S_WEIGHT = 12
    S_POWER = 13
    S_HEATER = 14
    S_DISTANCE = 15
    S_LIGHT_LEVEL = 16
    S_ARDUINO_NODE = 17
    S_ARDUINO_REPEATER_NODE = 18
    S_LOCK = 19
    S_IR = 20
    S_WATER = 21
    S_AIR_QUALITY = 22
    S_CUSTOM = 23
    S_DUST = 24
    S_SCENE_CONTROLLER = 25
    S_RGB_LIGHT = 26
    S_RGBW_LIGHT = 27
    S_COLOR_SENSOR = 28
    S_HVAC = 29
    S_MULTIMETER = 30
    S_SPRINKLER = 31
    S_WATER_LEAK = 32
    S_SOUND = 33
    S_VIBRATION = 34
    S_MOISTURE = 35
    S_INFO = 36
    S_GAS = 37
    S_GPS = 38
    S_WATER_QUALITY = 39
    # Aliases (the canonical names above come first, so they are what `.name` gives).
    S_LIGHT = 3
    S_ARDUINO_RELAY = 18


class SetReq(IntEnum):
    """Value types (`V_*`) of set and req messages."""

    V_TEMP = 0
    V_HUM = 1
    V_STATUS = 2
    V_PERCENTAGE = 3
    V_PRESSURE = 4
    V_FORECAST = 5
    V_RAIN = 6
    V_RAINRATE = 7
    V_WIND = 8
    V_GUST = 9
    V_DIRECTION = 10
    V_UV = 11
    V_WEIGHT = 12
    V_DISTANCE = 13
    V_IMPEDANCE = 14
    V_ARMED = 15
    V_TRIPPED = 16
    V_WATT = 17
    V_KWH = 18
    V_SCENE_ON = 19
    V_SCENE_OFF = 20
    V_HVAC_FLOW_STATE = 21
    V_HVAC_SPEED = 22
    V_LIGHT_LEVEL = 23
    V_VAR1 = 24
    V_VAR2 = 25
    V_VAR3 = 26
    V_VAR4 = 27
    V_VAR5 = 28
    V_UP = 29
    V_DOWN = 30
    V_STOP = 31
    V_IR_SEND = 32
    V_IR_RECEIVE = 33
    V_FLOW = 34
    V_VOLUME = 35
    V_LOCK_STATUS = 36
    V_LEVEL = 37
    V_VOLTAGE = 38
    V_CURRENT = 39
    V_RGB = 40
    V_RGBW = 41
    V_ID = 42
    V_UNIT_PREFIX = 43
    V_HVAC_SETPOINT_COOL = 44
    V_HVAC_SETPOINT_HEAT = 45
    V_HVAC_FLOW_MODE = 46
    V_TEXT = 47
    V_CUSTOM = 48
    V_POSITION = 49
    V_IR_RECORD = 50
    V_PH = 51
    V_ORP = 52
    V_EC = 53
    V_VAR = 54
    V_VA = 55
    V_POWER_FACTOR = 56
    # 57 is V_MULTI_MESSAGE (2.3.2, several values in one binary payload): not supported.
    V_TILT = 58  # 2.4
    # Aliases.
    V_LIGHT = 2
    V_DIMMER = 3
    V_DUST_LEVEL = 37


class Internal(IntEnum):
    """Internal message types (`I_*`)."""

    I_BATTERY_LEVEL = 0
    I_TIME = 1
    I_VERSION = 2
    I_ID_REQUEST = 3
    I_ID_RESPONSE = 4
    I_INCLUSION_MODE = 5
    I_CONFIG = 6
    I_FIND_PARENT_REQUEST = 7
    I_FIND_PARENT_RESPONSE = 8
    I_LOG_MESSAGE = 9
    I_CHILDREN = 10
    I_SKETCH_NAME = 11
    I_SKETCH_VERSION = 12
    I_REBOOT = 13
    I_GATEWAY_READY = 14
    I_SIGNING_PRESENTATION = 15
    I_NONCE_REQUEST = 16
    I_NONCE_RESPONSE = 17
    I_HEARTBEAT_REQUEST = 18
    I_PRESENTATION = 19
    I_DISCOVER_REQUEST = 20
    I_DISCOVER_RESPONSE = 21
    I_HEARTBEAT_RESPONSE = 22
    I_LOCKED = 23
    I_PING = 24
    I_PONG = 25
    I_REGISTRATION_REQUEST = 26
    I_REGISTRATION_RESPONSE = 27
    I_DEBUG = 28
    I_SIGNAL_REPORT_REQUEST = 29
    I_SIGNAL_REPORT_REVERSE = 30
    I_SIGNAL_REPORT_RESPONSE = 31
    I_PRE_SLEEP_NOTIFICATION = 32
    I_POST_SLEEP_NOTIFICATION = 33


GATEWAY_LOGS = frozenset({Internal.I_LOG_MESSAGE, Internal.I_DEBUG})


class Stream(IntEnum):
    """Stream message types (`ST_*`): OTA firmware and bulk data."""

    ST_FIRMWARE_CONFIG_REQUEST = 0
    ST_FIRMWARE_CONFIG_RESPONSE = 1
    ST_FIRMWARE_REQUEST = 2
    ST_FIRMWARE_RESPONSE = 3
    ST_SOUND = 4
    ST_IMAGE = 5


VALID_TYPES: dict[int, frozenset[int]] = {
    Command.PRESENTATION: frozenset(Presentation),
    Command.SET: frozenset(SetReq),
    Command.REQ: frozenset(SetReq),
    Command.INTERNAL: frozenset(Internal),
    Command.STREAM: frozenset(Stream),
}

# Drop reasons (counted in the gateway diagnostics).
INVALID_LINE = "mysensors_invalid_line"
LINE_TOO_LONG = "mysensors_line_too_long"
UNKNOWN_TYPE = "mysensors_unknown_type"
INVALID_PAYLOAD = "mysensors_invalid_payload"
INVALID_NODE = "mysensors_invalid_node"
TOO_MANY_CHILDREN = "mysensors_too_many_children"
NO_FREE_ID = "mysensors_no_free_id"
INVALID_BLOCK = "mysensors_invalid_block"  # a firmware block the assigned image does not have


class ParseError(ValueError):
    """Input that is not a MySensors message; `reason` is one of the drop reasons above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Message:
    """One MySensors message (ids are plain ints, `type` is the sub-type number)."""

    node_id: int
    child_id: int
    command: int
    ack: bool
    type: int
    payload: str = ""

    def encode(self) -> bytes:
        """The serial/TCP line, with its newline."""
        return (
            f"{self.node_id};{self.child_id};{self.command};{int(self.ack)};"
            f"{self.type};{self.payload}\n"
        ).encode()

    def topic(self, prefix: str) -> str:
        """The MQTT topic under `prefix` (the payload goes in the MQTT payload)."""
        return f"{prefix}/{self.node_id}/{self.child_id}/{self.command}/{int(self.ack)}/{self.type}"

    def type_name(self) -> str:
        """The sub-type's name, e.g. `V_TEMP` (for logs)."""
        enum = _TYPE_ENUMS.get(self.command)
        try:
            return enum(self.type).name if enum else str(self.type)
        except ValueError:
            return str(self.type)


_TYPE_ENUMS: dict[int, type[IntEnum]] = {
    Command.PRESENTATION: Presentation,
    Command.SET: SetReq,
    Command.REQ: SetReq,
    Command.INTERNAL: Internal,
    Command.STREAM: Stream,
}


def _number(text: str, what: str, high: int) -> int:
    # Plain ASCII decimal only: int() would also take " 1", "+1", "1_0" and other digits.
    if not (0 < len(text) <= 3 and text.isascii() and text.isdigit()):
        raise ParseError(INVALID_LINE, f"{what} {text[:8]!r} is not a number")
    number = int(text)
    if number > high:
        raise ParseError(INVALID_LINE, f"{what} {number} is out of range")
    return number


def check_payload(payload: str, limit: int) -> None:
    """Raise ParseError for a payload over `limit` bytes (UTF-8) or with a control character."""
    if len(payload) > limit or len(payload.encode()) > limit:
        raise ParseError(INVALID_PAYLOAD, f"payload over {limit} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in payload):
        raise ParseError(INVALID_PAYLOAD, "control character in the payload")


def payload_limit(node_id: int, command: int, type_number: int) -> int:
    """The longest payload a message may carry: what a radio message holds (MyMessage.h), as
    hex digits for a stream; the gateway's own log messages only have the line's limit."""
    if node_id == GATEWAY_NODE and command == Command.INTERNAL and type_number in GATEWAY_LOGS:
        return MAX_LINE_BYTES
    return 2 * MAX_PAYLOAD_BYTES if command == Command.STREAM else MAX_PAYLOAD_BYTES


def decode_fields(parts: list[str]) -> Message:
    """Build a Message from the six text fields of a line or topic; raises ParseError."""
    node, child, command, ack, sub_type, payload = parts
    node_id = _number(node, "node id", 255)
    child_id = _number(child, "child id", 255)
    command_number = _number(command, "command", 255)
    types = VALID_TYPES.get(command_number)
    if types is None:
        raise ParseError(UNKNOWN_TYPE, f"unknown command {command_number}")
    if ack not in ("0", "1"):
        raise ParseError(INVALID_LINE, f"ack {ack[:8]!r} is not 0 or 1")
    type_number = _number(sub_type, "type", 255)
    if type_number not in types:
        kind = Command(command_number).name.lower()
        raise ParseError(UNKNOWN_TYPE, f"unknown {kind} type {type_number}")
    check_payload(payload, payload_limit(node_id, command_number, type_number))
    return Message(node_id, child_id, command_number, ack == "1", type_number, payload)


def parse_line(raw: bytes) -> Message | None:
    """Decode one line (without its newline); None for a blank line. Raises ParseError."""
    if len(raw) > MAX_LINE_BYTES:
        raise ParseError(LINE_TOO_LONG, f"{len(raw)} bytes > {MAX_LINE_BYTES}")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise ParseError(INVALID_LINE, "not UTF-8") from None
    text = text.rstrip("\r")
    if not text or text.isspace():
        return None
    parts = text.split(";", 5)
    if len(parts) != 6:
        raise ParseError(INVALID_LINE, f"{len(parts)} fields, expected 6")
    return decode_fields(parts)


def parse_topic(prefix: str, topic: str, payload: bytes) -> Message:
    """Decode an MQTT message of a gateway publishing under `prefix`. Raises ParseError."""
    if not topic.startswith(prefix + "/"):
        raise ParseError(INVALID_LINE, "topic outside the prefix")
    parts = topic[len(prefix) + 1 :].split("/")
    if len(parts) != 5:
        raise ParseError(INVALID_LINE, f"{len(parts)} topic levels, expected 5")
    if len(payload) > MAX_LINE_BYTES:
        raise ParseError(LINE_TOO_LONG, f"{len(payload)} bytes > {MAX_LINE_BYTES}")
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise ParseError(INVALID_LINE, "payload is not UTF-8") from None
    return decode_fields([*parts, text])


# OTA firmware (stream messages): payloads are little-endian uint16 words, hex encoded. -------


@dataclass(slots=True, frozen=True)
class FirmwareConfigRequest:
    """ST_FIRMWARE_CONFIG_REQUEST: a node (its bootloader) tells what it runs."""

    type: int
    version: int
    blocks: int
    crc: int
    bootloader: int


@dataclass(slots=True, frozen=True)
class FirmwareConfig:
    """ST_FIRMWARE_CONFIG_RESPONSE: the firmware a node should run (16-byte blocks, CRC16)."""

    type: int
    version: int
    blocks: int
    crc: int


@dataclass(slots=True, frozen=True)
class FirmwareBlockRequest:
    """ST_FIRMWARE_REQUEST: a node asks for one block of a firmware."""

    type: int
    version: int
    block: int


def _words(payload: str, count: int) -> tuple[int, ...]:
    try:
        data = binascii.unhexlify(payload)
    except (binascii.Error, ValueError):
        raise ParseError(INVALID_PAYLOAD, "firmware payload is not hex") from None
    if len(data) != 2 * count:
        raise ParseError(INVALID_PAYLOAD, f"firmware payload has {len(data)} bytes")
    return struct.unpack(f"<{count}H", data)


def parse_firmware_config_request(payload: str) -> FirmwareConfigRequest:
    """Decode an ST_FIRMWARE_CONFIG_REQUEST payload; raises ParseError."""
    return FirmwareConfigRequest(*_words(payload, 5))


def parse_firmware_block_request(payload: str) -> FirmwareBlockRequest:
    """Decode an ST_FIRMWARE_REQUEST payload; raises ParseError."""
    return FirmwareBlockRequest(*_words(payload, 3))


def encode_firmware_config(config: FirmwareConfig) -> str:
    """The payload of an ST_FIRMWARE_CONFIG_RESPONSE."""
    words = (config.type, config.version, config.blocks, config.crc)
    return struct.pack("<4H", *words).hex()


def encode_firmware_block(request: FirmwareBlockRequest, data: bytes) -> str:
    """The payload of an ST_FIRMWARE_RESPONSE carrying one block."""
    if len(data) != FIRMWARE_BLOCK_SIZE:
        raise ValueError(f"a firmware block has {FIRMWARE_BLOCK_SIZE} bytes, not {len(data)}")
    return (struct.pack("<3H", request.type, request.version, request.block) + data).hex()
