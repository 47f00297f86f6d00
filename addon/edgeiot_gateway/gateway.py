"""The gateway: owns the start/stop order of store, processor, API and providers."""

from __future__ import annotations

import asyncio
import logging
import time

from .advertise import Advertiser
from .api import ApiServer
from .auth import load_or_create_token
from .automation.service import Automations
from .bus import GATEWAY_STATUS, EventBus
from .commands import Commands
from .config import GatewayConfig
from .diagnostics import DropCounter
from .durability import Durability
from .messages import InboundMessage
from .processor import MessageProcessor
from .providers import Provider, ProviderContext, create_provider
from .recorder import Recorder
from .store import Store
from .supervision import LoopHealth, keep_running
from .updates.downloads import OtaDownloads, base_url
from .updates.flasher import SerialFlasher
from .updates.installer import FirmwareInstaller
from .updates.jobs import FirmwareJobs
from .updates.library import FirmwareLibrary

_LOGGER = logging.getLogger(__name__)

LIVENESS_CHECK_SECONDS = 1.0


class Gateway:
    """One EdgeIoT gateway: providers feed the processor; the API serves its state."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.gateway_id = config.resolve_gateway_id()
        self.events = EventBus()
        self.drops = DropCounter()
        self.processor = MessageProcessor(self.events, self.drops, config.limits)
        self.health = LoopHealth()
        self.durability = Durability()
        self.store = Store(config.data_dir / "edgeiot.db", config.flush_interval, self.health)
        self.firmware = FirmwareLibrary(config.data_dir, self.store, config.firmware_max_bytes)
        self.jobs = FirmwareJobs(self.events)
        self.flasher = SerialFlasher(self.firmware, self.jobs)
        self.downloads = OtaDownloads()
        self.commands = Commands(self)
        self.providers: dict[str, Provider] = {}
        self.installer = FirmwareInstaller(
            self.firmware, self.jobs, self.commands.node, self.providers, config.install_timeout
        )
        self.api: ApiServer | None = None
        self.token = ""
        self.token_unshown = False  # printed by __main__ until marked shown
        self.advertiser: Advertiser | None = None
        self.recorder: Recorder | None = None
        self.automations = Automations(self, config.smtp, config.location)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_status: dict[str, object] = {}

    async def start(self) -> None:
        """Open the store, serve the API, then connect the providers.

        A start that fails stops what it had started and raises: StartupError for what an
        operator can fix, ConfigError for provider options.
        """
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        if self.config.api.token:
            self.token, self.token_unshown = self.config.api.token, False
        else:
            self.token, self.token_unshown = load_or_create_token(self.config.data_dir)
        self.processor.load(await self.store.open(), self.store.removed_ids)
        self.store.on_commit = self.durability.committed
        self.durability.add_sink(self.store)
        self.store.start(self.events)
        await self.firmware.open()
        if self.config.recorder is not None:
            self.recorder = Recorder(
                self.gateway_id, self.config.recorder, self.config.data_dir, self.health
            )
            self.recorder.on_commit = self.durability.committed
            self.durability.add_sink(self.recorder)
            await self.recorder.start(self.events)
        await self.automations.start()  # before the providers: it sees their first messages
        self.api = ApiServer(self.config.api, self.token, self.commands, self.events)
        await self.api.start()
        self.downloads.base_url = base_url(self.config.ota_url, self.config.api.host, self.api.port)
        if self.config.api.advertise and self.api.port:
            self.advertiser = Advertiser(self.gateway_id, self.config.api.host, self.api.port)
            await self.advertiser.start()
        context = ProviderContext(
            gateway_id=self.gateway_id,
            submit=self.submit,
            drops=self.drops,
            connection_changed=self._connection_changed,
            data_dir=self.config.data_dir,
            when_durable=self.durability.when_durable,
            health=self.health,
            downloads=self.downloads,
        )
        for entry in self.config.providers:
            provider = create_provider(entry.type, entry.name, context, entry.options)
            self.providers[entry.name] = provider
            await provider.start()
        self._tasks = [
            asyncio.create_task(
                keep_running("liveness", self._check_liveness, self.health),
                name="edgeiot-liveness",
            ),
            asyncio.create_task(
                keep_running("status", self._report_status, self.health), name="edgeiot-status"
            ),
        ]
        _LOGGER.info("Gateway %s started with %d nodes and providers %s",
                     self.gateway_id, len(self.processor.nodes), list(self.providers))  # fmt: skip

    async def stop(self) -> None:
        """Stop in reverse order; pending store writes are flushed."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.automations.stop()  # nothing acts on what stopping providers report
        await self.installer.close()  # installs end before their providers stop
        for provider in reversed(list(self.providers.values())):
            try:
                await provider.stop()
            except Exception:
                _LOGGER.exception("Provider %s did not stop cleanly", provider.name)
        if self.advertiser is not None:
            await self.advertiser.stop()
        if self.api is not None:
            await self.api.stop()
        if self.recorder is not None:
            await self.recorder.stop()
        await self.flasher.close()
        await self.firmware.close()
        await self.store.close()
        _LOGGER.info("Gateway %s stopped", self.gateway_id)

    def submit(self, message: InboundMessage, origin: str) -> None:
        """Providers hand every decoded message here."""
        self.processor.handle(message, origin)

    def _connection_changed(self, provider: str, connected: bool) -> None:
        if not connected:
            self.processor.set_provider_offline(provider)
        self._emit_status()  # at once, not at the next status tick

    def _emit_status(self) -> None:
        if (status := self.commands.status()) != self._last_status:
            self._last_status = status
            self.events.emit(GATEWAY_STATUS, {"status": status})

    async def _check_liveness(self) -> None:
        await asyncio.sleep(LIVENESS_CHECK_SECONDS)
        self.processor.check_liveness(time.time())

    async def _report_status(self) -> None:
        """Stream the gateway's health figures (recorder queue, drops, problems) on change."""
        await asyncio.sleep(self.config.api.status_interval)
        self._emit_status()
