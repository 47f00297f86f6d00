"""EdgeIoT gateway: collects node data from MQTT, serial and CAN networks, serves it by API."""

__version__ = "0.1.0"
