"""MySensors 2.x protocol: message codec, type tables and how values become EdgeIoT fields.

A MySensors message is one line on a serial or Ethernet (TCP) gateway,

    node-id;child-sensor-id;command;ack;type;payload\\n

or, on an MQTT gateway, the topic `<prefix>/node-id/child-sensor-id/command/ack/type` with the
payload as the MQTT payload. Ids are decimal: node 0 is the gateway, 255 a node without an id
yet (and the broadcast address), child 255 the node itself. `command` is one of `Command`;
`type` is an `S_*` (presentation), `V_*` (set/req), `I_*` (internal) or `ST_*` (stream) number.
The payload is the rest of the line, so it may itself contain `;` (V_POSITION does).

The value tables follow Home Assistant's MySensors integration (units, device classes, state
classes, which values a sensor type offers), mapped onto EdgeIoT field types.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from ..models import FieldType, Value

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


# Values ------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ValueSpec:
    """How a V_ type appears as an EdgeIoT field (or, with `event`, as a source event)."""

    label: str
    type: FieldType
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: tuple[str, ...] | None = None
    event: str | None = None  # not a field: each value is a source event of this name


MEASUREMENT = "measurement"
TOTAL_INCREASING = "total_increasing"
_F = FieldType

# Following Home Assistant's MySensors integration; V_TEMP and the setpoints get °C or °F from
# the unit system (see value_spec).
VALUE_SPECS: dict[int, ValueSpec] = {
    SetReq.V_TEMP: ValueSpec("Temperature", _F.FLOAT, "°C", "temperature", MEASUREMENT),
    SetReq.V_HUM: ValueSpec("Humidity", _F.FLOAT, "%", "humidity", MEASUREMENT),
    SetReq.V_STATUS: ValueSpec("Status", _F.BOOL, writable=True),
    SetReq.V_PERCENTAGE: ValueSpec(
        "Percentage", _F.INT, "%", writable=True, min=0, max=100, step=1
    ),
    SetReq.V_PRESSURE: ValueSpec("Pressure", _F.FLOAT, state_class=MEASUREMENT),
    SetReq.V_FORECAST: ValueSpec(
        "Forecast",
        _F.ENUM,
        options=("stable", "sunny", "cloudy", "unstable", "thunderstorm", "unknown"),
    ),
    SetReq.V_RAIN: ValueSpec("Rain", _F.FLOAT),
    SetReq.V_RAINRATE: ValueSpec("Rain rate", _F.FLOAT, state_class=MEASUREMENT),
    SetReq.V_WIND: ValueSpec("Wind speed", _F.FLOAT, state_class=MEASUREMENT),
    SetReq.V_GUST: ValueSpec("Wind gust", _F.FLOAT, state_class=MEASUREMENT),
    # No wind_direction class: HA wants state class measurement_angle, which fields lack.
    SetReq.V_DIRECTION: ValueSpec("Wind direction", _F.FLOAT, "°"),
    SetReq.V_UV: ValueSpec("UV index", _F.FLOAT, state_class=MEASUREMENT),
    SetReq.V_WEIGHT: ValueSpec("Weight", _F.FLOAT, "kg", "weight", MEASUREMENT),
    SetReq.V_DISTANCE: ValueSpec("Distance", _F.FLOAT, "m", "distance", MEASUREMENT),
    SetReq.V_IMPEDANCE: ValueSpec("Impedance", _F.FLOAT, "ohm", state_class=MEASUREMENT),
    SetReq.V_ARMED: ValueSpec("Armed", _F.BOOL, writable=True),
    SetReq.V_TRIPPED: ValueSpec("Tripped", _F.BOOL),
    SetReq.V_WATT: ValueSpec("Power", _F.FLOAT, "W", "power", MEASUREMENT),
    SetReq.V_KWH: ValueSpec("Energy", _F.FLOAT, "kWh", "energy", TOTAL_INCREASING),
    SetReq.V_SCENE_ON: ValueSpec("Scene on", _F.STRING, event="scene_on"),
    SetReq.V_SCENE_OFF: ValueSpec("Scene off", _F.STRING, event="scene_off"),
    SetReq.V_HVAC_FLOW_STATE: ValueSpec(
        "Mode", _F.ENUM, writable=True, options=("Off", "HeatOn", "CoolOn", "AutoChangeOver")
    ),
    SetReq.V_HVAC_SPEED: ValueSpec(
        "Fan speed", _F.ENUM, writable=True, options=("Min", "Normal", "Max", "Auto")
    ),
    SetReq.V_LIGHT_LEVEL: ValueSpec("Light level", _F.FLOAT, "%", state_class=MEASUREMENT),
    SetReq.V_VAR1: ValueSpec("Variable 1", _F.STRING, writable=True),
    SetReq.V_VAR2: ValueSpec("Variable 2", _F.STRING, writable=True),
    SetReq.V_VAR3: ValueSpec("Variable 3", _F.STRING, writable=True),
    SetReq.V_VAR4: ValueSpec("Variable 4", _F.STRING, writable=True),
    SetReq.V_VAR5: ValueSpec("Variable 5", _F.STRING, writable=True),
    # A cover reports its movement with these; it is moved with the node's cover actions.
    SetReq.V_UP: ValueSpec("Moving up", _F.BOOL),
    SetReq.V_DOWN: ValueSpec("Moving down", _F.BOOL),
    SetReq.V_STOP: ValueSpec("Stopped", _F.BOOL),
    SetReq.V_IR_SEND: ValueSpec("IR send", _F.STRING, writable=True),
    SetReq.V_IR_RECEIVE: ValueSpec("IR received", _F.STRING),
    SetReq.V_FLOW: ValueSpec("Flow", _F.FLOAT, "m", state_class=MEASUREMENT),
    SetReq.V_VOLUME: ValueSpec("Volume", _F.FLOAT, "m³", "volume", TOTAL_INCREASING),
    SetReq.V_LOCK_STATUS: ValueSpec("Locked", _F.BOOL, writable=True),
    SetReq.V_LEVEL: ValueSpec("Level", _F.FLOAT, state_class=MEASUREMENT),
    SetReq.V_VOLTAGE: ValueSpec("Voltage", _F.FLOAT, "V", "voltage", MEASUREMENT),
    SetReq.V_CURRENT: ValueSpec("Current", _F.FLOAT, "A", "current", MEASUREMENT),
    SetReq.V_RGB: ValueSpec("Color", _F.STRING, writable=True),
    SetReq.V_RGBW: ValueSpec("Color", _F.STRING, writable=True),
    SetReq.V_ID: ValueSpec("Sensor ID", _F.STRING),
    # V_UNIT_PREFIX is not a field: it becomes the unit of the child's numeric fields.
    SetReq.V_UNIT_PREFIX: ValueSpec("Unit", _F.STRING),
    SetReq.V_HVAC_SETPOINT_COOL: ValueSpec(
        "Cooling setpoint", _F.FLOAT, "°C", "temperature", writable=True, step=0.5
    ),
    SetReq.V_HVAC_SETPOINT_HEAT: ValueSpec(
        "Heating setpoint", _F.FLOAT, "°C", "temperature", writable=True, step=0.5
    ),
    SetReq.V_HVAC_FLOW_MODE: ValueSpec(
        "Flow mode", _F.ENUM, writable=True, options=("Auto", "ContinuousOn", "PeriodicOn")
    ),
    SetReq.V_TEXT: ValueSpec("Text", _F.STRING, writable=True),
    SetReq.V_CUSTOM: ValueSpec("Custom", _F.STRING, writable=True),
    SetReq.V_POSITION: ValueSpec("Position", _F.STRING),
    SetReq.V_IR_RECORD: ValueSpec("IR record", _F.STRING, writable=True),
    SetReq.V_PH: ValueSpec("pH", _F.FLOAT, None, "ph", MEASUREMENT),
    SetReq.V_ORP: ValueSpec("ORP", _F.FLOAT, "mV", "voltage", MEASUREMENT),
    SetReq.V_EC: ValueSpec("Conductivity", _F.FLOAT, "μS/cm", "conductivity", MEASUREMENT),
    SetReq.V_VAR: ValueSpec("Reactive power", _F.FLOAT, "var", "reactive_power", MEASUREMENT),
    SetReq.V_VA: ValueSpec("Apparent power", _F.FLOAT, "VA", "apparent_power", MEASUREMENT),
    SetReq.V_POWER_FACTOR: ValueSpec("Power factor", _F.FLOAT, None, "power_factor", MEASUREMENT),
    SetReq.V_TILT: ValueSpec("Tilt", _F.INT, "%", writable=True, min=0, max=100, step=1),
}
assert set(VALUE_SPECS) == set(SetReq)

TEMPERATURE_VALUES = frozenset(
    {SetReq.V_TEMP, SetReq.V_HVAC_SETPOINT_COOL, SetReq.V_HVAC_SETPOINT_HEAT}
)

_LEVEL = VALUE_SPECS[SetReq.V_LEVEL]
_TRIPPED = VALUE_SPECS[SetReq.V_TRIPPED]
_VOLUME = VALUE_SPECS[SetReq.V_VOLUME]

# What a value means depends on the sensor type for these (as in Home Assistant).
SENSOR_VALUE_SPECS: dict[tuple[int, int], ValueSpec] = {
    (Presentation.S_LIGHT_LEVEL, SetReq.V_LEVEL): replace(
        _LEVEL, label="Illuminance", unit="lx", device_class="illuminance"
    ),
    (Presentation.S_SOUND, SetReq.V_LEVEL): replace(
        _LEVEL, label="Sound level", unit="dB", device_class="sound_pressure"
    ),
    (Presentation.S_VIBRATION, SetReq.V_LEVEL): replace(
        _LEVEL, label="Vibration", unit="Hz", device_class="frequency"
    ),
    (Presentation.S_MOISTURE, SetReq.V_LEVEL): replace(_LEVEL, label="Moisture", unit="%"),
    (Presentation.S_DUST, SetReq.V_LEVEL): replace(_LEVEL, label="Dust level"),
    (Presentation.S_AIR_QUALITY, SetReq.V_LEVEL): replace(_LEVEL, label="Air quality"),
    (Presentation.S_DOOR, SetReq.V_TRIPPED): replace(_TRIPPED, label="Open", device_class="door"),
    (Presentation.S_MOTION, SetReq.V_TRIPPED): replace(
        _TRIPPED, label="Motion", device_class="motion"
    ),
    (Presentation.S_SMOKE, SetReq.V_TRIPPED): replace(
        _TRIPPED, label="Smoke", device_class="smoke"
    ),
    (Presentation.S_SPRINKLER, SetReq.V_TRIPPED): replace(_TRIPPED, device_class="safety"),
    (Presentation.S_WATER_LEAK, SetReq.V_TRIPPED): replace(
        _TRIPPED, label="Leak", device_class="safety"
    ),
    (Presentation.S_SOUND, SetReq.V_TRIPPED): replace(
        _TRIPPED, label="Sound", device_class="sound"
    ),
    (Presentation.S_VIBRATION, SetReq.V_TRIPPED): replace(
        _TRIPPED, label="Vibration detected", device_class="vibration"
    ),
    (Presentation.S_MOISTURE, SetReq.V_TRIPPED): replace(
        _TRIPPED, label="Wet", device_class="moisture"
    ),
    (Presentation.S_WATER, SetReq.V_VOLUME): replace(_VOLUME, device_class="water"),
    (Presentation.S_GAS, SetReq.V_VOLUME): replace(_VOLUME, device_class="gas"),
}


def value_spec(sensor_type: int | None, value_type: int, *, metric: bool = True) -> ValueSpec:
    """The field description of `value_type` on a child presented as `sensor_type`."""
    spec = SENSOR_VALUE_SPECS.get((sensor_type, value_type)) if sensor_type is not None else None
    if spec is None:
        spec = VALUE_SPECS[value_type]
    if value_type in TEMPERATURE_VALUES and not metric:
        spec = replace(spec, unit="°F")
    return spec


FIELD_IDS: dict[int, str] = {v.value: v.name[2:].lower() for v in SetReq}
"""Field id of each V_ type: V_TEMP → `temp`, V_HVAC_SETPOINT_HEAT → `hvac_setpoint_heat`."""
VALUE_TYPES: dict[str, int] = {field_id: number for number, field_id in FIELD_IDS.items()}


@dataclass(slots=True, frozen=True)
class SensorSpec:
    """A sensor type: its label and the fields it gets as soon as it is presented."""

    label: str
    values: tuple[int, ...] = ()
    events: tuple[str, ...] = ()
    cover: bool = False  # moved by up/down/stop actions


_V = SetReq
SENSOR_SPECS: dict[int, SensorSpec] = {
    Presentation.S_DOOR: SensorSpec("Door", (_V.V_TRIPPED,)),
    Presentation.S_MOTION: SensorSpec("Motion", (_V.V_TRIPPED,)),
    Presentation.S_SMOKE: SensorSpec("Smoke", (_V.V_TRIPPED,)),
    Presentation.S_BINARY: SensorSpec("Switch", (_V.V_STATUS,)),
    Presentation.S_DIMMER: SensorSpec("Dimmer", (_V.V_STATUS, _V.V_PERCENTAGE)),
    Presentation.S_COVER: SensorSpec("Cover", (_V.V_PERCENTAGE,), cover=True),
    Presentation.S_TEMP: SensorSpec("Temperature", (_V.V_TEMP,)),
    Presentation.S_HUM: SensorSpec("Humidity", (_V.V_HUM,)),
    Presentation.S_BARO: SensorSpec("Barometer", (_V.V_PRESSURE,)),
    Presentation.S_WIND: SensorSpec("Wind", (_V.V_WIND,)),
    Presentation.S_RAIN: SensorSpec("Rain", (_V.V_RAIN,)),
    Presentation.S_UV: SensorSpec("UV", (_V.V_UV,)),
    Presentation.S_WEIGHT: SensorSpec("Scale", (_V.V_WEIGHT,)),
    Presentation.S_POWER: SensorSpec("Power meter", (_V.V_WATT,)),
    Presentation.S_HEATER: SensorSpec("Heater", (_V.V_HVAC_FLOW_STATE,)),
    Presentation.S_DISTANCE: SensorSpec("Distance", (_V.V_DISTANCE,)),
    Presentation.S_LIGHT_LEVEL: SensorSpec("Light", (_V.V_LIGHT_LEVEL,)),
    Presentation.S_LOCK: SensorSpec("Lock", (_V.V_LOCK_STATUS,)),
    Presentation.S_IR: SensorSpec("IR", (_V.V_IR_SEND,)),
    Presentation.S_WATER: SensorSpec("Water meter", (_V.V_VOLUME,)),
    Presentation.S_AIR_QUALITY: SensorSpec("Air quality", (_V.V_LEVEL,)),
    Presentation.S_CUSTOM: SensorSpec("Custom"),
    Presentation.S_DUST: SensorSpec("Dust", (_V.V_LEVEL,)),
    Presentation.S_SCENE_CONTROLLER: SensorSpec("Scene controller", (), ("scene_on", "scene_off")),
    Presentation.S_RGB_LIGHT: SensorSpec("RGB light", (_V.V_RGB,)),
    Presentation.S_RGBW_LIGHT: SensorSpec("RGBW light", (_V.V_RGBW,)),
    Presentation.S_COLOR_SENSOR: SensorSpec("Color sensor", (_V.V_RGB,)),
    Presentation.S_HVAC: SensorSpec("Thermostat", (_V.V_HVAC_FLOW_STATE, _V.V_HVAC_SETPOINT_HEAT)),
    Presentation.S_MULTIMETER: SensorSpec("Multimeter", (_V.V_VOLTAGE,)),
    Presentation.S_SPRINKLER: SensorSpec("Sprinkler", (_V.V_STATUS,)),
    Presentation.S_WATER_LEAK: SensorSpec("Water leak", (_V.V_TRIPPED,)),
    Presentation.S_SOUND: SensorSpec("Sound", (_V.V_LEVEL,)),
    Presentation.S_VIBRATION: SensorSpec("Vibration", (_V.V_LEVEL,)),
    Presentation.S_MOISTURE: SensorSpec("Moisture", (_V.V_LEVEL,)),
    Presentation.S_INFO: SensorSpec("Info", (_V.V_TEXT,)),
    Presentation.S_GAS: SensorSpec("Gas meter", (_V.V_VOLUME,)),
    Presentation.S_GPS: SensorSpec("GPS", (_V.V_POSITION,)),
    Presentation.S_WATER_QUALITY: SensorSpec("Water quality", (_V.V_PH,)),
}
NODE_TYPES = frozenset({Presentation.S_ARDUINO_NODE, Presentation.S_ARDUINO_REPEATER_NODE})
assert set(SENSOR_SPECS) | NODE_TYPES == set(Presentation)

_BOOLS = {"1": True, "0": False, "on": True, "off": False, "true": True, "false": False}


def decode_value(field_type: FieldType, payload: str) -> object:
    """A payload as the field type's value; what does not parse is passed on as the string.

    The processor then drops what does not fit the field (`invalid_value`).
    """
    match field_type:
        case FieldType.FLOAT:
            try:
                return float(payload)
            except ValueError:
                return payload
        case FieldType.BOOL:
            return _BOOLS.get(payload.strip().lower(), payload)
        case FieldType.INT:
            try:
                return int(payload)
            except ValueError:
                try:
                    return float(payload)
                except ValueError:
                    return payload
    return payload


def encode_value(value: Value) -> str:
    """A field value as a MySensors payload."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


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
