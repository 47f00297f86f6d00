"""Counted, rate-limited logging of dropped input: bad input never crashes, never goes unseen."""

from __future__ import annotations

import logging
from collections import Counter

_LOGGER = logging.getLogger(__name__)

# Log the first drops of each reason, then one in every LOG_EVERY, so a flood stays readable.
LOG_FIRST = 20
LOG_EVERY = 1000


class DropCounter:
    """Counts dropped messages by reason and logs them with their origin."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def drop(self, reason: str, origin: str, detail: str) -> None:
        """Count one dropped message; `origin` says where it came from (topic, line, frame)."""
        self.counts[reason] += 1
        count = self.counts[reason]
        if count <= LOG_FIRST or count % LOG_EVERY == 0:
            _LOGGER.warning("Dropped (%s, #%d) from %s: %s", reason, count, origin, detail)

    @property
    def total(self) -> int:
        """All drops so far."""
        return self.counts.total()
