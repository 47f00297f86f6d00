"""OTA updates of EdgeIoT MQTT nodes (docs/protocol.md 2.14): the gateway side of one job.

The gateway publishes `<node_id>/ota` with a download URL (a token of updates/downloads.py); the
node downloads, reports on `<node_id>/ota_status` and ends with `done`, or re-announces running
the new version. `failed` and `rolled_back` end the job with the node's error.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..commands import INVALID_FIRMWARE, NOT_SUPPORTED, CommandError
from ..diagnostics import DropCounter
from ..models import Node
from ..protocol import OtaStatus, Topics
from ..updates.downloads import OtaDownloads

_LOGGER = logging.getLogger(__name__)

type Progress = Callable[[str, int, str | None], None]
type Publish = Callable[[str, bytes], None]

PROGRESS_STAGES = ("downloading", "verifying", "applying", "rebooting")


@dataclass(slots=True)
class _Job:
    job: str
    version: str
    progress: Progress
    ended: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def check_firmware(node: Node, entry: dict[str, Any]) -> None:
    """Whether library firmware `entry` fits the node's announced `ota` block."""
    ota = node.ota
    if ota is None:
        raise CommandError(
            NOT_SUPPORTED, f"node {node.id} takes no OTA updates (its announce has no ota block)"
        )
    if entry["format"] not in ota["formats"]:
        raise CommandError(
            INVALID_FIRMWARE,
            f"node {node.id} takes {' or '.join(ota['formats'])}, not {entry['format']}",
        )
    # A bundle for target edgeiot names its target in its manifest, which the node checks.
    if entry["target"] != ota["target"] and not (
        entry["format"] == "edgeiot-bundle" and entry["target"] == "edgeiot"
    ):
        raise CommandError(
            INVALID_FIRMWARE,
            f"firmware {entry['id']} is for {entry['target']}, node {node.id} is {ota['target']}",
        )


class MqttOta:
    """The MQTT provider's running OTA jobs, one per node."""

    def __init__(
        self, topics: Topics, publish: Publish, downloads: OtaDownloads | None, drops: DropCounter
    ) -> None:
        self.topics = topics
        self.publish = publish
        self.downloads = downloads
        self.drops = drops
        self._jobs: dict[str, _Job] = {}  # node id → its job

    async def install(
        self, node: Node, entry: dict[str, Any], path: Path, progress: Progress
    ) -> None:
        """Run one job to its end (see the module docstring); the caller bounds its time."""
        if self.downloads is None:
            raise CommandError(NOT_SUPPORTED, "this gateway serves no firmware downloads")
        if node.id in self._jobs:  # the installer allows one job per node; this is a guard
            raise CommandError(INVALID_FIRMWARE, f"node {node.id} has an OTA job already")
        token, url = self.downloads.issue(path)
        job = _Job(secrets.token_hex(8), entry["version"], progress)
        self._jobs[node.id] = job
        try:
            self.publish(*self.topics.encode_ota(node.id, job.job, url, entry))
            progress("connecting", 0, None)
            _LOGGER.info("OTA job %s: node %s to %s (%s)", job.job, node.id, entry["version"],
                         entry["id"])  # fmt: skip
            await job.ended
        finally:
            del self._jobs[node.id]
            self.downloads.revoke(token)

    def status(self, message: OtaStatus, origin: str) -> None:
        """A node's `ota_status`: progress, or the job's end."""
        job = self._jobs.get(message.node_id)
        if job is None or job.job != message.job or job.ended.done():
            self.drops.drop("unknown_job", origin, f"no OTA job {message.job!r} for this node")
            return
        if message.state in PROGRESS_STAGES:
            job.progress(message.state, message.progress or 0, None)
        elif message.state == "done":
            job.ended.set_result(None)
        else:  # failed, rolled_back
            reason = message.error or "no reason given"
            job.ended.set_exception(CommandError(
                INVALID_FIRMWARE, f"node {message.node_id} reported {message.state}: {reason}"
            ))  # fmt: skip

    def announced(self, node: Node) -> None:
        """A node announced itself: running the job's version ends the job."""
        job = self._jobs.get(node.id)
        if job is not None and not job.ended.done() and node.firmware == job.version:
            job.ended.set_result(None)
