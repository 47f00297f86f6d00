"""OTA install jobs (`firmware_install`): one per node, run by the node's provider, time-bounded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..commands import BUSY, NOT_SUPPORTED, PROVIDER_UNAVAILABLE, CommandError
from ..providers.base import installs_firmware

if TYPE_CHECKING:
    from ..models import Node
    from ..providers import Provider
    from .jobs import FirmwareJobs
    from .library import FirmwareLibrary

_LOGGER = logging.getLogger(__name__)

STOP_SECONDS = 5.0  # how long stopping the gateway waits for cancelled installs to end


class FirmwareInstaller:
    """Starts install jobs on the node's provider and reports them through FirmwareJobs."""

    def __init__(
        self,
        library: FirmwareLibrary,
        jobs: FirmwareJobs,
        node: Callable[[str], Node],
        providers: dict[str, Provider],
        timeout: float,
    ) -> None:
        self.library = library
        self.jobs = jobs
        self.node = node  # node id → Node, or CommandError not_found
        self.providers = providers
        self.timeout = timeout  # seconds a job may take (the `[firmware] install_timeout`)
        self._nodes: set[str] = set()  # nodes with a running job
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, node_id: str, firmware_id: str) -> dict[str, str]:
        """Start installing `firmware_id` on the node; returns the job id at once."""
        node = self.node(node_id)
        entry = self.library.get(firmware_id)
        provider = self.providers.get(node.provider)
        if provider is None:
            raise CommandError(PROVIDER_UNAVAILABLE, f"provider {node.provider!r} is not running")
        if not installs_firmware(provider):
            raise CommandError(
                NOT_SUPPORTED, f"{provider.kind} provider {provider.name} cannot update firmware"
            )
        if node_id in self._nodes:
            raise CommandError(BUSY, f"node {node_id} is already being updated")
        provider.check_firmware(node, entry)
        hold = self.library.use(firmware_id)  # held from now: no delete before the task runs
        hold.__enter__()
        job_id = self.jobs.start(provider.kind, {"node_id": node_id}, firmware_id, "connecting")
        self._nodes.add(node_id)
        task = asyncio.create_task(
            self._run(job_id, provider, node, entry, hold), name=f"edgeiot-install-{job_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"job_id": job_id}

    def list(self) -> dict[str, list[dict[str, Any]]]:
        """The `firmware_jobs` result."""
        return {"jobs": self.jobs.list()}

    async def _run(
        self,
        job_id: str,
        provider: Provider,
        node: Node,
        entry: dict[str, Any],
        hold: contextlib.AbstractContextManager[Any],
    ) -> None:
        def progress(stage: str, percent: int, error: str | None = None) -> None:
            if stage not in ("done", "failed"):  # the job's end is reported below, once
                self.jobs.report(job_id, stage, percent, error)

        try:
            async with asyncio.timeout(self.timeout):
                await provider.install_firmware(node, entry, self.library.path(entry), progress)
        except TimeoutError:
            self._failed(job_id, f"node {node.id} did not finish within {self.timeout:g} s")
        except CommandError as err:
            self._failed(job_id, err.message)
        except asyncio.CancelledError:
            self._failed(job_id, "the gateway stopped")
            raise
        except Exception as err:
            _LOGGER.exception("Install job %s on node %s failed", job_id, node.id)
            self._failed(job_id, repr(err)[:200])
        else:
            self.jobs.report(job_id, "done", 100)
        finally:
            self._nodes.discard(node.id)
            hold.__exit__(None, None, None)

    def _failed(self, job_id: str, error: str) -> None:
        _LOGGER.warning("Install job %s failed: %s", job_id, error)
        self.jobs.report(job_id, "failed", 0, error)

    async def close(self) -> None:
        """Cancel running installs (a node keeps or rolls back its firmware by itself)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
