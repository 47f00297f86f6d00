"""Logging to the console (the serial REPL on a board, stdout on the unix port)."""

import time

_START = time.ticks_ms()


def _emit(level, message):
    seconds = time.ticks_diff(time.ticks_ms(), _START) / 1000
    print("%9.3f %s %s" % (seconds, level, message))


def info(message):
    _emit("INFO", message)


def warning(message):
    _emit("WARN", message)


def error(message):
    _emit("ERROR", message)
