"""The gateway configuration's [location] table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeiot_gateway.automation.scheduler import Location
from edgeiot_gateway.config import ConfigError, parse_config


def test_location_table(tmp_path: Path) -> None:
    raw = {"location": {"latitude": 52.52, "longitude": 13, "time_zone": "Europe/Berlin"}}
    assert parse_config(raw, tmp_path).location == Location(52.52, 13.0, 0.0, "Europe/Berlin")
    assert parse_config({}, tmp_path).location is None


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ({"latitude": 91, "longitude": 0}, "value must be at most 90"),
        ({"latitude": 0, "longitude": -181}, "value must be at least -180"),
        ({"latitude": 0, "longitude": 0, "time_zone": "Mars/Olympus"}, "unknown time zone"),
        ({"latitude": 0, "longitude": 0, "time_zone": 5}, "expected an IANA time zone name"),
        ({"longitude": 0}, "required key not provided"),
        ({"latitude": 0, "longitude": 0, "height": 3}, "not a valid option at 'location.height'"),
    ],
)
def test_bad_location_is_refused(tmp_path: Path, location: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"location": location}, tmp_path)
