"""The error every automation definition check raises."""

from __future__ import annotations


class DefinitionError(ValueError):
    """An invalid definition; the message names the bad part, e.g. "schedule.cron: ..."."""
