"""Firmware management: the image checks, the firmware library and serial flashing."""
