"""Long work on the event loop in slices: a Pacer yields to the loop once a slice is used up."""

from __future__ import annotations

import asyncio
import time

# Work this long, then let the loop run other tasks (the API answers within about a slice).
SLICE_SECONDS = 0.005


class Pacer:
    """Call `await pacer.tick()` between pieces of work; it yields once a slice has passed."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    async def tick(self) -> None:
        """Yield to the event loop if this slice is used up."""
        if time.perf_counter() - self._started >= SLICE_SECONDS:
            await asyncio.sleep(0)
            self._started = time.perf_counter()
