"""Automations of one gateway: the stored definitions, the engine that runs them, the handler
context they act through, and the commands that manage them (WebSocket/REST).

Definitions are committed to `automation.db` before a command answers; a definition that no
longer compiles when the gateway starts (a handler plugin uninstalled) stays stored, is listed
with its `error`, and does not run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from .. import bus
from ..commands import (
    ALREADY_EXISTS,
    INVALID_DEFINITION,
    INVALID_VALUE,
    NOT_FOUND,
    WRONG_KIND,
    CommandError,
)
from ..supervision import LoopHealth, keep_running
from .engine import Engine, finite
from .errors import DefinitionError
from .handlers import HandlerError, SmtpConfig
from .location import Location
from .model import Compiled, Task, parse_definition
from .references import check_references
from .storage import STATE_DELAY, AutomationStorage
from .templates import Template, TemplateError, compile_template

if TYPE_CHECKING:
    from ..gateway import Gateway

_LOGGER = logging.getLogger(__name__)

MAX_AUTOMATIONS = 20_000
STATE_LOOP = "automation state"
RUN_EVENTS = frozenset({bus.AUTOMATION_RUN, bus.ALARM_UPDATED})


@lru_cache(maxsize=4096)
def _template(source: str) -> Template:
    return compile_template(source, "template")


class GatewayContext:
    """The HandlerContext of a gateway: its commands, nodes, MQTT provider and API events."""

    def __init__(self, gateway: Gateway, smtp: SmtpConfig | None) -> None:
        self.gateway = gateway
        self.data_dir: Path = gateway.config.data_dir
        self.smtp = smtp
        self._http: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def set_field(self, node_id: str, source_id: str, field_id: str, value: Any) -> None:
        await self.gateway.commands.set_field(node_id, source_id, field_id, value)

    async def node_action(self, node_id: str, action: str) -> None:
        await self.gateway.commands.node_action(node_id, action)

    async def publish_mqtt(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        from ..providers.mqtt import MqttProvider  # noqa: PLC0415 (providers import late)

        for provider in self.gateway.providers.values():
            if isinstance(provider, MqttProvider):
                provider.publish(topic, payload, qos, retain)
                return
        raise HandlerError("publish_mqtt: the gateway has no MQTT provider")

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.gateway.events.emit(event, data)

    def backup(self) -> dict[str, Any]:
        return self.gateway.commands.backup()

    def render(self, template: str, variables: Mapping[str, Any]) -> str:
        try:
            return _template(template).render(variables)
        except (TemplateError, DefinitionError) as err:
            raise HandlerError(str(err)) from None

    def field(self, path: str) -> tuple[Any, float | None]:
        node_id, source_id, field_id = path.split(".")
        node = self.gateway.processor.nodes.get(node_id)
        found = node.field(source_id, field_id) if node else None
        return (None, None) if found is None else (found.value, found.updated)


class Automations:
    def __init__(
        self, gateway: Gateway, smtp: SmtpConfig | None = None, location: Location | None = None
    ) -> None:
        self.context = GatewayContext(gateway, smtp)
        self.health: LoopHealth = gateway.health
        self.engine = Engine(
            gateway.events, self.context, location, gateway.health, drops=gateway.drops
        )
        self.storage = AutomationStorage(gateway.config.data_dir / "automation.db")
        self.definitions: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}  # stored definitions that do not compile now
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()  # serialises changes of the definitions
        self._saver: asyncio.Task[None] | None = None
        self._unsubscribe = gateway.events.subscribe(self._on_event)
        self.engine.on_state_change = self._dirty.set

    async def start(self) -> None:
        definitions, states = await self.storage.open()
        for definition in definitions:
            try:
                canonical, compiled = parse_definition(definition)
            except DefinitionError as err:
                _LOGGER.error(  # noqa: TRY400 (the reason is enough, no traceback)
                    "Automation %s is stored but cannot run: %s", definition["id"], err
                )
                self.definitions[definition["id"]] = definition
                self.errors[definition["id"]] = str(err)
                continue
            self.definitions[canonical["id"]] = canonical
            self.engine.set(compiled, canonical["enabled"])
        self.engine.restore(states)
        self.engine.start()
        self._saver = asyncio.create_task(
            keep_running(STATE_LOOP, self._save_step, self.health), name="edgeiot-automation"
        )
        _LOGGER.info("Automations: %d definitions", len(self.definitions))

    async def stop(self) -> None:
        if self._saver is None:
            return  # never started (a failed start), or stopped already
        self._unsubscribe()
        self._saver.cancel()
        await asyncio.gather(self._saver, return_exceptions=True)
        self._saver = None
        snapshot = self.engine.snapshot()  # before stopping cancels the running `for` timers
        await self.engine.stop()
        try:
            await self.storage.save_states(snapshot)
        except Exception:
            _LOGGER.exception("Automations: the run state could not be saved at stop")
        await self.storage.close()
        await self.context.close()

    def _on_event(self, event: bus.Event) -> None:
        if event.name in RUN_EVENTS:
            self._dirty.set()

    async def _save_step(self) -> None:
        await self._dirty.wait()
        await asyncio.sleep(STATE_DELAY)
        self._dirty.clear()
        try:
            await self.storage.save_states(self.engine.snapshot())
        except BaseException:
            self._dirty.set()  # still unsaved: the retry after the backoff writes it
            raise

    # Commands ------------------------------------------------------------------------------------

    def listing(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [self.get(i) for i, d in self.definitions.items() if kind in (None, d["kind"])]

    def get(self, automation_id: str, kind: str | None = None) -> dict[str, Any]:
        definition = self._definition(automation_id, kind)
        return {**definition, "state": self._state(automation_id)}

    async def set(
        self, document: object, create: bool | None = None, check: bool = False
    ) -> dict[str, Any]:
        """Store a definition. `create`: True refuses an id in use, False one not in use or of
        another kind (None: create or replace); `check`: refuse references to nodes, sources
        and fields the gateway does not have (references.py)."""
        try:
            canonical, compiled = parse_definition(document)
            if check:
                check_references(canonical, self.context.gateway.processor.nodes)
        except DefinitionError as err:
            raise CommandError(INVALID_DEFINITION, str(err)) from None
        async with self._lock:  # the id check and the write as one step
            stored = self.definitions.get(canonical["id"])
            if create is True and stored is not None:
                raise CommandError(ALREADY_EXISTS, f"automation {canonical['id']!r} exists")
            if create is False:
                self._definition(canonical["id"], canonical["kind"])
            if stored is None and len(self.definitions) >= MAX_AUTOMATIONS:
                raise CommandError(INVALID_DEFINITION, f"at most {MAX_AUTOMATIONS} automations")
            await self.storage.put(canonical)  # durable before it runs or is acknowledged
            self._apply(canonical, compiled)
        return self.get(canonical["id"])

    async def delete(self, automation_id: str, kind: str | None = None) -> None:
        async with self._lock:
            self._definition(automation_id, kind)
            await self.storage.delete(automation_id)
            del self.definitions[automation_id]
            self.errors.pop(automation_id, None)
            self.engine.remove(automation_id)
        self.engine.events.emit(bus.AUTOMATION_REMOVED, {"id": automation_id})

    async def enable(self, automation_id: str, enabled: bool) -> dict[str, Any]:
        definition = self._definition(automation_id)
        return await self.set({**definition, "enabled": enabled})

    def run(self, automation_id: str, kind: str | None = None) -> None:
        kind = self._definition(automation_id, kind)["kind"]
        if kind == "forward" or automation_id in self.errors:
            raise CommandError(INVALID_VALUE, f"{automation_id} is not a task that can run")
        try:
            self.engine.run_now(automation_id)
        except KeyError:
            raise CommandError(INVALID_VALUE, f"{automation_id} cannot run now") from None

    def history(self, automation_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        self._definition(automation_id)
        state = self.engine.tasks.get(automation_id)
        runs = list(state.history) if state else []
        return runs[-limit:] if limit else runs

    def alarms(self) -> list[dict[str, Any]]:
        return self.engine.alarms()

    def acknowledge(self, automation_id: str) -> dict[str, Any]:
        if (
            automation_id not in self.engine.tasks
            or self.engine.tasks[automation_id].task.severity is None
        ):
            raise CommandError(NOT_FOUND, f"no alarm {automation_id!r}")
        self.engine.acknowledge(automation_id)
        return self.engine.alarm(automation_id)

    # Backup --------------------------------------------------------------------------------------

    def backup(self) -> list[dict[str, Any]]:
        return list(self.definitions.values())

    @staticmethod
    def check_backup(documents: object) -> list[tuple[dict[str, Any], Compiled]]:
        """The backup's definitions compiled; CommandError naming the first bad one."""
        if not isinstance(documents, list):
            raise CommandError(INVALID_DEFINITION, "automations: expected a list")
        parsed, seen = [], set()
        for i, document in enumerate(documents):
            try:
                canonical, compiled = parse_definition(document)
            except DefinitionError as err:
                raise CommandError(INVALID_DEFINITION, f"automations[{i}]: {err}") from None
            if canonical["id"] in seen:
                raise CommandError(INVALID_DEFINITION, f"automations[{i}]: id used twice")
            seen.add(canonical["id"])
            parsed.append((canonical, compiled))
        return parsed

    async def restore(self, parsed: list[tuple[dict[str, Any], Compiled]]) -> None:
        await self.storage.replace_all([canonical for canonical, _ in parsed])
        kept = {canonical["id"] for canonical, _ in parsed}
        for automation_id in list(self.definitions):
            self.engine.remove(automation_id)
            if automation_id not in kept:
                self.engine.events.emit(bus.AUTOMATION_REMOVED, {"id": automation_id})
        self.definitions.clear()
        self.errors.clear()
        for canonical, compiled in parsed:
            self._apply(canonical, compiled)

    # Helpers -------------------------------------------------------------------------------------

    def _apply(self, canonical: dict[str, Any], compiled: Compiled) -> None:
        self.definitions[canonical["id"]] = canonical
        self.errors.pop(canonical["id"], None)
        self.engine.set(compiled, canonical["enabled"])
        self.engine.events.emit(bus.AUTOMATION_UPDATED, {"automation": self.get(canonical["id"])})
        if isinstance(compiled, Task) and compiled.severity is not None:  # a new alarm to show
            self.engine.events.emit(bus.ALARM_UPDATED, {"alarm": self.engine.alarm(compiled.id)})

    def _definition(self, automation_id: str, kind: str | None = None) -> dict[str, Any]:
        """The stored definition; `kind`: it must be one of that kind."""
        definition = self.definitions.get(automation_id)
        if definition is None:
            raise CommandError(NOT_FOUND, f"no automation {automation_id!r}")
        if kind is not None and definition["kind"] != kind:
            raise CommandError(
                WRONG_KIND, f"{automation_id!r} is a {definition['kind']}, not a {kind}"
            )
        return definition

    def _state(self, automation_id: str) -> dict[str, Any]:
        if automation_id in self.errors:
            return {"error": self.errors[automation_id]}
        task = self.engine.tasks.get(automation_id)
        if task is not None:
            last = task.history[-1] if task.history else None
            return {
                "error": None, "runs": task.runs, "failures": task.failures,
                "running": len(task.running), "matched": task.matched,
                "holding_until": task.hold_deadline,
                "disabled_until": finite(task.disabled_until),
                "last_run": last,
                **({} if task.task.schedule is None
                   else {"next_run": self.engine.scheduler.next_run(automation_id)}),
            }  # fmt: skip
        forward = self.engine.forwards.get(automation_id)
        if forward is not None:
            return {"error": None, "sent": forward.sent, "failures": forward.failures}
        return {"error": None}
