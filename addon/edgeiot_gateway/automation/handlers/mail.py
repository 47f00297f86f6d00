"""The `email` handler: a plain-text mail through the gateway's SMTP server (`[smtp]`), with
STARTTLS or implicit TLS and login. smtplib runs in a worker thread, never on the loop."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import voluptuous as vol

from .base import Handler, HandlerContext, HandlerError, SmtpConfig, register_handler

_ADDRESS = vol.All(str, vol.Length(max=254), vol.Match(r"^[^@\s<>,;]+@[^@\s<>,;]+$"))
MAX_BODY_CHARS = 64 * 1024


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@register_handler
class Email(Handler):
    name = "email"
    schema = vol.Schema(
        {
            vol.Required("to"): vol.All(vol.Any(_ADDRESS, [_ADDRESS]), _as_list),
            vol.Required("subject"): vol.All(str, vol.Length(min=1, max=998)),
            vol.Required("body"): vol.All(str, vol.Length(max=MAX_BODY_CHARS)),
        }
    )

    async def call(
        self, ctx: HandlerContext, params: dict[str, Any], variables: Mapping[str, Any]
    ) -> dict[str, Any]:
        if ctx.smtp is None:
            raise HandlerError("no mail server: set [smtp] in the gateway configuration")
        message = EmailMessage()
        message["From"] = ctx.smtp.sender
        message["To"] = ", ".join(params["to"])
        # A header must stay one line whatever the template renders.
        message["Subject"] = " ".join(ctx.render(params["subject"], variables).split())
        message.set_content(ctx.render(params["body"], variables))
        await asyncio.to_thread(_send, ctx.smtp, message)
        return {"to": params["to"]}


def _send(config: SmtpConfig, message: EmailMessage) -> None:
    context = ssl.create_default_context(cafile=config.ca_file)
    helo = socket.gethostname()  # smtplib's default (getfqdn) would ask DNS
    try:
        smtp: smtplib.SMTP
        if config.security == "tls":
            smtp = smtplib.SMTP_SSL(
                config.host, config.port, helo, timeout=config.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, helo, config.timeout)
        with smtp:
            if config.security == "starttls":
                smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, config.password or "")
            smtp.send_message(message)
    except smtplib.SMTPAuthenticationError as err:
        raise HandlerError(
            f"mail server {config.host} refused the login: {err.smtp_code}"
        ) from None
    except (smtplib.SMTPException, OSError) as err:
        raise HandlerError(f"mail to {message['To']} via {config.host} failed: {err}") from None
