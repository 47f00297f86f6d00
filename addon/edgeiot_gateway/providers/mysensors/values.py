"""How MySensors values become EdgeIoT fields: value and sensor type tables, payload codec.

The tables follow Home Assistant's MySensors integration (units, device classes, state classes,
which values a sensor type offers), mapped onto EdgeIoT field types.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ...models import Field, FieldType, Value
from .protocol import Presentation, SetReq


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


class SpecCache:
    """The ValueSpec of each (sensor type, V_ type) and, per spec, a field of its type and range
    to check inbound values against; each built once."""

    def __init__(self, *, metric: bool) -> None:
        self.metric = metric
        self._specs: dict[tuple[int | None, int], ValueSpec] = {}
        self._probes: dict[ValueSpec, Field] = {}

    def spec(self, sensor_type: int | None, value_type: int) -> ValueSpec:
        key = (sensor_type, value_type)
        spec = self._specs.get(key)
        if spec is None:
            spec = self._specs[key] = value_spec(sensor_type, value_type, metric=self.metric)
        return spec

    def probe(self, spec: ValueSpec) -> Field:
        probe = self._probes.get(spec)
        if probe is None:
            probe = self._probes[spec] = Field(
                "value", "value", spec.type, min=spec.min, max=spec.max,
                options=list(spec.options) if spec.options else None,
            )  # fmt: skip
        return probe
