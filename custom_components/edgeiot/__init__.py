"""The EdgeIoT integration: HA client of an EdgeIoT gateway's WebSocket API."""
