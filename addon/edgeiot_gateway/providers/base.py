"""The provider interface: start/stop, inbound messages, outbound commands, node liveness."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..commands import INVALID_VALUE, NOT_SUPPORTED, CommandError
from ..diagnostics import DropCounter
from ..messages import InboundMessage
from ..models import Node, Value
from ..supervision import LoopHealth
from ..updates.downloads import OtaDownloads

PROVIDERS: dict[str, type[Provider]] = {}


def register_provider[P: type[Provider]](cls: P) -> P:
    """Class decorator: make a provider available under its `kind`."""
    PROVIDERS[cls.kind] = cls
    return cls


@dataclass(slots=True, frozen=True)
class ProviderContext:
    """What the gateway gives a provider."""

    gateway_id: str
    submit: Callable[[InboundMessage, str], None]  # (message, origin) → processor
    drops: DropCounter
    connection_changed: Callable[[str, bool], None]  # (provider name, connected)
    data_dir: Path  # where a provider keeps its own files (assigned ids, state)
    # Runs a callback once what was submitted so far is on disk: acknowledge to the source then.
    when_durable: Callable[[Callable[[], None]], None] = lambda callback: callback()
    health: LoopHealth = field(default_factory=LoopHealth)  # the provider's loops report here
    downloads: OtaDownloads | None = None  # serves firmware to nodes that download it (OTA)


def installs_firmware(provider: Provider) -> bool:
    """Whether the provider overrides install_firmware (so a job can be started at all)."""
    return type(provider).install_firmware is not Provider.install_firmware


class Provider(ABC):
    """One connection to a node network (an MQTT broker, a serial port, a CAN interface)."""

    kind: ClassVar[str]

    def __init__(self, name: str, context: ProviderContext, options: dict[str, Any]) -> None:
        self.name = name
        self.context = context
        self.options = options

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the network is reachable now."""

    @property
    def error(self) -> str | None:
        """Why the network is not reachable, when the provider knows (shown while disconnected)."""
        return None

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin delivering messages; must not wait for the network to be up."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect and release everything."""

    @abstractmethod
    async def set_field(self, node: Node, source_id: str, field_id: str, value: Value) -> None:
        """Send a (validated) value to a writable field of a node."""

    async def set_field_echo(
        self, node: Node, source_id: str, field_id: str, value: Value, echo: bool
    ) -> None:
        """set_field asking the node for an echo (`echo`) or not: networks with echoes only."""
        raise CommandError(INVALID_VALUE, f"{self.kind} provider {self.name} has no echoes (ack)")

    @abstractmethod
    async def node_action(self, node: Node, action: str) -> None:
        """Run an action the node declared (reboot, identify ...)."""

    def check_firmware(self, node: Node, entry: dict[str, Any]) -> None:  # noqa: B027
        """Raise CommandError (invalid_firmware, naming the mismatch) if library firmware `entry`
        cannot go to `node`; called before an install job starts. Default: accepted."""

    async def install_firmware(
        self,
        node: Node,
        entry: dict[str, Any],
        path: Path,
        progress: Callable[[str, int, str | None], None],
    ) -> None:
        """Update `node` to library firmware `entry` (its file at `path`), reporting
        `progress(stage, percent, error)`; returns once the node runs it, raises CommandError on
        failure. The caller bounds the time it may take."""
        raise CommandError(
            NOT_SUPPORTED, f"{self.kind} provider {self.name} cannot update firmware"
        )

    def diagnostics(self) -> dict[str, Any]:
        """Provider-specific figures for the API."""
        return {"connected": self.connected}
