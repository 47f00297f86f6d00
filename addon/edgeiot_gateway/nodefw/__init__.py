"""The node firmware builder: LittleFS images, flash plans and OTA bundles (edgeiot-firmware)."""
