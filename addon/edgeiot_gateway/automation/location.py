"""Where the gateway is: for sun events and as the default time zone of schedules."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Latitude/longitude in degrees (north/east positive), elevation in metres, IANA zone."""

    latitude: float
    longitude: float
    elevation: float = 0.0
    tz: str = "UTC"
