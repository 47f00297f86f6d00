"""OTA to MQTT nodes: real Mosquitto, a real gateway, a simulated node that downloads over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeiot_gateway.gateway import Gateway

from ..servers import Mosquitto
from .firmware_files import bundle, esp_image, merged_image
from .harness import ANNOUNCE, ApiClient, NodeSimulator, gateway_config, start_gateway, wait_for
from .test_firmware_library import upload

NODE = "greenhouse-1"
FIRST_PART = 10_000  # bytes the node reads before its download is "interrupted"


@pytest.fixture
async def ota_gateway(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Gateway]:
    gw = await start_gateway(
        gateway_config(tmp_path / "gw", mosquitto, firmware={"install_timeout": 20})
    )
    yield gw
    await gw.stop()


@pytest.fixture
async def client(ota_gateway: Gateway) -> AsyncIterator[ApiClient]:
    api = await ApiClient.of(ota_gateway)
    assert (await api.command("start_listening"))["success"]
    yield api
    await api.close()


@pytest.fixture
async def ota_node(mosquitto: Mosquitto, client: ApiClient) -> AsyncIterator[NodeSimulator]:
    """The announced node (its announce has an ota block: esp32c3, bundles and images)."""
    sim = NodeSimulator(mosquitto, NODE).start()
    sim.announce()
    await client.wait_event(lambda e: e["event"] == "node added")
    yield sim
    sim.stop()


async def _ota_command(node: NodeSimulator) -> dict[str, Any]:
    topic, command = await node.next_command()
    assert topic == node.topic("ota")
    return command


async def _download(url: str) -> bytes:
    """As a node does it: a first request cut off after FIRST_PART bytes, then resumed."""
    async with aiohttp.ClientSession() as session:  # no API token: the URL's token is enough
        async with session.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/octet-stream"
            first = await response.content.readexactly(FIRST_PART)
            response.close()  # the connection drops mid-body
        headers = {"Range": f"bytes={FIRST_PART}-"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 206
            rest = await response.read()
            total = FIRST_PART + len(rest)
            assert response.headers["Content-Range"] == f"bytes {FIRST_PART}-{total - 1}/{total}"
    return first + rest


async def test_install_end_to_end(ota_gateway: Gateway, client: ApiClient,
                                  ota_node: NodeSimulator) -> None:  # fmt: skip
    image = esp_image("esp32c3", 4, 8000)
    entry = (await upload(client, image, 20000, target="esp32c3", version="1.3.0"))["result"]
    started = await client.command("firmware_install", node_id=NODE, firmware_id=entry["id"])
    assert started["success"], started
    job_id = started["result"]["job_id"]
    busy = await client.command("firmware_install", node_id=NODE, firmware_id=entry["id"])
    assert (busy["error_code"], busy["message"]) == ("busy", f"node {NODE} is already being"
                                                     " updated")  # fmt: skip
    in_use = await client.command("firmware_delete", id=entry["id"])
    assert in_use["error_code"] == "in_use"

    command = await _ota_command(ota_node)
    assert command | {"job": "", "url": ""} == {
        "v": 1, "job": "", "url": "", "size": len(image), "sha256": entry["sha256"],
        "version": "1.3.0", "format": "esp-image",
    }  # fmt: skip
    assert command["url"].startswith(f"{client.base}/api/v1/ota/")
    data = await _download(command["url"])
    assert hashlib.sha256(data).hexdigest() == command["sha256"]
    assert data == image
    job = command["job"]
    for state, progress in (("downloading", 40), ("downloading", 100), ("verifying", 0),
                            ("applying", 50), ("rebooting", 0)):  # fmt: skip
        ota_node.publish("ota_status", {"v": 1, "job": job, "state": state, "progress": progress})
    ota_node.announce_payload = ANNOUNCE | {"firmware": "1.3.0"}
    ota_node.announce()  # after the reboot, running the new version: the job is done

    events = await client.job_events(job_id)
    assert [(e["stage"], e["percent"]) for e in events] == [
        ("connecting", 0), ("downloading", 40), ("downloading", 100), ("verifying", 0),
        ("applying", 50), ("rebooting", 0), ("done", 100),
    ]  # fmt: skip
    done = {"event": "firmware progress", "job_id": job_id, "kind": "mqtt", "node_id": NODE,
            "stage": "done", "percent": 100, "error": None}  # fmt: skip
    assert events[-1] == done
    state = (await client.command("get_state"))["result"]
    node = next(n for n in state["nodes"] if n["id"] == NODE)
    assert node["firmware"] == "1.3.0"
    assert node["ota"] == {"target": "esp32c3", "formats": ["edgeiot-bundle", "esp-image"]}
    jobs = (await client.command("firmware_jobs"))["result"]["jobs"]
    assert [(j["job_id"], j["stage"], j["node_id"], j["firmware_id"]) for j in jobs] == [
        (job_id, "done", NODE, entry["id"])
    ]
    async with aiohttp.ClientSession() as session, session.get(command["url"]) as response:
        assert response.status == 404  # the token ended with its job
    assert (await client.command("firmware_delete", id=entry["id"]))["success"]


async def test_install_rolled_back(ota_gateway: Gateway, client: ApiClient,
                                   ota_node: NodeSimulator) -> None:  # fmt: skip
    app = bundle({"app/main.py": b"print('v2')\n"}, version="2.0.0", target="any")
    entry = (await upload(client, app, target="edgeiot", version="2.0.0"))["result"]
    job_id = (await client.command("firmware_install", node_id=NODE, firmware_id=entry["id"]))[
        "result"
    ]["job_id"]
    command = await _ota_command(ota_node)
    assert command["format"] == "edgeiot-bundle"
    # A report for another job, an invalid one and one too large are dropped and counted.
    ota_node.publish("ota_status", {"v": 1, "job": "other", "state": "done"})
    ota_node.publish("ota_status", {"v": 1, "job": command["job"], "state": "exploded"})
    ota_node.publish("ota_status", b" " * 1025)
    drops = ota_gateway.drops.counts
    await wait_for(lambda: drops["unknown_job"] == 1 and drops["invalid_payload"] == 1
                   and drops["oversized"] == 1, what="drops")  # fmt: skip
    ota_node.publish("ota_status", {"v": 1, "job": command["job"], "state": "rolled_back",
                                    "error": "app did not start", "version": "1.2.0"})  # fmt: skip
    events = await client.job_events(job_id)
    reason = f"node {NODE} reported rolled_back: app did not start"
    assert [(e["stage"], e["error"]) for e in events] == [("connecting", None), ("failed", reason)]
    jobs = (await client.command("firmware_jobs"))["result"]["jobs"]
    assert (jobs[-1]["stage"], jobs[-1]["error"]) == ("failed", reason)
    # The node can be updated again; a `done` report ends this job.
    job_id = (await client.command("firmware_install", node_id=NODE, firmware_id=entry["id"]))[
        "result"
    ]["job_id"]
    command = await _ota_command(ota_node)
    ota_node.publish("ota_status", {"v": 1, "job": command["job"], "state": "failed"})
    events = await client.job_events(job_id)
    assert events[-1]["error"] == f"node {NODE} reported failed: no reason given"


async def test_install_times_out(tmp_path: Path, mosquitto: Mosquitto) -> None:
    gw = await start_gateway(
        gateway_config(tmp_path / "gw", mosquitto, firmware={"install_timeout": 1})
    )
    api = await ApiClient.of(gw)
    sim = NodeSimulator(mosquitto, NODE).start()
    try:
        assert (await api.command("start_listening"))["success"]
        sim.announce()
        await api.wait_event(lambda e: e["event"] == "node added")
        entry = (await upload(api, esp_image("esp32c3"), target="esp32c3"))["result"]
        started = await api.command("firmware_install", node_id=NODE, firmware_id=entry["id"])
        command = await _ota_command(sim)  # the node never answers
        events = await api.job_events(started["result"]["job_id"])
        assert events[-1]["error"] == f"node {NODE} did not finish within 1 s"
        sim.publish("ota_status", {"v": 1, "job": command["job"], "state": "done"})
        await wait_for(lambda: gw.drops.counts["unknown_job"] == 1, what="late report dropped")
        assert (await api.command("firmware_delete", id=entry["id"]))["success"]
    finally:
        sim.stop()
        await api.close()
        await gw.stop()


async def test_install_refused(ota_gateway: Gateway, client: ApiClient,
                               ota_node: NodeSimulator, mosquitto: Mosquitto) -> None:  # fmt: skip
    esp32 = (await upload(client, esp_image("esp32"), target="esp32"))["result"]
    merged = (await upload(client, merged_image("esp32c3"), 70000, target="esp32c3",
                           format="esp-merged"))["result"]  # fmt: skip
    cases = [
        (NODE, esp32["id"], "invalid_firmware",
         f"firmware {esp32['id']} is for esp32, node {NODE} is esp32c3"),
        (NODE, merged["id"], "invalid_firmware",
         f"node {NODE} takes edgeiot-bundle or esp-image, not esp-merged"),
        ("nobody", esp32["id"], "not_found", "no node 'nobody'"),
        (NODE, "0123456789abcdef", "not_found", "no firmware '0123456789abcdef'"),
    ]  # fmt: skip
    plain = NodeSimulator(mosquitto, "plain-1", {k: v for k, v in ANNOUNCE.items() if k != "ota"})
    plain.start().announce()
    try:
        await client.wait_event(lambda e: e["event"] == "node added" and e["node"]["id"] != NODE)
        refusal = "node plain-1 takes no OTA updates (its announce has no ota block)"
        cases.append(("plain-1", esp32["id"], "not_supported", refusal))
        for node_id, firmware_id, code, message in cases:
            answer = await client.command("firmware_install", node_id=node_id,
                                          firmware_id=firmware_id)  # fmt: skip
            assert (answer.get("error_code"), answer.get("message")) == (code, message), answer
    finally:
        plain.stop()
    assert (await client.command("firmware_jobs"))["result"] == {"jobs": []}
    assert ota_node.commands.empty()


async def test_download_tokens(ota_gateway: Gateway, client: ApiClient,
                               ota_node: NodeSimulator) -> None:  # fmt: skip
    entry = (await upload(client, esp_image("esp32c3", 2, 4000), target="esp32c3"))["result"]
    ota_gateway.downloads.idle_seconds = 1.0
    started = await client.command("firmware_install", node_id=NODE, firmware_id=entry["id"])
    command = await _ota_command(ota_node)
    url = command["url"]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{client.base}/api/v1/ota/not-a-token") as response:
            assert response.status == 404
            assert (await response.json())["error_code"] == "not_found"
        async with session.get(url, headers={"Range": f"bytes={entry['size']}-"}) as response:
            assert response.status == 416  # nothing left from there
        for _ in range(4):  # each request keeps the token alive for idle_seconds more
            await asyncio.sleep(0.4)
            async with session.get(url, headers={"Range": "bytes=100-"}) as response:
                assert response.status == 206
                assert len(await response.read()) == entry["size"] - 100
        await asyncio.sleep(1.3)
        async with session.get(url) as response:
            assert response.status == 404  # expired: idle for longer than idle_seconds
    ota_node.publish("ota_status", {"v": 1, "job": command["job"], "state": "done"})
    events = await client.job_events(started["result"]["job_id"])
    assert events[-1]["stage"] == "done"
