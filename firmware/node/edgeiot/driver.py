"""The driver base: one configured driver is one source of the node, with its fields and events.

A driver reads its hardware every `interval` seconds and offers the values; only a value that
moved by at least `min_change` since the last report (any change for bools; every value after a
reconnect) goes out in a `state`. Writable drivers apply `set` values and report the result.
"""

import asyncio

from edgeiot import log
from edgeiot.config import REQUIRED

COMMON = {
    "type": ("str", REQUIRED),
    "id": ("id", REQUIRED),
    "name": ("str", None),
    "unit": ("nullable_str", None),
    "device_class": ("nullable_str", None),
    "interval": (("num", 0.05, 86400), 30),
    "min_change": (("num", 0, 1e9), 0),
    "precision": (("int", 0, 6), 2),
}


class Driver:
    TYPE = ""
    OPTIONS = {}  # noqa: RUF012 - per-class constant tables
    PINS = ()  # option keys that name a pin no other driver may use
    EVENTS = ()

    @classmethod
    def spec(cls):
        spec = dict(COMMON)
        spec.update(cls.OPTIONS)
        return spec

    def __init__(self, hal, options):
        self.hal = hal
        self.options = options
        self.id = options["id"]
        self.name = options["name"] or options["id"]
        self.node = None
        self.last = {}  # field id -> last reported value
        self.current = {}  # field id -> last read value
        self.failing = False
        self.ready = False  # setup() succeeded
        self.fields = self.make_fields()

    def field(self, field_id, name, kind, unit=None, device_class=None, **extra):
        """A field definition as announced; the first field takes the config's unit/class."""
        if not getattr(self, "_primary_done", False):
            self._primary_done = True
            unit = self.options["unit"] or unit
            device_class = self.options["device_class"] or device_class
        out = {"id": field_id, "name": name, "type": kind}
        if unit:
            out["unit"] = unit
        if device_class:
            out["device_class"] = device_class
        if kind in ("int", "float") and not extra.get("writable"):
            out["state_class"] = "measurement"
        out.update(extra)
        return out

    def make_fields(self):
        return []

    def definition(self):
        return {
            "id": self.id,
            "name": self.name,
            "fields": self.fields,
            "events": list(self.EVENTS),
        }

    def setup(self):
        """Open the hardware (raises OSError/ValueError when it is not there)."""

    async def read(self):
        """The current values {field_id: value}, or None when there is nothing to read."""

    def set(self, field_id, value):
        """Apply a set; return the values to report. Raise ValueError when not writable."""
        raise ValueError("%s.%s is not writable" % (self.id, field_id))

    def _round(self, value):
        return round(value, self.options["precision"]) if isinstance(value, float) else value

    def offer(self, values, force=False):
        """Report the values that changed enough (all of them when force)."""
        changed = {}
        for key, raw in values.items():
            value = self._round(raw)
            self.current[key] = value
            old = self.last.get(key)
            if force or old is None or self._moved(old, value):
                changed[key] = value
        if changed and self.node is not None and self.node.report(self.id, changed):
            self.last.update(changed)

    def _moved(self, old, new):
        if isinstance(new, bool) or not isinstance(new, (int, float)):
            return new != old
        return abs(new - old) >= max(self.options["min_change"], 1e-9)

    def republish(self):
        if self.current:
            self.offer(self.current, force=True)

    async def run(self):
        """Read every interval (drivers with their own timing override this)."""
        while True:
            values = await self.read()
            if self.failing:
                self.failing = False
                log.info("%s: readings are back" % self.id)
            if values:
                self.offer(values)
            await asyncio.sleep(self.options["interval"])

    def start(self):
        """Open the hardware before the node connects (so queued commands find it ready)."""
        try:
            self.setup()
            self.ready = True
        except Exception as err:  # retried by supervise()
            self._failed(err)

    def _failed(self, err):
        if not self.failing:
            self.failing = True
            log.warning("%s: %r" % (self.id, err))
            if self.node is not None:
                self.node.node_event("sensor_error", {"source": self.id, "error": repr(err)[:200]})

    async def supervise(self):
        """Run the driver forever: an error (a missing sensor, a failed read) is logged and
        reported once as a `sensor_error` event, then retried every interval."""
        while True:
            try:
                if not self.ready:
                    self.setup()
                    self.ready = True
                await self.run()
            except Exception as err:  # any driver error is retried, never fatal
                self._failed(err)
            await asyncio.sleep(self.options["interval"])
