"""Command line: `edgeiot-gateway --config FILE` or `python -m edgeiot_gateway`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from . import __version__
from .config import ConfigError, GatewayConfig, load_config
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
    gateway = Gateway(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    if gateway.token_created:
        # Printed once, on the first start; afterwards it lives in <data_dir>/api_token.
        print(f"EdgeIoT gateway {gateway.gateway_id}: API token {gateway.token}", flush=True)
    api_port = gateway.api.port if gateway.api else None
    print(f"EdgeIoT gateway {gateway.gateway_id} ready on API port {api_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await gateway.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    try:
        config = load_config(args.config) if args.config else GatewayConfig(Path("edgeiot-data"))
    except ConfigError as err:
        print(f"edgeiot-gateway: invalid configuration: {err}", file=sys.stderr)
        return 2
    if args.data_dir:
        config.data_dir = args.data_dir.resolve()
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s [%(name)s] %(message)s",
    )
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
