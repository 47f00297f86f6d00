"""EdgeIoT node firmware: the node protocol v1 on MicroPython, drivers from a JSON node config."""

VERSION = "0.1.0"
