"""Long work on the event loop in slices: `await pause()` yields once a slice is used up.

One clock is shared by everything that pauses (encoding, restore, command loops), so work split
over many calls, e.g. one pipelined command after the other, still yields every slice.
"""

from __future__ import annotations

import asyncio
import time

# Work this long, then let the loop run other tasks (the API answers within about a slice).
SLICE_SECONDS = 0.002


class _Slice:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    async def pause(self) -> None:
        if time.perf_counter() - self.started >= SLICE_SECONDS:
            await asyncio.sleep(0)
            self.started = time.perf_counter()


_SLICE = _Slice()


async def pause() -> None:
    """Yield to the event loop if a slice has passed since the last yield here."""
    await _SLICE.pause()
