"""EdgeIoT node firmware entry point (MicroPython runs main.py after boot.py)."""

from edgeiot import app

app.run()
