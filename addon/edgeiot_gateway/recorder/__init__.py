"""InfluxDB recording of every field value, through a durable on-disk journal."""

from .influx import InfluxTarget
from .recorder import Recorder, RecorderConfig

__all__ = ["InfluxTarget", "Recorder", "RecorderConfig"]
