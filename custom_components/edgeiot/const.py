"""Constants for the EdgeIoT integration."""

from typing import Final

DOMAIN: Final = "edgeiot"
