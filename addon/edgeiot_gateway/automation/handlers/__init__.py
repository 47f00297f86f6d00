"""Handlers: what tasks and schedules do. Built-in ones register on import; plugins through the
entry-point group `edgeiot.handler` (an entry point named like the handler, loading its module)."""

from __future__ import annotations

from importlib.metadata import entry_points

from ..errors import DefinitionError
from .base import HANDLERS, Handler, HandlerContext, HandlerError, SmtpConfig, register_handler
from .runner import Call, CallResult, run_calls

ENTRY_POINT_GROUP = "edgeiot.handler"


def handler_for(name: str, where: str = "handler") -> Handler:
    """The handler registered as `name` (built in, or from an installed plugin)."""
    if name not in HANDLERS:
        from . import backup, gateway_calls, mail, webhook  # noqa: F401, PLC0415

        for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
            entry.load()
    try:
        return HANDLERS[name]()
    except KeyError:
        known = ", ".join(sorted(HANDLERS))
        raise DefinitionError(f"{where}: unknown handler {name!r} (known: {known})") from None


__all__ = [
    "ENTRY_POINT_GROUP",
    "HANDLERS",
    "Call",
    "CallResult",
    "Handler",
    "HandlerContext",
    "HandlerError",
    "SmtpConfig",
    "handler_for",
    "register_handler",
    "run_calls",
]
