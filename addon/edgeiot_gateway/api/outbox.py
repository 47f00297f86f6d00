"""A WebSocket connection's send queue: ordered, bounded, coalescing field values when behind."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

type FieldKey = tuple[str, str, str]


class Slot:
    """A place in the queue kept for a message that is still being encoded."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


class Outbox:
    """Encoded messages waiting to be sent, in order.

    While the writer waits for the client to take data (`behind`), a `field value` whose field
    already has a value queued replaces it: the old one is dropped and the new one goes to the
    end, so it still follows every message queued before it. Nothing else is ever merged.
    """

    def __init__(self) -> None:
        # seq -> (field key or None, text or None while its slot is being filled)
        self._entries: OrderedDict[int, tuple[FieldKey | None, str | None]] = OrderedDict()
        self._fields: dict[FieldKey, int] = {}  # the seq of each field's latest queued value
        self._seq = 0
        self._ready = asyncio.Event()  # the first entry can be sent
        self._room = asyncio.Event()  # set whenever an entry leaves the queue
        self.bytes = 0  # characters, which are bytes: the JSON is ASCII (ensure_ascii)
        self.behind = False  # set by the writer while the client is not taking data
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, text: str) -> None:
        """Queue an encoded message."""
        self._append(None, text)

    def put_field_value(self, key: FieldKey, text: str) -> None:
        """Queue a field value, replacing the field's queued one while behind."""
        old = self._fields.get(key) if self.behind else None
        if old is not None:
            _, old_text = self._entries.pop(old)
            self.bytes -= len(old_text or "")
            self.coalesced += 1
        self._fields[key] = self._append(key, text)

    def has_field_value(self, key: FieldKey) -> bool:
        """Whether a value of this field is queued and would be replaced (see put_field_value)."""
        return self.behind and key in self._fields

    def reserve(self) -> Slot:
        """Keep the next place in the queue for a message encoded later (see fill)."""
        return Slot(self._append(None, None))

    def fill(self, slot: Slot, text: str) -> None:
        """Put the encoded message in its reserved place (unless the queue was cleared since)."""
        if slot.seq in self._entries:
            self._entries[slot.seq] = (None, text)
            self.bytes += len(text)
            self._ready.set()

    def clear(self) -> None:
        """Drop everything queued (the connection is being closed)."""
        self._entries.clear()
        self._fields.clear()
        self.bytes = 0
        self._room.set()

    async def take(self, size: int) -> list[str]:
        """The next messages, in order: the first one (waiting until it is encoded), then those
        ready behind it while they fit in `size` characters as a JSON array (with its brackets
        and commas)."""
        entries = self._entries
        while not entries or (first := next(iter(entries.values())))[1] is None:
            self._ready.clear()
            await self._ready.wait()
        texts = [self._pop(first[0])]
        total = len(texts[0]) + 2
        while entries:
            key, text = next(iter(entries.values()))
            if text is None or total + 1 + len(text) > size:
                break
            total += 1 + len(text)
            texts.append(self._pop(key))
        self._room.set()
        return texts

    def _pop(self, key: FieldKey | None) -> str:
        seq, (_, text) = self._entries.popitem(last=False)
        assert text is not None
        if key is not None and self._fields.get(key) == seq:
            del self._fields[key]
        self.bytes -= len(text)
        return text

    async def wait_below(self, messages: int, size: int) -> None:
        """Wait until fewer than `messages` messages and `size` bytes are queued."""
        while len(self._entries) >= messages or self.bytes >= size:
            self._room.clear()
            await self._room.wait()

    def _append(self, key: FieldKey | None, text: str | None) -> int:
        self._seq += 1
        self._entries[self._seq] = (key, text)
        if text is not None:
            self.bytes += len(text)
            self._ready.set()
        return self._seq
