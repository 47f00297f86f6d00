"""Bounds on what nodes may define, so no announce can grow the gateway's memory without end.

With the defaults, the whole state (definitions and last values) a WebSocket client receives
stays below the HA integration's 64 MiB message limit: 16 MiB of definitions plus at most
20,000 values, each at most 255 characters of text (about 30 MiB escaped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .models import Node


@dataclass(slots=True, frozen=True)
class Limits:
    """Configurable bounds (`[limits]`); an announce past one is dropped as `limit_reached`."""

    max_nodes: int = 1000
    max_fields_per_node: int = 512
    max_fields: int = 20_000  # of all nodes together
    max_definition_bytes: int = 64 * 1024  # one node's definition, as JSON
    max_total_definition_bytes: int = 16 * 1024 * 1024


class LimitReached(Exception):  # noqa: N818 (a verdict, not a fault)
    """An announce that would take the gateway past one of its limits."""


class Budget:
    """What the known nodes use of the limits; checks an announce before it is taken."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._usage: dict[str, tuple[int, int]] = {}  # node id → (fields, definition bytes)
        self.fields = 0
        self.definition_bytes = 0

    @staticmethod
    def usage(node: Node) -> tuple[int, int]:
        """A node's fields and definition size (JSON bytes)."""
        fields = sum(len(source.fields) for source in node.sources.values())
        return fields, len(json.dumps(node.definition()))

    def check(self, node: Node, known: bool) -> tuple[int, int]:
        """The node's usage if taking it keeps within the limits, else LimitReached."""
        limits = self.limits
        fields, size = self.usage(node)
        old_fields, old_size = self._usage.get(node.id, (0, 0))
        if not known and len(self._usage) >= limits.max_nodes:
            raise LimitReached(f"the gateway has {limits.max_nodes} nodes (limits.max_nodes)")
        if fields > limits.max_fields_per_node:
            raise LimitReached(f"{fields} fields > limits.max_fields_per_node")
        if size > limits.max_definition_bytes:
            raise LimitReached(f"definition of {size} bytes > limits.max_definition_bytes")
        if self.fields - old_fields + fields > limits.max_fields:
            raise LimitReached(f"the gateway would hold more than {limits.max_fields} fields")
        if self.definition_bytes - old_size + size > limits.max_total_definition_bytes:
            raise LimitReached("definitions would exceed limits.max_total_definition_bytes")
        return fields, size

    def take(self, node_id: str, usage: tuple[int, int]) -> None:
        """Account for a node taken (added or redefined)."""
        self.release(node_id)
        self._usage[node_id] = usage
        self.fields += usage[0]
        self.definition_bytes += usage[1]

    def release(self, node_id: str) -> None:
        """Forget a removed node's usage."""
        fields, size = self._usage.pop(node_id, (0, 0))
        self.fields -= fields
        self.definition_bytes -= size


DEFAULT_LIMITS = Limits()
