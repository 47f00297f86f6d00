"""CAN bus provider: python-can transport, DBC decoding and encoding with cantools."""

from __future__ import annotations

from .dbc import frame_key, raw_source_id, sanitize_id
from .provider import DRAIN_BATCH, DROP_REASONS, OPTIONS_SCHEMA, CanProvider

__all__ = [
    "DRAIN_BATCH",
    "DROP_REASONS",
    "OPTIONS_SCHEMA",
    "CanProvider",
    "frame_key",
    "raw_source_id",
    "sanitize_id",
]
