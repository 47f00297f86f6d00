"""Handlers that act through this gateway: set a field, run a node action, publish on MQTT,
notify Home Assistant (an event the integration fires as `edgeiot_event`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from ... import bus
from ...models import STRING_MAX
from ...schemas import Identifier
from .base import Handler, HandlerContext, register_handler

_TEXT = vol.All(str, vol.Length(max=STRING_MAX))
_TEMPLATE = vol.All(str, vol.Length(min=1, max=4096))
MAX_PAYLOAD_BYTES = 256 * 1024


def exactly_one(*keys: str) -> Any:
    """A validator: the mapping holds exactly one of `keys`."""

    def check(params: dict[str, Any]) -> dict[str, Any]:
        if sum(key in params for key in keys) != 1:
            raise vol.Invalid(f"give exactly one of {', '.join(keys)}")
        return params

    return check


def _topic(value: str) -> str:
    if "#" in value or "+" in value:
        raise vol.Invalid("an MQTT topic to publish to has no wildcards (# or +)")
    return value


def rendered_value(ctx: HandlerContext, template: str, variables: Mapping[str, Any]) -> Any:
    """A template's output as a JSON value when it is one (`21.5`, `true`), else the text."""
    text = ctx.render(template, variables)
    try:
        return json.loads(text.strip(), parse_constant=_not_json)  # no NaN or Infinity
    except ValueError:
        return text


def _not_json(name: str) -> Any:
    raise ValueError(name)


@register_handler
class SetField(Handler):
    """Set a writable field: `value`, or `value_template` rendered with the run's variables."""

    name = "set_field"
    templates = ("value_template",)
    schema = vol.Schema(
        vol.All(
            {
                vol.Required("node"): Identifier,
                vol.Required("source"): Identifier,
                vol.Required("field"): Identifier,
                vol.Optional("value"): vol.Any(bool, int, float, _TEXT),
                vol.Optional("value_template"): _TEMPLATE,
            },
            exactly_one("value", "value_template"),
        )
    )

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        if "value_template" in params:
            value = rendered_value(ctx, params["value_template"], variables)
        else:
            value = params["value"]
        await ctx.set_field(params["node"], params["source"], params["field"], value)
        return {"value": value}


@register_handler
class NodeAction(Handler):
    """Run one of a node's declared actions (reboot, identify …)."""

    name = "node_action"
    schema = vol.Schema({vol.Required("node"): Identifier, vol.Required("action"): Identifier})

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> None:
        await ctx.node_action(params["node"], params["action"])


@register_handler
class PublishMqtt(Handler):
    """Publish a message (the payload is a template) through the gateway's MQTT provider."""

    name = "publish_mqtt"
    templates = ("payload",)
    schema = vol.Schema(
        {
            vol.Required("topic"): vol.All(str, vol.Length(min=1, max=1024), _topic),
            vol.Required("payload"): vol.All(str, vol.Length(max=MAX_PAYLOAD_BYTES)),
            vol.Optional("qos", default=1): vol.In([0, 1]),
            vol.Optional("retain", default=False): bool,
        }
    )

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        payload = ctx.render(params["payload"], variables).encode()
        await ctx.publish_mqtt(params["topic"], payload, params["qos"], params["retain"])
        return {"bytes": len(payload)}


@register_handler
class Notify(Handler):
    """A `notify` event to Home Assistant: the integration fires it on HA's bus and, when
    `service` names a notify action (`notify.mobile_app_phone`), calls it."""

    name = "notify"
    templates = ("message", "title")
    schema = vol.Schema(
        {
            vol.Required("message"): _TEMPLATE,
            vol.Optional("title"): _TEMPLATE,
            vol.Optional("service"): vol.All(str, vol.Match(r"^notify\.[a-z0-9_]{1,64}$")),
            vol.Optional("data"): vol.Schema({str: object}),
        }
    )

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "automation_id": variables.get("automation_id"),
            "message": ctx.render(params["message"], variables),
            "title": ctx.render(params["title"], variables) if "title" in params else None,
            "service": params.get("service"),
            "data": params.get("data", {}),
        }
        ctx.emit(bus.NOTIFY, event)
        return {"message": event["message"]}
