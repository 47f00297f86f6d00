"""MySensors OTA jobs: library firmware assigned to a node and served to it, block by block.

`OtaJobs` is the provider's FirmwareSource. `install` assigns an image to a node, asks the node
to reboot (I_REBOOT; a smart-sleep node gets it at its next wake-up) and follows it through the
stages of a `firmware progress` event: connecting (until the node asks for its firmware config)
→ writing (percent of the blocks served, in the order the node asks for them) → rebooting
(block 0 served: the node checks the CRC and restarts) → done (it asks for its config again
with the image's type, version, blocks and CRC), or failed. Without an assignment a node's
requests stay unanswered and it starts the firmware it has.

A job is bounded: `timeout` seconds in all, and once the node has asked for its config no more
than `idle_timeout` seconds between two of its requests. Assignments and images are in memory
only while the job runs: a gateway restart cancels the job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ...commands import BUSY, FIRMWARE_REJECTED, PROVIDER_UNAVAILABLE, TIMEOUT, CommandError
from . import protocol as ms
from .ota import OtaImage

_LOGGER = logging.getLogger(__name__)

type Progress = Callable[[str, int, str | None], None]  # (stage, percent, error)

DEFAULT_TIMEOUT = 3600.0
DEFAULT_IDLE_TIMEOUT = 60.0
MAX_TRANSFERS = 3  # a node whose CRC check fails asks again; after this many transfers: failed


class _Job:
    """One node's assignment and how far it got."""

    def __init__(self, node_id: str, image: OtaImage, progress: Progress) -> None:
        loop = asyncio.get_running_loop()
        self.node_id = node_id
        self.image = image
        self.progress = progress
        self.stage = "connecting"
        self.percent = 0
        self.served: set[int] = set()
        self.transfers = 0
        self.last_request = loop.time()
        self.finished: asyncio.Future[None] = loop.create_future()

    def report(self, stage: str, percent: int) -> None:
        if (stage, percent) != (self.stage, self.percent):
            self.stage, self.percent = stage, percent
            self.progress(stage, percent, None)

    def finish(self, error: CommandError | None = None) -> None:
        if self.finished.done():
            return
        if error is None:
            self.finished.set_result(None)
        else:
            self.finished.set_exception(error)

    def touch(self) -> None:
        self.last_request = asyncio.get_running_loop().time()


class OtaJobs:
    """The running OTA jobs of one provider, by node id; a FirmwareSource."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    ) -> None:
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self._jobs: dict[str, _Job] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    # FirmwareSource -----------------------------------------------------------------------------

    def firmware_for(
        self, node_id: str, request: ms.FirmwareConfigRequest
    ) -> ms.FirmwareConfig | None:
        job = self._jobs.get(node_id)
        if job is None or job.finished.done():
            return None
        job.touch()
        config = job.image.config
        if (request.type, request.version, request.blocks, request.crc) == (
            config.type, config.version, config.blocks, config.crc,
        ):  # fmt: skip
            _LOGGER.info("MySensors %s runs firmware %d v%d", node_id, config.type, config.version)
            job.finish()
            return config  # the same config: the node starts the firmware it has
        restart = job.stage == "connecting" or bool(job.served)  # from the last block again
        if restart and job.transfers >= MAX_TRANSFERS:
            why = "its CRC check failed" if job.stage == "rebooting" else "it kept restarting"
            job.finish(CommandError(FIRMWARE_REJECTED, (
                f"{node_id} did not take firmware {config.type} v{config.version} in"
                f" {job.transfers} transfers: {why}"
            )))  # fmt: skip
            return None
        if job.stage == "rebooting":  # all blocks went out, yet it asks with another config
            _LOGGER.info("MySensors %s: CRC check failed; sending the firmware again", node_id)
        job.transfers += restart
        job.served.clear()
        job.report("writing", 0)
        return config

    def firmware_block(self, node_id: str, request: ms.FirmwareBlockRequest) -> bytes | None:
        job = self._jobs.get(node_id)
        if job is None or job.finished.done():
            return None
        image = job.image
        if (request.type, request.version) != (image.type, image.version):
            return None  # not the assigned firmware: left unanswered
        if request.block >= image.blocks:
            raise ms.ParseError(ms.INVALID_BLOCK, (
                f"block {request.block} of firmware {image.type} v{image.version},"
                f" which has {image.blocks} blocks"
            ))  # fmt: skip
        job.touch()
        job.served.add(request.block)
        if request.block == 0:
            job.report("rebooting", 100)
        elif job.stage != "rebooting":
            job.report("writing", min(99, len(job.served) * 100 // image.blocks))
        return image.block(request.block)

    # Jobs -------------------------------------------------------------------------------------

    async def install(
        self, node_id: str, image: OtaImage, reboot: Callable[[], None], progress: Progress
    ) -> None:
        """Assign `image` to the node, reboot it and follow the update until the node runs the
        image (done) or the job fails (raises CommandError; progress gets `failed` first)."""
        if node_id in self._jobs:
            raise CommandError(BUSY, f"{node_id} is already being updated")
        job = self._jobs[node_id] = _Job(node_id, image, progress)
        try:
            progress("connecting", 0, None)
            _LOGGER.info("MySensors %s: firmware %d v%d assigned (%d blocks, CRC 0x%04x)",
                         node_id, image.type, image.version, image.blocks, image.crc)  # fmt: skip
            reboot()
            await self._follow(job)
        except CommandError as err:
            _LOGGER.warning("MySensors %s: firmware update failed: %s", node_id, err.message)
            progress("failed", job.percent, err.message)
            raise
        finally:
            del self._jobs[node_id]
            if job.finished.done() and not job.finished.cancelled():
                job.finished.exception()  # retrieved, even when the job ended otherwise
        progress("done", 100, None)

    def cancel_all(self, reason: str) -> None:
        """Fail every running job (the provider stops)."""
        for job in self._jobs.values():
            job.finish(CommandError(PROVIDER_UNAVAILABLE, f"{job.node_id}: {reason}"))

    async def _follow(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not job.finished.done():
            now = loop.time()
            limit = deadline
            if job.stage != "connecting":
                limit = min(deadline, job.last_request + self.idle_timeout)
            if now >= limit:
                raise CommandError(TIMEOUT, self._timeout_message(job, now >= deadline))
            # Looked at again at least every idle_timeout: the node may have started meanwhile.
            await asyncio.wait([job.finished], timeout=min(limit - now, self.idle_timeout))
        job.finished.result()

    def _timeout_message(self, job: _Job, overall: bool) -> str:
        node, image = job.node_id, job.image
        served = f"{len(job.served)} of {image.blocks} blocks served"
        if job.stage == "connecting":
            return (
                f"{node} did not ask for firmware within {self.timeout:g} s of the reboot"
                " request: it needs MYSBootloader, or a sketch built with"
                " MY_OTA_FIRMWARE_FEATURE on DualOptiboot"
            )
        if overall:
            return f"{node}: the update took longer than {self.timeout:g} s ({served})"
        if job.stage == "rebooting":
            return (
                f"{node} did not come back with firmware {image.type} v{image.version} within"
                f" {self.idle_timeout:g} s of the last block"
            )
        idle = f"{self.idle_timeout:g} s"
        return f"{node} stopped asking for firmware blocks ({served}, none for {idle})"
