"""Runs first at every boot: nothing to do before main.py yet (kept for the OTA boot check)."""
