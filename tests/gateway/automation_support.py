"""A HandlerContext for automation tests: real HTTP session, files and Jinja2 rendering; the
gateway calls are recorded (and set_field can echo the value onto a bus like a node would)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from jinja2.sandbox import SandboxedEnvironment

from edgeiot_gateway import bus
from edgeiot_gateway.automation.handlers import SmtpConfig
from edgeiot_gateway.commands import NOT_WRITABLE, CommandError

_JINJA = SandboxedEnvironment()


@dataclass
class Context:
    """The HandlerContext of these tests: real HTTP and files, gateway calls recorded."""

    data_dir: Path
    http: aiohttp.ClientSession
    smtp: SmtpConfig | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fields: dict[str, tuple[Any, float | None]] = field(default_factory=dict)
    echo: bus.EventBus | None = None  # set_field reports the value back, like a node
    delay: float = 0.0  # publish_mqtt takes this long

    async def set_field(self, node_id: str, source_id: str, field_id: str, value: Any) -> None:
        if field_id == "readonly":
            raise CommandError(NOT_WRITABLE, f"{node_id}.{source_id}.{field_id} is not writable")
        self.calls.append(("set_field", node_id, source_id, field_id, value))
        if self.echo is not None:
            self.echo.emit(
                bus.FIELD_VALUE,
                {"node_id": node_id, "source_id": source_id, "field_id": field_id,
                 "value": value, "updated": 0.0},
            )  # fmt: skip

    async def node_action(self, node_id: str, action: str) -> None:
        self.calls.append(("node_action", node_id, action))

    async def publish_mqtt(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        await asyncio.sleep(self.delay)
        self.calls.append(("publish_mqtt", topic, payload, qos, retain))

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def backup(self) -> dict[str, Any]:
        return {"format": "edgeiot-backup", "version": 1, "nodes": [], "values": []}

    def render(self, template: str, variables: Mapping[str, Any]) -> str:
        return _JINJA.from_string(template).render(variables)

    def field(self, path: str) -> tuple[Any, float | None]:
        return self.fields.get(path, (None, None))
