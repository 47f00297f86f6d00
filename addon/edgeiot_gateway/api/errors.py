"""Rejected API requests: counted by error code, logged at a rate that stays readable."""

from __future__ import annotations

import logging
from collections import Counter

from ..diagnostics import LOG_EVERY, LOG_FIRST

_LOGGER = logging.getLogger(__package__)

HTTP_ERROR = "http_error"


def reject(
    errors: Counter[str], code: str, level: int, text: str, *args: object, exc_info: bool = False
) -> None:
    """Count one rejection; log the first LOG_FIRST of each code, then one in every LOG_EVERY."""
    errors[code] += 1
    count = errors[code]
    if count <= LOG_FIRST or count % LOG_EVERY == 0:
        _LOGGER.log(level, f"{text} (%s #%d)", *args, code, count, exc_info=exc_info)


class HttpLogger(logging.Logger):
    """aiohttp's server log (malformed requests, failed handlers), counted and rate-limited.

    aiohttp logs every request it cannot parse at ERROR with a traceback; a flood of them must
    not flood the log. Each such record counts as `http_error`.
    """

    def __init__(self, errors: Counter[str]) -> None:
        super().__init__(f"{__package__}.http")
        self.parent = _LOGGER
        self.errors = errors

    def handle(self, record: logging.LogRecord) -> None:
        """Count records of WARNING and above; pass on those the rate allows."""
        if record.levelno >= logging.WARNING:
            self.errors[HTTP_ERROR] += 1
            count = self.errors[HTTP_ERROR]
            if count > LOG_FIRST and count % LOG_EVERY:
                return
            record.msg = f"{record.msg} ({HTTP_ERROR} #{count})"
        super().handle(record)
