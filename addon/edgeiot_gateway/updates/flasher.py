"""Serial flash jobs: one per port, in worker threads, reported as `firmware progress` events."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from serial.tools import list_ports

from ..commands import BUSY, INVALID_VALUE, CommandError
from .images import ESP_TARGETS
from .serial_flash import DEFAULT_BAUD, FlashError, FlashJob, flash

if TYPE_CHECKING:
    from .jobs import FirmwareJobs
    from .library import FirmwareLibrary

_LOGGER = logging.getLogger(__name__)

BAUDS = (115200, 230400, 460800, 921600, 1500000, 2000000)
STOP_SECONDS = 30.0  # how long stopping the gateway waits for running flashes


def serial_ports() -> list[dict[str, Any]]:
    """(Worker thread) the serial ports pyserial sees, with USB ids where known."""
    return [
        {"device": port.device, "description": port.description, "vid": port.vid,
         "pid": port.pid, "serial_number": port.serial_number,
         "manufacturer": port.manufacturer}
        for port in sorted(list_ports.comports(), key=lambda p: p.device)
    ]  # fmt: skip


class SerialFlasher:
    """Starts flash jobs and reports them on the bus."""

    def __init__(
        self, library: FirmwareLibrary, jobs: FirmwareJobs, connect_attempts: int = 3
    ) -> None:
        self.library = library
        self.jobs = jobs
        self.connect_attempts = connect_attempts
        self._ports: set[str] = set()  # ports with a running job
        self._tasks: set[asyncio.Task[None]] = set()

    async def ports(self) -> dict[str, Any]:
        """The `serial_ports` result."""
        return {"ports": await asyncio.to_thread(serial_ports)}

    def start(
        self, port: str, firmware_id: str, baud: int = DEFAULT_BAUD, erase: bool = False
    ) -> dict[str, str]:
        """Start flashing `firmware_id` to the chip on `port`; returns the job id."""
        entry = self.library.get(firmware_id)
        if entry["target"] not in ESP_TARGETS or entry["format"] not in ("esp-image", "esp-merged"):
            raise CommandError(INVALID_VALUE, f"firmware {firmware_id} is not an ESP image")
        if baud not in BAUDS:
            raise CommandError(INVALID_VALUE, f"baud: one of {', '.join(map(str, BAUDS))}")
        if port in self._ports:
            raise CommandError(BUSY, f"{port} is already being flashed")
        job_id = self.jobs.start("serial", {"port": port}, firmware_id, "connecting")
        self._ports.add(port)
        task = asyncio.create_task(
            self._run(job_id, port, entry, baud, erase), name=f"edgeiot-flash-{job_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"job_id": job_id}

    async def _run(self, job_id: str, port: str, entry: dict[str, Any], baud: int,
                   erase: bool) -> None:  # fmt: skip
        loop = asyncio.get_running_loop()

        def report(stage: str, percent: int, error: str | None = None) -> None:
            self.jobs.report(job_id, stage, percent, error)

        def from_thread(stage: str, percent: int) -> None:
            loop.call_soon_threadsafe(report, stage, percent)

        try:
            with self.library.use(entry["id"]):
                data = await asyncio.to_thread(self.library.path(entry).read_bytes)
                job = FlashJob(port, data, entry["offset"], entry["target"],
                               merged=entry["format"] == "esp-merged", baud=baud, erase=erase,
                               connect_attempts=self.connect_attempts)  # fmt: skip
                await asyncio.to_thread(flash, job, from_thread)
            await asyncio.sleep(0)  # the thread's last reports come first
            report("done", 100)
        except FlashError as err:
            await asyncio.sleep(0)
            report("failed", 0, str(err))
        except Exception as err:
            _LOGGER.exception("Flash job %s on %s failed", job_id, port)
            report("failed", 0, repr(err)[:200])
        finally:
            self._ports.discard(port)

    async def close(self) -> None:
        """Wait (bounded) for running flashes: a half-written chip is worse than a slow stop."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
