"""The firmware library against a real gateway: uploads over WebSocket and REST, limits, delete."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edgeiot_gateway.gateway import Gateway

from .firmware_files import bundle, esp_image, intel_hex
from .harness import ApiClient, gateway_config, start_gateway

MAX_BYTES = 64 * 1024


@pytest.fixture
async def fw_gateway(tmp_path: Path, socket_enabled: None) -> AsyncIterator[Gateway]:
    """A gateway without providers whose library takes at most MAX_BYTES."""
    gw = await start_gateway(
        gateway_config(tmp_path / "gw", None, firmware={"max_bytes": MAX_BYTES})
    )
    yield gw
    await gw.stop()


@pytest.fixture
async def client(fw_gateway: Gateway) -> AsyncIterator[ApiClient]:
    api = await ApiClient.of(fw_gateway)
    yield api
    await api.close()


async def upload(api: ApiClient, data: bytes, chunk: int = 1000, **meta: Any) -> dict[str, Any]:
    """Upload `data` in chunks; returns the firmware_upload_end result message."""
    args = {"name": "app", "version": "1.0", "target": "esp32", "size": len(data)} | meta
    begin = await api.command("firmware_upload_begin", **args)
    assert begin["success"], begin
    upload_id = begin["result"]["upload_id"]
    for offset in range(0, len(data), chunk):
        part = base64.b64encode(data[offset : offset + chunk]).decode()
        result = await api.command(
            "firmware_upload_chunk", upload_id=upload_id, offset=offset, data=part
        )
        assert result["success"], result
        assert result["result"] == {"received": min(offset + chunk, len(data))}
    return await api.command("firmware_upload_end", upload_id=upload_id)


async def test_upload_list_get_delete(fw_gateway: Gateway, client: ApiClient) -> None:
    image = esp_image("esp32", 3, 4096)
    digest = hashlib.sha256(image).hexdigest()
    result = await upload(client, image, 5000, sha256=digest, release_notes="fixes")
    entry = result["result"]
    assert entry | {"uploaded_at": 0} == {
        "id": digest[:16], "name": "app", "version": "1.0", "target": "esp32",
        "format": "esp-image", "sha256": digest, "size": len(image), "offset": 0x10000,
        "mysensors": None, "release_notes": "fixes", "uploaded_at": 0,
    }  # fmt: skip
    stored = fw_gateway.config.data_dir / "firmware" / f"{digest}.bin"
    assert stored.read_bytes() == image
    assert list((fw_gateway.config.data_dir / "firmware" / "uploads").iterdir()) == []
    assert (await client.command("firmware_list"))["result"] == {"firmware": [entry]}
    assert (await client.command("firmware_get", id=entry["id"]))["result"] == entry
    assert (await client.command("backup"))["result"]["backup"]["firmware"] == [entry]
    again = await upload(client, image, name="other name")
    assert again["result"] == entry  # the same bytes: the existing entry
    deleted = await client.command("firmware_delete", id=entry["id"])
    assert deleted["success"]
    assert not stored.exists()
    missing = await client.command("firmware_get", id=entry["id"])
    assert missing["error_code"] == "not_found"


async def test_entries_survive_a_restart(tmp_path: Path, socket_enabled: None) -> None:
    config = gateway_config(tmp_path / "gw", None)
    gw = await start_gateway(config)
    try:
        api = await ApiClient.of(gw)
        hexfile = intel_hex(bytes(range(200)))
        entry = (await upload(api, hexfile, target="mysensors",
                              mysensors={"type": 3, "version": 7}))["result"]  # fmt: skip
        assert (entry["format"], entry["mysensors"], entry["offset"]) == (
            "intel-hex", {"type": 3, "version": 7}, None)  # fmt: skip
        await api.close()
    finally:
        await gw.stop()
    gw = await start_gateway(config)
    try:
        assert gw.firmware.list() == [entry]
    finally:
        await gw.stop()
    # A missing file drops its entry at the next start.
    (tmp_path / "gw" / "firmware" / f"{entry['sha256']}.bin").unlink()
    gw = await start_gateway(config)
    try:
        assert gw.firmware.list() == []
    finally:
        await gw.stop()


async def test_path_like_names_never_become_paths(fw_gateway: Gateway, client: ApiClient) -> None:
    data = bundle({"app/main.mpy": b"print(1)"})
    name = "../../etc/passwd"
    entry = (await upload(client, data, name=name, target="edgeiot"))["result"]
    assert entry["name"] == name
    files = sorted(p.name for p in (fw_gateway.config.data_dir / "firmware").iterdir())
    assert files == [f"{entry['sha256']}.bin", "uploads"]
    assert not (fw_gateway.config.data_dir.parent.parent / "etc").exists()


@pytest.mark.parametrize(
    ("data", "meta", "code", "message"),
    [
        (b"\x7fELF" + b"\0" * 60, {}, "invalid_firmware", "unknown firmware format"),
        (esp_image("esp32c3"), {}, "invalid_firmware", "image is for esp32c3, not esp32"),
        (esp_image(), {"sha256": "0" * 64}, "invalid_firmware", "sha256 is"),
        (bundle({"../x": b"1"}), {"target": "edgeiot"}, "invalid_firmware", "safe relative"),
        (intel_hex(b"12"), {"target": "mysensors"}, "invalid_value", "mysensors {type"),
        (esp_image(), {"mysensors": {"type": 1, "version": 1}}, "invalid_value", "only for"),
        (esp_image(), {"target": "../x"}, "invalid_value", "target: one of"),
        (esp_image(), {"name": ""}, "invalid_value", "name: 1 to"),
        (esp_image(), {"version": "v" * 65}, "invalid_value", "version: 1 to"),
        (esp_image(), {"sha256": "xyz"}, "invalid_value", "64 lowercase"),
        (esp_image(), {"size": MAX_BYTES + 1}, "firmware_too_large", "at most 65536"),
    ],
)
async def test_bad_uploads(
    client: ApiClient, data: bytes, meta: dict[str, Any], code: str, message: str
) -> None:
    args = {"name": "app", "version": "1.0", "target": "esp32", "size": len(data)} | meta
    begin = await client.command("firmware_upload_begin", **args)
    if begin["success"]:
        upload_id = begin["result"]["upload_id"]
        chunk = await client.command("firmware_upload_chunk", upload_id=upload_id, offset=0,
                                     data=base64.b64encode(data).decode())  # fmt: skip
        assert chunk["success"], chunk
        result = await client.command("firmware_upload_end", upload_id=upload_id)
    else:
        result = begin
    assert (result["success"], result.get("error_code")) == (False, code), result
    assert message in result["message"]
    assert (await client.command("firmware_list"))["result"] == {"firmware": []}


async def test_upload_protocol_errors(fw_gateway: Gateway, client: ApiClient) -> None:
    image = esp_image()
    begin = await client.command("firmware_upload_begin", name="a", version="1", target="esp32",
                                 size=len(image))  # fmt: skip
    upload_id = begin["result"]["upload_id"]

    async def chunk(offset: int, data: str) -> dict[str, Any]:
        return await client.command(
            "firmware_upload_chunk", upload_id=upload_id, offset=offset, data=data
        )

    wrong = await chunk(10, base64.b64encode(image[10:]).decode())
    assert wrong["error_code"] == "invalid_value"
    assert "expected offset 0" in wrong["message"]
    assert (await chunk(0, "not base64!"))["error_code"] == "invalid_value"
    extra = await chunk(0, base64.b64encode(image + b"x").decode())
    assert extra["error_code"] == "firmware_too_large"
    big = await chunk(0, "A" * (350 * 1024))
    assert big["error_code"] == "invalid_message"
    short = await client.command("firmware_upload_end", upload_id=upload_id)
    assert short["error_code"] == "invalid_value"
    assert f"received 0 of {len(image)}" in short["message"]
    unknown = await client.command("firmware_upload_end", upload_id=upload_id)
    assert unknown["error_code"] == "not_found"
    empty = await upload(client, b"")
    assert (empty["error_code"], empty["message"]) == ("invalid_firmware", "the file is empty")
    ids = [
        (await client.command("firmware_upload_begin", name="a", version="1", target="esp32",
                              size=1))["result"]["upload_id"]
        for _ in range(4)
    ]  # fmt: skip
    fifth = await client.command("firmware_upload_begin", name="a", version="1", target="esp32",
                                 size=1)  # fmt: skip
    assert fifth["error_code"] == "invalid_value"
    assert len(ids) == 4
    parts = fw_gateway.config.data_dir / "firmware" / "uploads"
    assert len(list(parts.iterdir())) == 4
    await fw_gateway.firmware.close()
    assert list(parts.iterdir()) == []


async def test_delete_refused_while_in_use(fw_gateway: Gateway, client: ApiClient) -> None:
    entry = (await upload(client, esp_image()))["result"]
    with fw_gateway.firmware.use(entry["id"]):
        refused = await client.command("firmware_delete", id=entry["id"])
        assert refused["error_code"] == "in_use"
        status, body = await client.rest("DELETE", f"/api/v1/firmware/{entry['id']}")
        assert (status, body["error_code"]) == (409, "in_use")
    status, _ = await client.rest("DELETE", f"/api/v1/firmware/{entry['id']}")
    assert status == 200
    assert fw_gateway.firmware.list() == []


async def test_rest_upload_streams(fw_gateway: Gateway, client: ApiClient) -> None:
    image = esp_image("esp8266", 4, 8000)

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(image), 4096):
            yield image[start : start + 4096]

    url = f"{client.base}/api/v1/firmware?name=a%2Fb&version=2&target=esp8266&offset=0x1000"
    async with client.session.post(url, data=body()) as response:
        assert response.status == 200, await response.text()
        entry = await response.json()
    assert (entry["name"], entry["offset"], entry["size"]) == ("a/b", 0x1000, len(image))
    status, listed = await client.rest("GET", "/api/v1/firmware")
    assert (status, listed) == (200, {"firmware": [entry]})
    status, got = await client.rest("GET", f"/api/v1/firmware/{entry['id']}")
    assert (status, got) == (200, entry)
    too_big = b"\xe9" * (MAX_BYTES + 1)
    async with client.session.post(
        f"{client.base}/api/v1/firmware?name=a&version=1&target=esp32", data=too_big
    ) as response:
        assert response.status == 413
        assert (await response.json())["error_code"] == "firmware_too_large"
    base = "name=a&version=1&target="
    for query, code in [(f"{base}esp32&evil=1", "invalid_message"),
                        (f"{base}esp32&offset=x", "invalid_value"),
                        (f"{base}mysensors&mysensors_type=1", "invalid_value")]:  # fmt: skip
        async with client.session.post(f"{client.base}/api/v1/firmware?{query}",
                                       data=b":00000001FF\n") as response:  # fmt: skip
            assert (response.status, (await response.json())["error_code"]) == (400, code)
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.post(f"{client.base}/api/v1/firmware?name=a", data=b"x") as response,
    ):
        assert response.status == 401
    assert len(fw_gateway.firmware.list()) == 1


async def test_restore_keeps_the_library(fw_gateway: Gateway, client: ApiClient) -> None:
    entry = (await upload(client, esp_image()))["result"]
    document = (await client.command("backup"))["result"]["backup"]
    restored = await client.command("restore", backup=document | {"firmware": []})
    assert restored["success"], restored
    assert fw_gateway.firmware.list() == [entry]
