"""Command line: `edgeiot-gateway --config FILE` or `python -m edgeiot_gateway`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path

from . import __version__
from .auth import mark_token_shown
from .config import ConfigError, GatewayConfig, load_config
from .errors import EXIT_CONFIG, EXIT_STARTUP, StartupError
from .gateway import Gateway

_LOGGER = logging.getLogger("edgeiot_gateway")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="edgeiot-gateway", description=__doc__)
    parser.add_argument("--config", type=Path, help="gateway.toml or options.json")
    parser.add_argument("--data-dir", type=Path, help="overrides data_dir from the config")
    parser.add_argument("--version", action="version", version=__version__)
    return parser.parse_args(argv)


async def run(config: GatewayConfig) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    check_data_dir(config.data_dir)
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    try:
        if gateway.token_unshown:
            # Printed until it was shown once; afterwards it lives in <data_dir>/api_token.
            print(f"EdgeIoT gateway {gateway.gateway_id}: API token {gateway.token}", flush=True)
            mark_token_shown(config.data_dir)
        api_port = gateway.api.port if gateway.api else None
        print(f"EdgeIoT gateway {gateway.gateway_id} ready on API port {api_port}", flush=True)
        await stop.wait()
    finally:
        await gateway.stop()


def check_data_dir(path: Path) -> None:
    """Create the data directory and make sure the gateway can write in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise StartupError(
            f"cannot write in the data directory {path}: {err.strerror or err}",
            "make it writable for the user the gateway runs as, or choose another with"
            " data_dir or --data-dir",
        ) from err


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (errors.EXIT_CONFIG, errors.EXIT_STARTUP)."""
    args = parse_args(argv)
    try:
        config = load_config(args.config) if args.config else GatewayConfig(Path("edgeiot-data"))
    except ConfigError as err:
        print(f"edgeiot-gateway: invalid configuration: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.data_dir:
        config.data_dir = args.data_dir.resolve()
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    try:
        asyncio.run(run(config))
    except ConfigError as err:
        print(f"edgeiot-gateway: invalid configuration: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as err:
        print(f"edgeiot-gateway: {err.message}\n  what to do: {err.hint}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


if __name__ == "__main__":
    sys.exit(main())
