"""OTA of an `edgeiot-bundle` on the unix port: HTTP download with resume, checks, swap, reboot,
confirmation and rollback, against a real broker, a real gateway and an aiohttp file server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiohttp import web
from paho.mqtt.enums import CallbackAPIVersion

from ..gateway import firmware_files
from ..gateway.harness import ApiClient
from ..gateway.test_firmware_library import upload
from ..servers import LOOPBACK, Mosquitto
from .conftest import FIRMWARE, node_config
from .test_node import ALL_DRIVERS, wait_for_node

pytestmark = pytest.mark.timeout(60)
TOPIC = "edgeiot/v1/fw-1/"


def bundle(files: dict[str, bytes], version: str = "0.2.0", target: str = "any") -> bytes:
    """An edgeiot-bundle (contract B) of `files`, for any node unless `target` says otherwise."""
    return firmware_files.bundle(files, version, target)


def application(version: str, **replace: bytes) -> dict[str, bytes]:
    """This firmware's edgeiot package as a bundle's files, with its VERSION set to version."""
    files = {
        f"edgeiot/{p.name}": p.read_bytes() for p in sorted((FIRMWARE / "edgeiot").glob("*.py"))
    }
    files["edgeiot/__init__.py"] = f'VERSION = "{version}"\n'.encode()
    files.update({f"edgeiot/{name}": data for name, data in replace.items()})
    return files


class FileServer:
    """Serves one bundle at /api/v1/ota/<token> with Range support; can cut a transfer short."""

    def __init__(self) -> None:
        self.data = b""
        self.cut_after: int | None = None
        self.ranges: list[str | None] = []
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.ranges.append(request.headers.get("Range"))
        start = int(request.headers["Range"][6:-1]) if "Range" in request.headers else 0
        body = self.data[start:]
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(body)
        await response.prepare(request)
        if self.cut_after is not None:
            await response.write(body[: self.cut_after])
            self.cut_after = None
            assert request.transport is not None
            request.transport.close()  # the transfer breaks off
            return response
        await response.write(body)
        return response


@pytest.fixture
async def files() -> AsyncIterator[FileServer]:
    server = FileServer()
    app = web.Application()
    app.router.add_get("/api/v1/ota/{token}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await runner.cleanup()


class Controller:
    """Publishes `ota` commands and collects `ota_status` messages, as the gateway will."""

    def __init__(self, broker: Mosquitto) -> None:
        self.statuses: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ota-test")
        self.client.on_message = lambda _c, _u, m: self.statuses.put(json.loads(m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(TOPIC + "ota_status", 1)
        self.client.loop_start()

    def send(self, server: FileServer, data: bytes, version: str = "0.2.0", **extra: Any) -> None:
        command = {
            "v": 1,
            "job": "job-1",
            "url": f"http://{LOOPBACK}:{server.port}/api/v1/ota/tok",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "version": version,
            "format": "edgeiot-bundle",
            **extra,
        }
        self.client.publish(TOPIC + "ota", json.dumps(command), qos=1)

    async def until(
        self, final: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                status = await asyncio.to_thread(self.statuses.get, True, 0.2)
            except queue.Empty:
                continue
            seen.append(status)
            if final(status):
                return seen
        raise AssertionError(f"no final status; saw {seen}")

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def controller(mosquitto: Mosquitto) -> Iterator[Controller]:
    ctl = Controller(mosquitto)
    yield ctl
    ctl.stop()


def ended(status: dict[str, Any]) -> bool:
    return status["state"] in ("done", "failed", "rolled_back")


async def online_node(mosquitto: Mosquitto, api: ApiClient, run_node: Any, **extra: Any) -> Any:
    node = run_node(node_config(mosquitto, ALL_DRIVERS[0], health_window=5, **extra))
    await wait_for_node(api, lambda n: n["online"] and n["firmware"] == "0.1.0")
    return node


async def test_update_resumes_swaps_and_reports_the_new_version(
    mosquitto: Mosquitto,
    api: ApiClient,
    run_node: Any,
    files: FileServer,
    controller: Controller,
) -> None:
    node = await online_node(mosquitto, api, run_node)
    files.data = bundle(application("0.2.0"))
    files.cut_after = len(files.data) // 2
    controller.send(files, files.data)
    seen = await controller.until(ended)
    states = [s["state"] for s in seen]
    assert states[-1] == "done", seen
    assert seen[-1]["version"] == "0.2.0"
    assert {"downloading", "verifying", "applying", "rebooting"} <= set(states)
    assert all(s["job"] == "job-1" for s in seen)
    assert files.ranges[0] is None
    assert files.ranges[1] == f"bytes={len(files.data) // 2}-"  # resumed, not restarted
    await node.wait_log(r"^SIM boot$")
    await wait_for_node(api, lambda n: n["online"] and n["firmware"] == "0.2.0")
    state = json.loads((node.workdir / "ota.json").read_text())
    assert (state["active"], state["trial"], state["previous"]) == ("slots/a", False, None)


async def test_corrupt_bundles_fail_and_the_node_keeps_running(
    mosquitto: Mosquitto,
    api: ApiClient,
    run_node: Any,
    files: FileServer,
    controller: Controller,
) -> None:
    node = await online_node(mosquitto, api, run_node)
    files.data = bundle(application("0.2.0"))
    controller.send(files, files.data, sha256="0" * 64)  # not what the server sends
    seen = await controller.until(ended)
    assert (seen[-1]["state"], seen[-1]["error"]) == ("failed", "sha256 mismatch")
    evil = bundle({"../boot.py": b"print('owned')\n"})
    files.data = evil
    controller.send(files, evil)
    seen = await controller.until(ended)
    assert (seen[-1]["state"], seen[-1]["error"]) == ("failed", "manifest: bad path '../boot.py'")
    controller.send(files, evil, format="esp-image")
    seen = await controller.until(ended)
    assert seen[-1]["error"] == "format 'esp-image' is not supported by this node"
    assert "SIM boot" not in node.text()
    assert not (node.workdir / "ota.json").exists()
    assert (await wait_for_node(api, lambda n: n["online"]))["firmware"] == "0.1.0"


async def test_a_crashing_bundle_rolls_back(
    mosquitto: Mosquitto,
    api: ApiClient,
    run_node: Any,
    files: FileServer,
    controller: Controller,
) -> None:
    node = await online_node(mosquitto, api, run_node)
    files.data = bundle(application("0.3.0", **{"app.py": b"raise RuntimeError('broken')\n"}))
    controller.send(files, files.data, version="0.3.0")
    seen = await controller.until(ended)
    assert seen[-1]["state"] == "rolled_back", seen
    assert (seen[-1]["version"], seen[-1]["error"]) == (
        "0.1.0",
        "version 0.3.0 did not come online",
    )
    assert "RuntimeError: broken" in node.text()
    await wait_for_node(api, lambda n: n["online"] and n["firmware"] == "0.1.0")
    state = json.loads((node.workdir / "ota.json").read_text())
    assert (state["active"], state["trial"]) == (None, False)


async def test_a_bundle_that_never_gets_online_rolls_back_after_the_health_window(
    mosquitto: Mosquitto,
    api: ApiClient,
    run_node: Any,
    files: FileServer,
    controller: Controller,
) -> None:
    node = await online_node(mosquitto, api, run_node)
    mqtt_py = (
        (FIRMWARE / "edgeiot" / "mqtt.py")
        .read_bytes()
        .replace(
            b"        present = self._client.connect(clean_session=False)",
            b'        raise OSError("this build cannot reach brokers")',
        )
    )
    assert b"cannot reach brokers" in mqtt_py
    files.data = bundle(application("0.4.0", **{"mqtt.py": mqtt_py}))
    controller.send(files, files.data, version="0.4.0")
    seen = await controller.until(ended)
    assert (seen[-1]["state"], seen[-1]["version"]) == ("rolled_back", "0.1.0")
    assert "bundle 0.4.0 not online within 5 s: reset" in node.text()
    assert "this build cannot reach brokers" in node.text()
    await wait_for_node(api, lambda n: n["online"] and n["firmware"] == "0.1.0")


async def test_announce_ota_offers_bundles(mosquitto: Mosquitto, run_node: Any) -> None:
    announces: queue.Queue[dict[str, Any]] = queue.Queue()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="announce-test")
    client.on_message = lambda _c, _u, m: announces.put(json.loads(m.payload))
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe(TOPIC + "announce", 1)
    client.loop_start()
    try:
        run_node(node_config(mosquitto, announce_ota=True))
        announce = await asyncio.to_thread(announces.get, True, 10)
    finally:
        client.loop_stop()
        client.disconnect()
    assert announce["ota"] == {"target": "esp32", "formats": ["edgeiot-bundle"]}


async def test_firmware_install_from_the_gateway(
    mosquitto: Mosquitto, api: ApiClient, run_node: Any
) -> None:
    """The whole path: a bundle uploaded to the gateway's library, `firmware_install` to the
    MicroPython node (which announced its `ota` offer), the node downloading from the gateway's
    token URL, and the job done once the node runs the new version."""
    await online_node(mosquitto, api, run_node)
    data = bundle(application("0.3.0"), version="0.3.0", target="esp32")
    entry = await upload(api, data, chunk=64 * 1024, version="0.3.0", target="edgeiot",
                         format="edgeiot-bundle")  # fmt: skip
    assert entry["success"], entry
    await api.command("start_listening")
    started = await api.command("firmware_install", node_id="fw-1",
                                firmware_id=entry["result"]["id"])  # fmt: skip
    assert started["success"], started
    events = await api.job_events(started["result"]["job_id"])
    assert events[-1]["stage"] == "done", events
    assert {"downloading", "rebooting"} <= {e["stage"] for e in events}
    await wait_for_node(api, lambda n: n["online"] and n["firmware"] == "0.3.0")
