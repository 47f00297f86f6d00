"""`edgeiot-firmware`: build node images and OTA bundles (docs/node-firmware.md).

Exit codes: 0 done, 1 the build failed (a source that does not compile, a full filesystem),
2 bad input (arguments, the node config, the base image). Output names files, sizes and
offsets, never a config value other than the node id.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from . import config as node_config
from .targets import FLASH_SIZES

DEFAULT_SOURCE = Path("firmware/node")
BUNDLE_TARGETS = ("esp32", "esp8266", "any")
_VERSION = re.compile(r"[A-Za-z0-9._+-]{1,64}")  # it names the bundle file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeiot-firmware", description="Build EdgeIoT node firmware images and bundles."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, targets: Sequence[str]) -> None:
        sub.add_argument("--target", required=True, choices=targets)
        sub.add_argument("--src", type=Path, default=DEFAULT_SOURCE,
                         help="the firmware sources (default: %(default)s)")  # fmt: skip
        sub.add_argument("--lib", type=Path, action="append", default=[],
                         help="a library tree to install under lib/ (repeatable)")  # fmt: skip
        sub.add_argument("--version", dest="fw_version",
                         help="default: VERSION in the sources' edgeiot/__init__.py")  # fmt: skip
        sub.add_argument("--out", type=Path, required=True, help="the output directory")

    build = commands.add_parser("build", help="a filesystem image, manifest and flash image")
    common(build, tuple(FLASH_SIZES))
    build.add_argument("--config", type=Path, required=True, help="the node config (JSON)")
    build.add_argument("--base", type=Path,
                       help="MicroPython 1.26 firmware .bin (to write flash.bin)")  # fmt: skip
    build.add_argument("--flash-size", type=int, default=4, metavar="MIB",
                       help="the board's flash size in MiB (default: 4)")  # fmt: skip
    bundle = commands.add_parser("bundle", help="an EdgeIoT bundle for OTA (no config)")
    common(bundle, BUNDLE_TARGETS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        from . import build, sources  # noqa: PLC0415  # needs the builder extra
    except ImportError as err:
        print(f"edgeiot-firmware: {err.name} is missing: install the gateway with its builder"
              " extra (pip install 'edgeiot-gateway[builder]')", file=sys.stderr)  # fmt: skip
        return 2
    try:
        declared = sources.firmware_version(args.src)
        if args.fw_version and declared and args.fw_version != declared:
            raise ValueError(f"--version {args.fw_version} is not the sources' VERSION"
                             f" {declared}: the node reports the VERSION it runs")  # fmt: skip
        version = args.fw_version or declared
        if not version:
            raise ValueError(f"{args.src}: no VERSION in edgeiot/__init__.py: give --version")
        if not _VERSION.fullmatch(version):
            raise ValueError(f"version {version!r}: 1-64 letters, digits, '.', '_', '+' or '-'")
        if args.command == "build":
            doc = node_config.load(args.config)
            base = _read(args.base) if args.base else None
            plan = build.plan(args.target, args.flash_size, base)
        app = sources.collect(args.src, tuple(args.lib))
        if args.command == "bundle":
            data = build.bundle(app, version, args.target)
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"edgeiot-{version}-{args.target}.bundle"
            path.write_bytes(data)
            count = len(build.bundle_files(app))
            print(f"bundle {path}: {count} files, {len(data)} bytes, version {version}")
            return 0
        result = build.build(doc, app, plan, version, base=base, out=args.out)
    except ValueError as err:  # the config, the layout, the base image, the version
        print(f"edgeiot-firmware: {err}", file=sys.stderr)
        return 2
    except (sources.BuildError, OSError) as err:
        print(f"edgeiot-firmware: build failed: {err}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(f"node {manifest['node']['node_id']}, {args.target}, firmware {version},"
          f" {len(app)} files")  # fmt: skip
    for part in manifest["parts"]:
        print(f"  {part['name']}: 0x{part['offset']:06x}, {part['size']} bytes")
    for name, path in result.outputs.items():
        print(f"wrote {path}" + (" (holds the node's secrets)" if name != "manifest.json" else ""))
    return 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None


if __name__ == "__main__":
    sys.exit(main())
