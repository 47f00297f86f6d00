"""Firmware jobs (serial flashes and OTA installs): their last progress and `firmware progress`."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from typing import Any

from .. import bus

FINISHED_KEPT = 20  # finished jobs firmware_jobs still lists (the newest)
ENDED = ("done", "failed")


class FirmwareJobs:
    """Every running job and the newest finished ones; reports progress on the bus."""

    def __init__(self, events: bus.EventBus) -> None:
        self.events = events
        self._jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()  # oldest first

    def start(self, kind: str, where: dict[str, str], firmware_id: str, stage: str) -> str:
        """Record a new job; `where` is {"port": ...} or {"node_id": ...}. Returns its id."""
        job_id = secrets.token_hex(8)
        self._jobs[job_id] = {
            "job_id": job_id, "kind": kind, **where, "firmware_id": firmware_id,
            "stage": stage, "percent": 0, "error": None, "started_at": time.time(),
        }  # fmt: skip
        self._prune()
        return job_id

    def report(self, job_id: str, stage: str, percent: int, error: str | None = None) -> None:
        """A job's progress: kept for firmware_jobs and emitted as a `firmware progress` event.
        Nothing more is reported for a job once it is done or failed."""
        job = self._jobs.get(job_id)
        if job is None or job["stage"] in ENDED:
            return
        job.update(stage=stage, percent=max(0, min(100, percent)), error=error)
        data = {key: job[key] for key in ("job_id", "kind", "port", "node_id") if key in job}
        self.events.emit(bus.FIRMWARE_PROGRESS, data | {"stage": stage,
                         "percent": job["percent"], "error": error})  # fmt: skip
        if stage in ENDED:
            self._prune()

    def list(self) -> list[dict[str, Any]]:
        """The `firmware_jobs` result's jobs, oldest first."""
        return [dict(job) for job in self._jobs.values()]

    def _prune(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job["stage"] in ENDED]
        for job_id in finished[: max(0, len(finished) - FINISHED_KEPT)]:
            del self._jobs[job_id]
