"""Drivers on plain pins: relay/output, button/input, ADC, PWM, battery voltage."""

import asyncio
import time

from edgeiot.config import REQUIRED
from edgeiot.driver import Driver

FOREVER = 3600


class Relay(Driver):
    """A GPIO output: field `on` (writable bool); `inverted` for active-low relay boards."""

    TYPE = "relay"
    OPTIONS = {  # noqa: RUF012
        "pin": ("pin", REQUIRED),
        "inverted": ("bool", False),
        "initial": ("bool", False),
    }
    PINS = ("pin",)

    def make_fields(self):
        return [self.field("on", self.name, "bool", device_class="switch", writable=True)]

    def setup(self):
        self._pin = self.hal.pin_out(self.options["pin"])
        self._write(self.options["initial"])

    def _write(self, on):
        self._pin.value(1 if on != self.options["inverted"] else 0)
        self.current["on"] = on

    def set(self, field_id, value):
        if field_id != "on" or not isinstance(value, bool):
            raise ValueError("%s: expected a bool for on" % self.id)
        self._write(value)
        return {"on": value}

    async def run(self):
        self.offer({"on": self.current["on"]})
        while True:
            await asyncio.sleep(FOREVER)


class Button(Driver):
    """A GPIO input with debounce: field `pressed` (bool), events `pressed` (a press shorter than
    `hold_ms`, on release) and `held` (once, when held `hold_ms`)."""

    TYPE = "button"
    OPTIONS = {  # noqa: RUF012
        "pin": ("pin", REQUIRED),
        "pull": (("choice", "up", "down", None), "up"),
        "active_low": ("bool", True),
        "debounce_ms": (("int", 1, 1000), 30),
        "hold_ms": (("int", 100, 60000), 1000),
    }
    PINS = ("pin",)
    EVENTS = ("pressed", "held")
    POLL_MS = 5

    def make_fields(self):
        return [self.field("pressed", self.name, "bool")]

    def setup(self):
        self._pin = self.hal.pin_in(self.options["pin"], self.options["pull"])

    def _active(self):
        return bool(self._pin.value()) != self.options["active_low"]

    async def run(self):
        stable = self._active()
        self.offer({"pressed": stable})
        candidate, since, pressed_at, held = stable, time.ticks_ms(), 0, False
        while True:
            await asyncio.sleep_ms(self.POLL_MS)
            now, level = time.ticks_ms(), self._active()
            if level != candidate:
                candidate, since = level, now
            elif level != stable and time.ticks_diff(now, since) >= self.options["debounce_ms"]:
                stable = level
                self.offer({"pressed": stable})
                if stable:
                    pressed_at, held = since, False
                elif not held:
                    duration = time.ticks_diff(since, pressed_at) / 1000
                    self.node.source_event(self.id, "pressed", {"duration": duration})
            if stable and not held and time.ticks_diff(now, pressed_at) >= self.options["hold_ms"]:
                held = True
                self.node.source_event(self.id, "held", {})


class Adc(Driver):
    """An analog input: field `value` = offset + scale * raw / 65535 (raw: `read_u16()`)."""

    TYPE = "adc"
    OPTIONS = {  # noqa: RUF012
        "pin": ("pin", REQUIRED),
        "scale": (("num", -1e9, 1e9), 1.0),
        "offset": (("num", -1e9, 1e9), 0.0),
    }
    PINS = ("pin",)

    def make_fields(self):
        return [self.field("value", self.name, "float")]

    def setup(self):
        self._adc = self.hal.adc(self.options["pin"])

    async def read(self):
        raw = self._adc.read_u16()
        return {"value": self.options["offset"] + self.options["scale"] * raw / 65535}


class Pwm(Driver):
    """A PWM output: field `level` (writable int 0-100, percent duty)."""

    TYPE = "pwm"
    OPTIONS = {  # noqa: RUF012
        "pin": ("pin", REQUIRED),
        "freq": (("int", 1, 40000000), 1000),
        "initial": (("int", 0, 100), 0),
    }
    PINS = ("pin",)

    def make_fields(self):
        return [self.field("level", self.name, "int", unit="%", writable=True, min=0, max=100)]

    def setup(self):
        self._pwm = self.hal.pwm(self.options["pin"], self.options["freq"])
        self._write(self.options["initial"])

    def _write(self, level):
        self._pwm.duty_u16(level * 65535 // 100)
        self.current["level"] = level

    def set(self, field_id, value):
        if field_id != "level" or isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("%s: expected an int for level" % self.id)
        if not 0 <= value <= 100:
            raise ValueError("%s: level %d is not 0-100" % (self.id, value))
        self._write(value)
        return {"level": value}

    async def run(self):
        self.offer({"level": self.current["level"]})
        while True:
            await asyncio.sleep(FOREVER)


class Battery(Driver):
    """Battery voltage through a divider: field `voltage`; the heartbeat's `battery` percent is
    linear between `empty` and `full` volts."""

    TYPE = "battery"
    OPTIONS = {  # noqa: RUF012
        "pin": ("pin", REQUIRED),
        "divider": (("num", 1, 100), 2.0),
        "vref": (("num", 0.5, 10), 3.3),
        "empty": (("num", 0, 100), 3.3),
        "full": (("num", 0, 100), 4.2),
    }
    PINS = ("pin",)

    def make_fields(self):
        return [self.field("voltage", self.name, "float", unit="V", device_class="voltage")]

    def setup(self):
        if self.options["full"] <= self.options["empty"]:
            raise ValueError("full must be above empty")
        self._adc = self.hal.adc(self.options["pin"])

    async def read(self):
        raw = self._adc.read_u16()
        return {"voltage": raw / 65535 * self.options["vref"] * self.options["divider"]}

    def percent(self):
        volts = self.current.get("voltage")
        if volts is None:
            return None
        empty, full = self.options["empty"], self.options["full"]
        return max(0, min(100, round((volts - empty) / (full - empty) * 100)))
