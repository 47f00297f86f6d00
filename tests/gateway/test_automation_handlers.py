"""Automation handlers against real servers: an aiohttp web server for webhooks, aiosmtpd with
STARTTLS and login for e-mail, the file system for backups, a plugin found by entry point."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeiot_gateway.automation.errors import DefinitionError
from edgeiot_gateway.automation.handlers import (
    HANDLERS,
    Call,
    HandlerError,
    SmtpConfig,
    handler_for,
    run_calls,
)

from .automation_support import Context


@pytest.fixture
async def ctx(tmp_path: Path, socket_enabled: None) -> AsyncIterator[Context]:
    async with aiohttp.ClientSession() as http:
        yield Context(tmp_path, http)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def call(name: str, params: dict[str, Any], timeout: float = 5.0) -> Call:
    handler = handler_for(name)
    return Call(handler, handler.validate(params, "actions[0].params"), timeout)


# Validation --------------------------------------------------------------------------------------


def test_builtin_handlers_are_registered() -> None:
    handler_for("notify")
    assert {"set_field", "node_action", "publish_mqtt", "webhook", "notify", "email", "backup"} <= (
        set(HANDLERS)
    )


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("set_field", {"node": "n", "source": "s", "field": "f"}, "exactly one of value"),
        ("set_field", {"node": "n/x", "source": "s", "field": "f", "value": 1}, "node"),
        ("webhook", {"url": "ftp://example.invalid/x"}, "http:// or https://"),
        ("webhook", {"url": "http://127.0.0.1/", "retries": 99}, "retries"),
        ("publish_mqtt", {"topic": "a/#", "payload": "x"}, "no wildcards (# or +)"),
        ("email", {"to": "not-an-address", "subject": "s", "body": "b"}, "to"),
        ("notify", {"message": "m", "service": "light.turn_on"}, "service"),
        ("backup", {"keep": 0}, "keep"),
    ],
)
def test_bad_parameters_are_named(name: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=r"actions\[0\]\.params") as err:
        handler_for(name).validate(params, "actions[0].params")
    assert message in str(err.value)


def test_unknown_handler_lists_the_known_ones() -> None:
    with pytest.raises(DefinitionError, match=r"actions\[2\]: unknown handler 'sms'.*webhook"):
        handler_for("sms", "actions[2]")


def test_plugin_handler_from_entry_point(tmp_path: Path) -> None:
    package = tmp_path / "edgeiot_sms"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from edgeiot_gateway.automation.handlers import Handler, register_handler\n"
        "import voluptuous as vol\n"
        "@register_handler\n"
        "class Sms(Handler):\n"
        "    name = 'sms'\n"
        "    schema = vol.Schema({'to': str})\n"
        "    async def call(self, ctx, params, variables):\n"
        "        return {'sent': params['to']}\n"
    )
    info = tmp_path / "edgeiot_sms-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgeiot-sms\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[edgeiot.handler]\nsms = edgeiot_sms\n")
    sys.path.insert(0, str(tmp_path))
    try:
        handler = handler_for("sms")
        assert handler.validate({"to": "+491"}, "p") == {"to": "+491"}
    finally:
        sys.path.remove(str(tmp_path))
        HANDLERS.pop("sms", None)
        sys.modules.pop("edgeiot_sms", None)


# Gateway calls -----------------------------------------------------------------------------------


async def test_gateway_calls_with_templates(ctx: Context) -> None:
    variables = {"automation_id": "frost", "value": 1.5, "node": "greenhouse"}
    results = await run_calls(
        [
            call(
                "set_field",
                {
                    "node": "vent",
                    "source": "vent",
                    "field": "position",
                    "value_template": "{{ (value * 10) | int }}",
                },
            ),
            call("set_field", {"node": "vent", "source": "vent", "field": "mode", "value": "off"}),
            call("node_action", {"node": "vent", "action": "identify"}),
            call("publish_mqtt", {"topic": "site/frost", "payload": "{{ node }}: {{ value }}"}),
            call(
                "notify",
                {
                    "message": "Frost at {{ node }}",
                    "title": "{{ value }} °C",
                    "service": "notify.mobile_app_phone",
                },
            ),
            call(
                "set_field", {"node": "vent", "source": "vent", "field": "readonly", "value": True}
            ),
        ],
        ctx,
        variables,
    )
    assert [r.ok for r in results] == [True, True, True, True, True, False]
    assert results[5].error == "not_writable: vent.vent.readonly is not writable"
    assert ctx.calls == [
        ("set_field", "vent", "vent", "position", 15),
        ("set_field", "vent", "vent", "mode", "off"),
        ("node_action", "vent", "identify"),
        ("publish_mqtt", "site/frost", b"greenhouse: 1.5", 1, False),
    ]
    assert ctx.events == [
        (
            "notify",
            {
                "automation_id": "frost",
                "message": "Frost at greenhouse",
                "title": "1.5 °C",
                "service": "notify.mobile_app_phone",
                "data": {},
            },
        )
    ]


# Webhook -----------------------------------------------------------------------------------------


@pytest.fixture
async def web_server(
    socket_enabled: None,
) -> AsyncIterator[tuple[str, list[tuple[str, str, bytes]], dict[str, int]]]:
    """A real HTTP server: /ok, /flaky (503 twice), /missing (404), /slow (sleeps 2 s)."""
    seen: list[tuple[str, str, bytes]] = []
    flaky = {"left": 2}

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.path, await request.read()))
        if request.path == "/flaky" and flaky["left"] > 0:
            flaky["left"] -= 1
            return web.Response(status=503)
        if request.path == "/missing":
            return web.Response(status=404)
        if request.path == "/slow":
            await asyncio.sleep(2)
        return web.Response(text=f"hello {request.headers.get('X-Token')}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen, flaky
    await runner.cleanup()


async def test_webhook_sends_the_rendered_body(ctx: Context, web_server: Any) -> None:
    base, seen, _ = web_server
    [result] = await run_calls(
        [
            call(
                "webhook",
                {
                    "url": f"{base}/ok",
                    "method": "PUT",
                    "headers": {"X-Token": "t1"},
                    "body": '{"t": {{ value }}}',
                },
            )
        ],
        ctx,
        {"value": 3},
    )
    assert result.ok, result.error
    assert result.result == {"status": 200, "attempts": 1, "response": "hello t1"}
    assert seen == [("PUT", "/ok", b'{"t": 3}')]


async def test_webhook_retries_5xx_with_backoff(ctx: Context, web_server: Any) -> None:
    base, seen, _ = web_server
    started = time.monotonic()
    [result] = await run_calls(
        [call("webhook", {"url": f"{base}/flaky", "retries": 2, "backoff": 0.1})], ctx, {}
    )
    assert result.ok, result.error
    assert result.result is not None
    assert result.result["attempts"] == 3
    assert len(seen) == 3
    assert time.monotonic() - started >= 0.3  # 0.1 s, then 0.2 s


async def test_webhook_failures_are_clear(ctx: Context, web_server: Any) -> None:
    base, seen, _ = web_server
    closed = free_port()  # nobody listens there
    missing, refused = await run_calls(
        [
            call("webhook", {"url": f"{base}/missing", "retries": 3}),
            call("webhook", {"url": f"http://127.0.0.1:{closed}/", "retries": 1, "backoff": 0}),
        ],
        ctx,
        {},
    )
    assert not missing.ok
    assert missing.error == f"POST {base}/missing: HTTP 404"
    assert len(seen) == 1  # a 4xx is an answer: not retried
    assert not refused.ok
    assert refused.error is not None
    assert refused.error.startswith(f"POST http://127.0.0.1:{closed}/ failed after 2 attempts: ")
    assert "Cannot connect" in refused.error


async def test_slow_handler_does_not_delay_the_others(ctx: Context, web_server: Any) -> None:
    base, _, _ = web_server
    started = time.monotonic()
    slow, fast = await asyncio.gather(
        run_calls([call("webhook", {"url": f"{base}/slow"}, timeout=0.5)], ctx, {}),
        run_calls([call("notify", {"message": "hi"})], ctx, {}),
    )
    assert fast[0].ok
    assert fast[0].duration < 0.2
    assert not slow[0].ok
    assert slow[0].error == "timed out after 0.5 s"
    assert time.monotonic() - started < 2


async def test_a_handler_bug_is_recorded_not_raised(ctx: Context) -> None:
    def broken(template: str, variables: Mapping[str, Any]) -> str:
        raise ZeroDivisionError

    ctx.render = broken  # type: ignore[method-assign]
    [result] = await run_calls([call("notify", {"message": "x"})], ctx, {})
    assert not result.ok
    assert result.error == "internal error: ZeroDivisionError()"


# E-mail ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.content)
        return "250 OK"


def authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"secret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server(
    certificate: tuple[Path, Path], socket_enabled: None
) -> Iterator[tuple[Mailbox, int]]:

    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


async def test_email_with_starttls_and_login(
    ctx: Context, smtp_server: tuple[Mailbox, int], certificate: tuple[Path, Path]
) -> None:
    mailbox, port = smtp_server
    ctx.smtp = SmtpConfig(
        "127.0.0.1", port, "starttls", "gw", "secret", "gw@example.org", certificate[0], 10
    )
    [result] = await run_calls(
        [
            call(
                "email",
                {
                    "to": ["a@example.org", "b@example.org"],
                    "subject": "Frost {{ value }}\n°C",
                    "body": "Greenhouse at {{ value }} °C",
                },
            )
        ],
        ctx,
        {"value": -2.5},
    )
    assert result.ok, result.error
    [raw] = mailbox.messages
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "Frost -2.5 °C"
    assert mail["To"] == "a@example.org, b@example.org"
    assert mail.get_payload(decode=True).decode().strip() == "Greenhouse at -2.5 °C"  # type: ignore[union-attr]

    ctx.smtp = SmtpConfig("127.0.0.1", port, "starttls", "gw", "wrong", ca_file=certificate[0])
    [refused] = await run_calls(
        [call("email", {"to": "a@example.org", "subject": "s", "body": "b"})], ctx, {}
    )
    assert refused.error == "mail server 127.0.0.1 refused the login: 535"

    ctx.smtp = None
    [unset] = await run_calls(
        [call("email", {"to": "a@example.org", "subject": "s", "body": "b"})], ctx, {}
    )
    assert unset.error == "no mail server: set [smtp] in the gateway configuration"


async def test_email_refuses_an_untrusted_certificate(
    ctx: Context, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    ctx.smtp = SmtpConfig("127.0.0.1", port, "starttls", "gw", "secret")
    [result] = await run_calls(
        [call("email", {"to": "a@example.org", "subject": "s", "body": "b"})], ctx, {}
    )
    assert not result.ok
    assert result.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.error
    assert mailbox.messages == []


# Backup ------------------------------------------------------------------------------------------


async def test_backup_keeps_the_newest(ctx: Context) -> None:
    for _ in range(4):
        [result] = await run_calls([call("backup", {"keep": 2})], ctx, {})
        assert result.ok, result.error
        await asyncio.sleep(0.002)  # distinct millisecond stamps
    files = sorted((ctx.data_dir / "backups").iterdir())
    assert len(files) == 2
    assert result.result == {"file": files[-1].name, "removed": 1}
    assert json.loads(files[-1].read_text()) == ctx.backup()
    assert not list((ctx.data_dir / "backups").glob("*.tmp"))


def test_handler_error_is_an_exception() -> None:
    assert issubclass(HandlerError, Exception)


async def test_email_over_implicit_tls(
    ctx: Context, certificate: tuple[Path, Path], socket_enabled: None
) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*certificate)
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, ssl_context=tls)
    controller.start()
    try:
        ctx.smtp = SmtpConfig("127.0.0.1", port, "tls", ca_file=certificate[0])
        [result] = await run_calls(
            [call("email", {"to": "a@example.org", "subject": "s", "body": "b"})], ctx, {}
        )
    finally:
        controller.stop()
    assert result.ok, result.error
    assert len(mailbox.messages) == 1
