"""Runs first at every boot: picks the application bundle to run (OTA with rollback).

`ota.json` (written atomically by edgeiot/ota.py) names the `active` bundle directory and the
`previous` one. A new bundle boots on trial: if a trial boot starts again before the running
firmware confirmed it (connected and sent a heartbeat within its health window), the bundle
crashed or never got online, so this boot rolls back to `previous` and records why for the next
`ota_status` report. This file is never part of a bundle: a bad update cannot break it.
"""

import json
import os
import sys

ROOT = (os.getenv("EDGEIOT_FS") if hasattr(os, "getenv") else None) or ""
STATE = ROOT + "ota.json"


def _write(state):
    with open(STATE + ".tmp", "w") as f:
        json.dump(state, f)
    os.rename(STATE + ".tmp", STATE)


def select_bundle():
    try:
        with open(STATE) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return
    if state.get("trial"):
        if state.get("boots", 0) >= 1:
            state["rolled_back"] = {"job": state.get("job"), "version": state.get("version")}
            state["active"], state["version"] = state.get("previous"), state.get("previous_version")
            state["trial"] = False
            print("boot: bundle never confirmed; rolled back to", state["active"] or "flash")
        else:
            state["boots"] = 1
        _write(state)
    if state.get("active"):
        sys.path.insert(0, ROOT + state["active"])


select_bundle()
