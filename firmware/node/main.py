"""EdgeIoT node firmware entry point (MicroPython runs main.py after boot.py).

Anything that escapes the application (a crashing update included) resets the board after a
pause, so boot.py can roll a bundle on trial back instead of leaving the board at the REPL.
"""

import sys
import time

if sys.platform in ("linux", "darwin"):
    import boot  # noqa: F401 - the unix port runs no boot.py by itself

try:
    from edgeiot import app

    app.run()
except Exception as err:
    sys.print_exception(err)
    time.sleep(1)
    if sys.platform in ("linux", "darwin"):
        sys.exit(3)  # the unix port's reset (see edgeiot/sim.py)
    import machine

    machine.reset()
