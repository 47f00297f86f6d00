"""The nodes, sources and fields a canonical definition names, checked against the gateway's.

Run when a definition is created or changed through a command (not at start or restore, when
nodes may not have announced themselves yet): a misspelt id is refused with its place,
e.g. "conditions[1].value.field: unknown field greenhouse.vent.positon". Ids with `*` or `?`
(trigger patterns) and calls to another gateway (`gateway` param) are not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ..models import Node
from .errors import DefinitionError

# The ids a trigger names (not the event id: not every provider announces its events).
TRIGGER_IDS = {
    "field": ("node", "source", "field"),
    "status": ("node",),
    "event": ("node", "source"),
}

type Reference = tuple[str, str, bool]  # (where, node.source.field or node or node.source, write)


def check_references(definition: Mapping[str, Any], nodes: Mapping[str, Node]) -> None:
    """DefinitionError naming the first reference to a node, source or field the gateway does
    not have, or a write to a read-only field."""
    for where, path, write in references(definition):
        _check(where, path, write, nodes)


def references(definition: Mapping[str, Any]) -> Iterator[Reference]:
    """Every reference of a canonical definition, in the order of the definition."""
    if definition["kind"] == "forward":
        yield "from", definition["from"], False
        for i, target in enumerate(definition["to"]):
            yield f"to[{i}]", target, True
        return
    trigger = definition.get("trigger") or {}
    keys = TRIGGER_IDS.get(str(trigger.get("type")), ())
    ids = [trigger[k] for k in keys if isinstance(trigger.get(k), str)]
    if ids and len(ids) == len(keys) and not any(c in p for p in ids for c in "*?"):
        yield "trigger", ".".join(ids), False
    if definition.get("conditions") is not None:
        yield from _conditions(definition["conditions"], "conditions")
    for side in ("on", "off"):
        if definition.get("hysteresis"):
            yield from _conditions(definition["hysteresis"][side], f"hysteresis.{side}")
    for i, call in enumerate(definition.get("actions", ())):
        params = call["params"]
        if "gateway" in params:
            continue  # another gateway's node (network mode)
        if call["handler"] == "set_field":
            path = f"{params['node']}.{params['source']}.{params['field']}"
            yield f"actions[{i}].params", path, True
        elif call["handler"] == "node_action":
            yield f"actions[{i}].params.node", params["node"], False


def _conditions(spec: object, where: str) -> Iterator[Reference]:
    if isinstance(spec, list):
        for i, item in enumerate(spec):
            yield from _conditions(item, f"{where}[{i}]")
    elif isinstance(spec, Mapping):
        for key in ("all", "any"):
            if isinstance(spec.get(key), list):
                yield from _conditions(spec[key], f"{where}.{key}")
        if "not" in spec:
            yield from _conditions(spec["not"], f"{where}.not")
        value = spec.get("value")
        if isinstance(value, Mapping) and isinstance(value.get("field"), str):
            yield f"{where}.value.field", value["field"], False
        if isinstance(spec.get("age"), str):
            yield f"{where}.age", spec["age"], False


def _check(where: str, path: str, write: bool, nodes: Mapping[str, Node]) -> None:
    node_id, *rest = path.split(".")
    node = nodes.get(node_id)
    if node is None:
        raise DefinitionError(f"{where}: unknown node {node_id}")
    if not rest:
        return
    source = node.sources.get(rest[0])
    if source is None:
        raise DefinitionError(f"{where}: unknown source {node_id}.{rest[0]}")
    if len(rest) < 2:
        return
    field = source.fields.get(rest[1])
    if field is None:
        raise DefinitionError(f"{where}: unknown field {path}")
    if write and not field.writable:
        raise DefinitionError(f"{where}: field {path} is read-only")
