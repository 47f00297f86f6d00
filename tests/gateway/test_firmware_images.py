"""The firmware format checks: every accepted format, and a clear error for each bad one."""

from __future__ import annotations

import json
import struct

import pytest

from edgeiot_gateway.updates.images import ImageError, check_image, detect_format, hex_to_binary

from .firmware_files import bundle, esp_image, intel_hex, merged_image


@pytest.mark.parametrize("target", ["esp32", "esp32s3", "esp32c3", "esp8266"])
def test_esp_image_per_target(target: str) -> None:
    info = check_image(esp_image(target), target)
    assert (info.format, info.chip) == ("esp-image", target)
    assert info.offset == (0 if target == "esp8266" else 0x10000)
    assert check_image(esp_image(target), target, "esp-image", 0x20000).offset == 0x20000


def test_wrong_chip_is_refused() -> None:
    with pytest.raises(ImageError, match="image is for esp32c3, not esp32s3"):
        check_image(esp_image("esp32c3"), "esp32s3")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xe9\x00" + b"\0" * 30, "0 segments"),
        (b"\xe9\x11" + b"\0" * 30, "17 segments"),
        (esp_image()[:40], "segment 0"),
        (b"\xe9\x01" + b"\0" * 10, "truncated extended header"),
        (b"\xe9\x01" + b"\0" * 22 + struct.pack("<II", 0, 7) + b"\0" * 8, "bad length 7"),
    ],
)
def test_bad_esp_headers(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        check_image(data, "esp32", "esp-image")


def test_bad_offset() -> None:
    with pytest.raises(ImageError, match="4 KiB aligned"):
        check_image(esp_image(), "esp32", offset=0x10001)
    with pytest.raises(ImageError, match="fit 16 MiB"):
        check_image(esp_image(), "esp32", offset=0x1000000)


@pytest.mark.parametrize("target", ["esp32", "esp32c3", "esp8266"])
def test_merged_image(target: str) -> None:
    data = merged_image(target)
    assert detect_format(data, target) == ("esp-image" if target != "esp32" else "esp-merged")
    info = check_image(data, target, "esp-merged")
    assert (info.format, info.offset, info.chip) == ("esp-merged", 0, target)


def test_merged_image_without_bootloader() -> None:
    data = b"\xff" * 0x2000
    with pytest.raises(ImageError, match="bootloader at 0x1000: not an ESP image"):
        check_image(data, "esp32", "esp-merged")
    with pytest.raises(ImageError, match="does not cover"):
        check_image(data, "esp32", "esp-merged", 0x2000)


def test_intel_hex() -> None:
    payload = bytes(range(100))
    assert check_image(intel_hex(payload), "mysensors").format == "intel-hex"
    assert hex_to_binary(intel_hex(payload, 0x10))[:100] == payload
    with pytest.raises(ImageError, match="Intel HEX: "):
        check_image(b":10000000ZZ\n", "mysensors", "intel-hex")
    with pytest.raises(ImageError, match="not ASCII"):
        check_image(b":\xff\xfe", "mysensors", "intel-hex")
    with pytest.raises(ImageError, match="no data records"):
        check_image(b":00000001FF\n", "mysensors", "intel-hex")
    with pytest.raises(ImageError, match="for target mysensors"):
        check_image(intel_hex(payload), "esp32", "intel-hex")
    with pytest.raises(ImageError, match="needs an ESP target"):
        check_image(esp_image(), "mysensors", "esp-image")


def test_bundle() -> None:
    data = bundle({"app/main.mpy": b"abc", "app/lib/x.mpy": b"\0" * 100})
    info = check_image(data, "edgeiot")
    assert (info.format, info.version) == ("edgeiot-bundle", "1.2.0")
    assert check_image(data, "esp32").format == "edgeiot-bundle"
    with pytest.raises(ImageError, match="bundle is for esp32, not esp8266"):
        check_image(data, "esp8266")
    with pytest.raises(ImageError, match="takes no offset"):
        check_image(data, "edgeiot", offset=0)


def _manifest_bundle(manifest: object, tail: bytes = b"") -> bytes:
    raw = json.dumps(manifest).encode()
    return b"EIOTBNDL" + struct.pack("<I", len(raw)) + raw + tail


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
GOOD_FILE = {"path": "a.mpy", "size": 0, "sha256": EMPTY_SHA256}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"EIOTBNDL\xff\xff\x00\x00", "manifest length"),
        (b"EIOTBNDL\x02\0\0\0{x", "not UTF-8 JSON"),
        (_manifest_bundle([]), '"format": 1'),
        (_manifest_bundle({"format": 1, "version": "", "target": "esp32", "files": []}), "version"),
        (_manifest_bundle({"format": 1, "version": "1", "target": "x", "files": []}), "target"),
        (
            _manifest_bundle({"format": 1, "version": "1", "target": "any", "files": []}),
            "non-empty",
        ),
        *[
            (
                _manifest_bundle(
                    {
                        "format": 1,
                        "version": "1",
                        "target": "any",
                        "files": [{**GOOD_FILE, "path": path}],
                    }
                ),
                "safe relative path",
            )
            for path in ["../x", "/etc/passwd", "a//b", "a/./b", "a b", "", "a/../../b"]
        ],
        (
            _manifest_bundle(
                {"format": 1, "version": "1", "target": "any", "files": [GOOD_FILE, GOOD_FILE]}
            ),
            "appears twice",
        ),
        (
            _manifest_bundle(
                {"format": 1, "version": "1", "target": "any", "files": [{**GOOD_FILE, "size": 4}]},
                b"ab",
            ),
            "past the end",
        ),
        (
            _manifest_bundle(
                {"format": 1, "version": "1", "target": "any", "files": [{**GOOD_FILE, "size": 2}]},
                b"ab",
            ),
            "does not match",
        ),
        (
            _manifest_bundle(
                {
                    "format": 1,
                    "version": "1",
                    "target": "any",
                    "files": [{**GOOD_FILE, "sha256": "AB"}],
                }
            ),
            "64 lowercase",
        ),
        (
            _manifest_bundle(
                {"format": 1, "version": "1", "target": "any", "files": [{**GOOD_FILE, "size": -1}]}
            ),
            "not a size",
        ),
        (
            _manifest_bundle(
                {"format": 1, "version": "1", "target": "any", "files": [GOOD_FILE]}, b"x"
            ),
            "1 bytes after",
        ),
        (b"EIOTBNDL" + b"\0" * (4 * 1024 * 1024), "at most"),
    ],
)
def test_bad_bundles(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        check_image(data, "edgeiot", "edgeiot-bundle")


def test_unknown_format_and_target() -> None:
    with pytest.raises(ImageError, match="unknown firmware format: starts with 7f454c46"):
        check_image(b"\x7fELF\x02\x01\x01\x00", "esp32")
    with pytest.raises(ImageError, match="starts with nothing"):
        check_image(b"", "esp32")
    with pytest.raises(ImageError, match="unknown target 'avr'"):
        check_image(esp_image(), "avr")
    with pytest.raises(ImageError, match="unknown format 'zip'"):
        check_image(esp_image(), "esp32", "zip")
