"""Rejected API requests: counted by error code, logged at a rate that stays readable."""

from __future__ import annotations

import logging
from collections import Counter

from ..diagnostics import LOG_EVERY, LOG_FIRST

_LOGGER = logging.getLogger(__package__)


def reject(
    errors: Counter[str], code: str, level: int, text: str, *args: object, exc_info: bool = False
) -> None:
    """Count one rejection; log the first LOG_FIRST of each code, then one in every LOG_EVERY."""
    errors[code] += 1
    count = errors[code]
    if count <= LOG_FIRST or count % LOG_EVERY == 0:
        _LOGGER.log(level, f"{text} (%s #%d)", *args, code, count, exc_info=exc_info)
