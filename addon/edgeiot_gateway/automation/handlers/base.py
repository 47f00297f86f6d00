"""The handler interface: what a task or schedule does when it fires.

A handler validates its parameters once, when a definition is stored (`validate`, raising
DefinitionError), and is called with them and the run's variables (`call`). It reaches the
gateway only through the HandlerContext, so handlers from plugins need nothing else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp
import voluptuous as vol
from voluptuous.humanize import humanize_error

from ...models import Value
from ..errors import DefinitionError

HANDLERS: dict[str, type[Handler]] = {}


class HandlerError(Exception):
    """A call that failed in a way worth showing in the run history (the message says how)."""


@dataclass(slots=True, frozen=True)
class SmtpConfig:
    """The mail server of the `email` handler (gateway config `[smtp]`)."""

    host: str
    port: int = 587
    security: str = "starttls"  # "starttls", "tls" (implicit, port 465) or "none"
    username: str | None = None
    password: str | None = None
    sender: str = "edgeiot@localhost"
    ca_file: Path | None = None  # trust this CA instead of the system's
    timeout: float = 30.0


class HandlerContext(Protocol):
    """What the gateway offers handlers."""

    data_dir: Path
    http: aiohttp.ClientSession
    smtp: SmtpConfig | None

    async def set_field(self, node_id: str, source_id: str, field_id: str, value: Value) -> None:
        """Set a writable field of a node of this gateway (raises CommandError)."""

    async def node_action(self, node_id: str, action: str) -> None:
        """Run one of a node's actions (raises CommandError)."""

    async def publish_mqtt(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        """Publish through the gateway's MQTT provider (raises CommandError)."""

    def emit(self, event: str, data: dict[str, Any]) -> None:
        """Send a WebSocket event to every listening API client."""

    def backup(self) -> dict[str, Any]:
        """The gateway's backup document."""

    def render(self, template: str, variables: Mapping[str, Any]) -> str:
        """A template rendered with the run's variables (raises HandlerError)."""

    def field(self, path: str) -> tuple[Any, float | None]:
        """(value, updated) of the field `node.source.field`; (None, None) when unknown."""


def register_handler[H: type[Handler]](cls: H) -> H:
    """Class decorator: make a handler available under its `name`."""
    HANDLERS[cls.name] = cls
    return cls


class Handler(ABC):
    """One kind of action; instances are stateless, one per kind."""

    name: ClassVar[str]
    schema: ClassVar[vol.Schema]

    def validate(self, params: object, where: str) -> dict[str, Any]:
        """The parameters in canonical form; DefinitionError names what is wrong."""
        try:
            checked: dict[str, Any] = self.schema(params)
        except vol.Invalid as err:
            raise DefinitionError(f"{where}: {humanize_error(params, err)}") from None
        return checked

    @abstractmethod
    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Do it; the result (small, JSON) goes into the run history. Raise to fail."""
