"""`edgeiot-firmware build` and `bundle` for both targets, read back and checked byte by byte."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest
from littlefs import LittleFS, UserContext

from edgeiot_gateway import nodefw
from edgeiot_gateway.nodefw.targets import esp32_layout
from edgeiot_gateway.updates.images import check_bundle, check_image

from ..gateway.firmware_files import esp_image
from .conftest import (
    SECRETS,
    SOURCE,
    TABLE_OTA,
    Built,
    build,
    micropython_base,
    node_config,
    partition_table,
    run_cli,
)

# Where MicroPython 1.26.1 keeps things on a 4 MiB board (docs/node-firmware.md).
LAYOUT = {"esp32": (0x1000, 0x200000, 512), "esp8266": (0x0, 0x100000, 763)}


def mount(image: bytes, block_count: int) -> dict[str, bytes]:
    """Every file of a LittleFS image, mounted with littlefs-python's defaults but the geometry."""
    fs = LittleFS(UserContext(buffer=bytearray(image)), mount=False, block_size=4096,
                  block_count=block_count)  # fmt: skip
    fs.mount()
    files = {}
    for folder, _dirs, names in fs.walk("/"):
        for name in names:
            path = f"{folder.rstrip('/')}/{name}".lstrip("/")
            with fs.open(path, "rb") as handle:
                files[path] = handle.read()
    return files


def test_filesystem_holds_the_firmware_and_config(built: Built) -> None:
    base_offset, fs_offset, blocks = LAYOUT[built.target]
    fs = built.read("littlefs.bin")
    assert len(fs) == blocks * 4096
    files = mount(fs, blocks)
    assert sorted(files) == [
        "boot.py", "config.json", "edgeiot/__init__.mpy", "edgeiot/app.mpy",
        "edgeiot/drivers/__init__.mpy", "edgeiot/drivers/relay.mpy", "main.py",
    ]  # fmt: skip
    assert files["boot.py"] == (SOURCE / "boot.py").read_bytes()
    assert files["main.py"] == (SOURCE / "main.py").read_bytes()
    assert json.loads(files["config.json"]) == built.config
    for path, data in files.items():
        if path.endswith(".mpy"):
            assert data[:2] == b"M\x06", path  # .mpy version 6: MicroPython 1.26
    manifest = built.manifest
    assert manifest["target"] == built.target
    assert manifest["flash_size"] == 4 * 1024 * 1024
    assert manifest["firmware"] == {"version": "0.3.1", "micropython": "1.26.1", "mpy_version": 6}
    assert manifest["node"] == {"node_id": "kitchen-1", "name": "Kitchen"}
    listed = {f["path"]: f for f in manifest["files"]}
    assert listed.pop("config.json") == {"path": "config.json", "secret": True}
    assert listed == {
        path: {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for path, data in files.items()
        if path != "config.json"
    }
    fs_part = manifest["parts"][1]
    assert fs_part == {"name": "filesystem", "offset": fs_offset, "size": len(fs),
                       "sha256": hashlib.sha256(fs).hexdigest(), "file": "littlefs.bin",
                       "block_size": 4096, "block_count": blocks}  # fmt: skip
    assert manifest["parts"][0]["offset"] == base_offset


def test_merged_image_layout_and_library_check(built: Built) -> None:
    base_offset, fs_offset, blocks = LAYOUT[built.target]
    merged, fs, base = built.read("flash.bin"), built.read("littlefs.bin"), built.base
    assert merged[:base_offset] == b"\xff" * base_offset
    flashed = merged[base_offset : base_offset + len(base)]
    if built.target == "esp8266":  # the header's flash size says 4 MB (0x40), the rest is as given
        assert flashed[3] == 0x40 | (base[3] & 0x0F)
        assert flashed[:3] + flashed[4:] == base[:3] + base[4:]
    else:
        assert flashed == base
    assert merged[base_offset + len(base) : fs_offset] == b"\xff" * (
        fs_offset - base_offset - len(base)
    )
    assert merged[fs_offset:] == fs
    assert len(merged) == fs_offset + blocks * 4096
    manifest = built.manifest
    base_part = manifest["parts"][0]
    assert base_part == {"name": "micropython", "offset": base_offset, "size": len(base),
                         "sha256": hashlib.sha256(flashed).hexdigest()}  # fmt: skip
    assert manifest["merged"] == {"name": "merged", "offset": 0, "size": len(merged),
                                  "sha256": hashlib.sha256(merged).hexdigest(),
                                  "file": "flash.bin", "format": "esp-merged"}  # fmt: skip
    info = check_image(merged, built.target, "esp-merged")
    assert (info.format, info.offset, info.chip) == ("esp-merged", 0, built.target)


def test_secrets_stay_in_the_filesystem(built: Built) -> None:
    output = built.result.stdout + built.result.stderr
    manifest = (built.out / "manifest.json").read_text()
    for secret in SECRETS:
        assert secret not in output
        assert secret not in manifest
        assert secret.encode() in built.read("littlefs.bin")  # where the node reads it
    for name in ("littlefs.bin", "flash.bin"):
        assert (built.out / name).stat().st_mode & 0o777 == 0o600
    assert "kitchen-1" in built.result.stdout


def test_bundle_has_the_firmware_and_no_config(built: Built, tmp_path: Path) -> None:
    result = run_cli("bundle", "--target", built.target, "--src", SOURCE, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    data = (tmp_path / f"edgeiot-0.3.1-{built.target}.bundle").read_bytes()
    manifest = check_bundle(data)
    info = check_image(data, "edgeiot")
    assert (info.format, info.version) == ("edgeiot-bundle", "0.3.1")
    assert check_image(data, built.target).format == "edgeiot-bundle"
    fs_files = mount(built.read("littlefs.bin"), LAYOUT[built.target][2])
    assert [f["path"] for f in manifest["files"]] == sorted(
        set(fs_files) - {"config.json", "boot.py", "main.py"}  # those run from the root only
    )
    position = len(data) - sum(f["size"] for f in manifest["files"])
    for entry in manifest["files"]:  # the same bytes as flashed
        assert data[position : position + entry["size"]] == fs_files[entry["path"]]
        position += entry["size"]
    assert result.stdout.startswith(
        f"bundle {tmp_path}/edgeiot-0.3.1-{built.target}.bundle: 4 files"
    )
    for secret in SECRETS:
        assert secret.encode() not in data
    again = run_cli("bundle", "--target", built.target, "--src", SOURCE, "--version", "2.0",
                    "--out", tmp_path)  # fmt: skip
    assert (again.returncode, again.stderr) == (2, (
        "edgeiot-firmware: --version 2.0 is not the sources' VERSION 0.3.1: the node reports"
        " the VERSION it runs\n"))  # fmt: skip


def test_build_is_reproducible(built: Built, tmp_path: Path) -> None:
    again = build(tmp_path, built.target)
    assert again.result.returncode == 0, again.result.stderr
    assert again.read("flash.bin") == built.read("flash.bin")


def test_larger_flash_grows_the_filesystem(tmp_path: Path) -> None:
    config = tmp_path / "node.json"
    config.write_text(json.dumps(node_config()))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "flash.bin").write_bytes(b"an older build")
    (tmp_path / "out" / "littlefs.bin").write_bytes(b"an older build")
    (tmp_path / "out" / "littlefs.bin").chmod(0o644)
    result = run_cli("build", "--config", config, "--target", "esp32", "--flash-size", "8",
                     "--src", SOURCE, "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["merged"] is None  # no --base: the filesystem image only
    assert [p["name"] for p in manifest["parts"]] == ["filesystem"]
    assert (manifest["parts"][0]["offset"], manifest["parts"][0]["block_count"]) == (0x200000, 1536)
    assert not (tmp_path / "out" / "flash.bin").exists()
    assert (tmp_path / "out" / "littlefs.bin").stat().st_mode & 0o777 == 0o600
    assert (
        "kitchen-1"
        in mount((tmp_path / "out" / "littlefs.bin").read_bytes(), 1536)["config.json"].decode()
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{", "not JSON (Expecting property name enclosed in double quotes at line 1)"),
        ("[]", "expected a JSON object"),
        (node_config(node_id="a b"), "node_id: expected an id of 1-64 letters, digits, _ or -"),
        ({k: v for k, v in node_config().items() if k != "broker"}, "broker: missing"),
        (node_config(broker={"port": 1883}), "broker.host: missing"),
        (node_config(broker={"host": "h", "port": 0}), "broker.port: expected an integer 1 to"),
        (node_config(wifi={"ssid": "home", "pasword": SECRETS[0]}), "wifi.pasword: unknown key"),
        (node_config(wifi={"ssid": "h", "password": SECRETS[0] * 9}),
         "wifi.password: expected a string of at most 128 characters"),
        (node_config(colour="red"), "colour: unknown key"),
        (node_config(broker={"host": "h", "user": ""}),
         "broker.user: expected a string of 1-128 characters"),
        (node_config(drivers={}), "drivers: expected a list"),
        (node_config(drivers=[{"id": "a"}]), "drivers[0].type: missing"),
        (node_config(drivers=[{"id": "a", "type": "relay"}, {"id": "a", "type": "adc"}]),
         "drivers[1].id: duplicate or reserved id 'a'"),
    ],
)  # fmt: skip
def test_bad_config_is_refused_with_exit_2(
    tmp_path: Path, config: str | dict[str, object], message: str
) -> None:
    path = tmp_path / "node.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    result = run_cli("build", "--config", path, "--target", "esp32", "--src", SOURCE,
                     "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith(f"edgeiot-firmware: {path}: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_inputs(tmp_path: Path) -> None:
    config = tmp_path / "node.json"
    config.write_text(json.dumps(node_config()))
    args = ("build", "--config", config, "--target", "esp32", "--out", tmp_path / "out")

    def fails(code: int, message: str, *extra: str | Path) -> None:
        result = run_cli(*args, *extra)
        assert result.returncode == code, result.stderr
        assert message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr

    big = tmp_path / "big.bin"
    base = micropython_base("esp32")
    big.write_bytes(base + b"\0" * (0x1FF001 - len(base)))
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"\0" + base[1:])
    fails(2, "base image: 2093057 bytes from 0x1000 run into the filesystem at 0x200000 (at most"
          " 2093056 bytes)", "--src", SOURCE, "--base", big)  # fmt: skip
    fails(2, "base image: not an ESP image: first byte is 0x00", "--src", SOURCE, "--base", wrong)
    wrong.write_bytes(esp_image_of_size("esp32", 0x10000))
    fails(2, "base image: no partition table at 0x8000", "--src", SOURCE, "--base", wrong)
    fails(2, f"{tmp_path / 'none.bin'}: cannot read", "--src", SOURCE, "--base",
          tmp_path / "none.bin")  # fmt: skip
    fails(2, "flash size 2 MiB unsupported (one of 4, 8, 16)", "--src", SOURCE,
          "--flash-size", "2")  # fmt: skip
    source = tmp_path / "src"
    (source / "edgeiot").mkdir(parents=True)
    (source / "edgeiot" / "__init__.py").write_text("x = (\n")
    fails(2, "no VERSION in edgeiot/__init__.py: give --version", "--src", source)
    fails(1, "edgeiot/__init__.py: does not compile: ", "--src", source, "--version", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails(1, "no .py files", "--src", empty, "--version", "1")
    fails(2, "version '../1': 1-64 letters, digits", "--src", empty, "--version", "../1")
    (source / "edgeiot" / "__init__.py").write_text("VERSION = '1'\n")
    (source / "edgeiot" / "bad name.py").write_text("x = 1\n")
    result = run_cli("bundle", "--target", "any", "--src", source, "--out", tmp_path / "b")
    assert result.returncode == 1
    assert "'edgeiot/bad name.mpy' is not a safe relative path" in result.stderr


def esp_image_of_size(target: str, size: int) -> bytes:
    image = esp_image(target, 1, 64)
    return image + b"\0" * (size - len(image))


def test_without_the_builder_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("build", "fsimage", "sources"):  # imported afresh
        monkeypatch.delitem(sys.modules, f"edgeiot_gateway.nodefw.{name}", raising=False)
        monkeypatch.delattr(nodefw, name, raising=False)
    monkeypatch.setitem(sys.modules, "littlefs", None)  # as if not installed
    result = run_cli("bundle", "--target", "any", "--src", SOURCE, "--out", tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "edgeiot-firmware: littlefs is missing: install the gateway with its builder extra"
        " (pip install 'edgeiot-gateway[builder]')\n"
    )


def test_unreadable_configs_and_trees(tmp_path: Path) -> None:
    def run(config: Path, *extra: str | Path) -> tuple[int, str]:
        result = run_cli("build", "--config", config, "--target", "esp8266", "--out",
                         tmp_path / "out", *extra)  # fmt: skip
        return result.returncode, result.stderr

    missing = tmp_path / "none.json"
    assert run(missing, "--src", SOURCE) == (2, f"edgeiot-firmware: {missing}: cannot read"
                                                " (No such file or directory)\n")  # fmt: skip
    big, latin = tmp_path / "big.json", tmp_path / "latin.json"
    big.write_text(" " * (64 * 1024 + 1))
    latin.write_bytes(b'{"name": "K\xfcche"}')
    assert run(big, "--src", SOURCE)[1].endswith(f"{big}: 65537 bytes, at most 65536\n")
    assert run(latin, "--src", SOURCE)[1].endswith(f"{latin}: not UTF-8\n")
    good = tmp_path / "node.json"
    good.write_text(json.dumps(node_config()))
    assert run(good, "--src", tmp_path / "nowhere", "--version", "1") == (
        1, f"edgeiot-firmware: build failed: {tmp_path / 'nowhere'}: not a directory\n"
    )  # fmt: skip
    lib = tmp_path / "lib"
    (lib / ".git").mkdir(parents=True)
    (lib / ".git" / "hook.py").write_text("x = (\n")  # skipped: hidden directory
    (lib / "umqtt").mkdir()
    (lib / "umqtt" / "simple.py").write_text("def connect():\n    return 1\n")
    code, message = run(good, "--src", SOURCE, "--lib", lib, "--lib", tmp_path / "nolib")
    assert (code, message.endswith("nolib: not a directory\n")) == (1, True)
    assert run(good, "--src", SOURCE, "--lib", lib)[0] == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "lib/umqtt/simple.mpy" in [f["path"] for f in manifest["files"]]
    bundled = run_cli("bundle", "--target", "any", "--src", SOURCE, "--lib", lib, "--out", lib)
    assert bundled.returncode == 0, bundled.stderr
    paths = [
        f["path"] for f in check_bundle((lib / "edgeiot-0.3.1-any.bundle").read_bytes())["files"]
    ]
    assert paths == ["edgeiot/__init__.mpy", "edgeiot/app.mpy", "edgeiot/drivers/__init__.mpy",
                     "edgeiot/drivers/relay.mpy", "umqtt/simple.mpy"]  # fmt: skip
    (lib / "edgeiot").mkdir()
    (lib / "edgeiot" / "app.py").write_text("x = 1\n")
    clash = run_cli("bundle", "--target", "any", "--src", SOURCE, "--lib", lib, "--out", lib)
    assert (clash.returncode, clash.stderr) == (
        1, "edgeiot-firmware: build failed: bundle: edgeiot/app.mpy comes from both the sources"
        " and lib/\n"
    )  # fmt: skip
    (lib / "edgeiot" / "app.py").unlink()
    assert run(good, "--src", SOURCE, "--lib", lib, "--lib", lib)[1].endswith(
        "lib/umqtt/simple.mpy comes from two source trees\n"
    )
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "boot.py").write_bytes(b"#" * (1100 * 1024))  # more than 251 blocks of 4 KiB
    code, message = run(good, "--src", huge, "--version", "1", "--flash-size", "2")
    assert code == 1
    assert "filesystem (251 blocks of 4096 bytes): cannot write boot.py" in message


def test_esp32_filesystem_follows_the_base_partition_table(tmp_path: Path) -> None:
    config = tmp_path / "node.json"
    config.write_text(json.dumps(node_config()))
    base = tmp_path / "ota.bin"
    base.write_bytes(micropython_base("esp32", TABLE_OTA))  # ota_1 ends at 0x310000
    result = run_cli("build", "--config", config, "--target", "esp32", "--src", SOURCE,
                     "--base", base, "--out", tmp_path / "out")  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    fs_part = manifest["parts"][1]
    assert (fs_part["offset"], fs_part["size"], fs_part["block_count"]) == (0x310000, 0xF0000, 240)
    merged = (tmp_path / "out" / "flash.bin").read_bytes()
    assert merged[0x310000:] == (tmp_path / "out" / "littlefs.bin").read_bytes()
    assert "config.json" in mount(merged[0x310000:], 240)


@pytest.mark.parametrize(
    ("rows", "flash_mib", "expected"),
    [
        ([("factory", 0, 0, 0x10000, 0x1F0000)], 8, (0x200000, 0x600000)),
        ([("factory", 0, 0, 0x10000, 0x100000), ("vfs", 1, 0x81, 0x110000, 0x80000),
          ("nvs", 1, 2, 0x190000, 0x6000)], 4, (0x110000, 0x80000)),
        ([("factory", 0, 0, 0x10000, 0x1F0000), ("ffat", 1, 0x81, 0x200000, 0x200000)], 4,
         "the partition table's filesystem is FAT (ffat), not LittleFS (vfs)"),
        ([("factory", 0, 0, 0x10000, 0x3F0000)], 4,
         "the partitions end at 0x400000: no room for a filesystem"),
    ],
)  # fmt: skip
def test_esp32_partition_tables(
    rows: list[tuple[str, int, int, int, int]], flash_mib: int, expected: object
) -> None:
    table = partition_table(rows)
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=re.escape(expected)):
            esp32_layout(table, flash_mib)
        return
    found = esp32_layout(table, flash_mib)
    assert (found.fs_offset, found.fs_size) == expected
    assert (found.base_offset, found.flash_size) == (0x1000, flash_mib * 1024 * 1024)
