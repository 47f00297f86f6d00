"""A MySensors node as an EdgeIoT node: sources, fields and actions from what it presented."""

from __future__ import annotations

import re
from collections.abc import Callable

from ...models import Field, FieldType, Node, Source
from . import protocol as ms
from . import values as mv
from .nodes import NAME_MAX, NodeState, sentence

type SpecOf = Callable[[int | None, int], mv.ValueSpec]

MAX_ACTIONS = 32
NUMERIC = (FieldType.INT, FieldType.FLOAT)
# Node actions → the internal message the controller sends (payload None: the provider's own).
INTERNAL_ACTIONS: dict[str, tuple[int, str | None]] = {
    "reboot": (ms.Internal.I_REBOOT, ""),
    "request_heartbeat": (ms.Internal.I_HEARTBEAT_REQUEST, ""),
    "request_presentation": (ms.Internal.I_PRESENTATION, ""),
    "request_version": (ms.Internal.I_VERSION, ""),
    "discover": (ms.Internal.I_DISCOVER_REQUEST, ""),
    "send_time": (ms.Internal.I_TIME, None),
    "send_config": (ms.Internal.I_CONFIG, None),
}
BASE_ACTIONS = tuple(INTERNAL_ACTIONS)
COVER_ACTION = re.compile(r"^cover_(\d{1,3})_(up|down|stop)$")
COVER_VALUES = {"up": ms.SetReq.V_UP, "down": ms.SetReq.V_DOWN, "stop": ms.SetReq.V_STOP}


def build_node(
    state: NodeState, provider: str, spec_of: SpecOf, heartbeat_interval: float | None
) -> Node:
    """The EdgeIoT node of a MySensors node: a source per child, a field per V_ type."""
    sources: dict[str, Source] = {}
    actions = list(BASE_ACTIONS)
    for child_id in sorted(state.children):
        child = state.children[child_id]
        spec = child.sensor_spec()
        base = child.description or f"{spec.label if spec else 'Child'} {child_id}"
        fields: dict[str, Field] = {}
        for value_type in child.value_types:
            value = spec_of(child.sensor_type, value_type)
            if value.event is not None or value_type == ms.SetReq.V_UNIT_PREFIX:
                continue
            primary = spec is not None and spec.values[:1] == (value_type,)
            name = base if primary else f"{base} {sentence(value.label)}"
            field_id = mv.FIELD_IDS[value_type]
            fields[field_id] = Field(
                id=field_id,
                name=name[:NAME_MAX],
                type=value.type,
                unit=child.unit if child.unit and value.type in NUMERIC else value.unit,
                device_class=value.device_class,
                state_class=value.state_class,
                writable=value.writable,
                min=value.min,
                max=value.max,
                step=value.step,
                options=list(value.options) if value.options else None,
            )
        events = list(dict.fromkeys([*(spec.events if spec else ()), *child.events]))
        source_id = f"child-{child_id}"
        sources[source_id] = Source(source_id, base[:NAME_MAX], fields, events[:32])
        if spec is not None and spec.cover:
            actions.extend(f"cover_{child_id}_{move}" for move in COVER_VALUES)
    number = state.number
    if state.sketch_name:
        name = f"{state.sketch_name} {number}"
    else:
        name = "MySensors gateway" if number == ms.GATEWAY_NODE else f"MySensors node {number}"
    if number == ms.GATEWAY_NODE:
        model = "Gateway"
    else:
        model = "Repeater node" if state.repeater else "Sensor node"
    return Node(
        id=state.node_id,
        provider=provider,
        name=name[:NAME_MAX],
        kind=state.sketch_name,
        manufacturer="MySensors",
        model=model,
        firmware=f"{state.running[0]}.{state.running[1]}"
        if state.running
        else state.sketch_version,
        hardware=f"MySensors {state.library}"[:NAME_MAX] if state.library else None,
        actions=actions[:MAX_ACTIONS],
        heartbeat_interval=heartbeat_interval,
        sources=sources,
    )
