"""OTA download serving: 100 nodes fetching one firmware file from the gateway at the same time.

The gateway runs in this process (API on loopback, no providers); the firmware (an ESP image of
about 1 MiB) is in its library and each simulated node gets its own token, as `firmware_install`
hands them out. The nodes are 100 concurrent aiohttp downloads in a child process (so they do
not share the gateway's interpreter), each on its own connection. Figures: aggregate serving
rate, per-download time (p50, p99) and the wall time until the last node has the whole file.
Run: `.venv/bin/python bench/ota_http.py [--nodes N] [--segments S]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from edgeiot_gateway.config import parse_config
from edgeiot_gateway.gateway import Gateway
from tests.gateway.firmware_files import esp_image

NODES, SEGMENTS = 100, 16  # the defaults: 100 downloads of a 1 MiB image at once
GOAL_MIB_PER_S = 10.0  # a 1 MiB image to 100 nodes in 10 s
TIMEOUT = 90.0


def fetch_all(urls: list[str], sha256: str) -> tuple[float, list[float], int]:
    """(Child process) download every URL at once: (wall s, per-download s, bad downloads)."""

    async def run() -> tuple[float, list[float], int]:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(url: str) -> tuple[float, str]:
                start = time.perf_counter()
                digest = hashlib.sha256()
                async with session.get(url) as response:
                    response.raise_for_status()
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        digest.update(chunk)
                return time.perf_counter() - start, digest.hexdigest()

            start = time.perf_counter()
            results = await asyncio.gather(*(one(url) for url in urls))
            wall = time.perf_counter() - start
        return wall, [t for t, _ in results], sum(d != sha256 for _, d in results)

    return asyncio.run(run())


async def bench(nodes: int, segments: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="edgeiot-ota-bench-") as tmp:
        config = {"gateway_id": "bench", "data_dir": str(Path(tmp) / "gw"),
                  "api": {"host": "127.0.0.1", "port": 0, "advertise": False},
                  "firmware": {"max_bytes": 64 * 1024 * 1024}}  # fmt: skip
        gateway = Gateway(parse_config(config, Path(tmp)))
        await gateway.start()
        try:
            image = esp_image("esp32", segments, 65536)

            async def chunks() -> AsyncIterator[bytes]:
                yield image

            meta = {"name": "bench", "version": "1", "target": "esp32"}
            entry = await gateway.firmware.add(meta, chunks())
            path = gateway.firmware.path(entry)
            urls = [gateway.downloads.issue(path)[1] for _ in range(nodes)]
            print(f"ota_http: {nodes} downloads of {len(image):,} bytes", file=sys.stderr)
            loop = asyncio.get_running_loop()
            with ProcessPoolExecutor(max_workers=1) as pool:
                wall, times, bad = await loop.run_in_executor(
                    pool, fetch_all, urls, entry["sha256"]
                )
        finally:
            await gateway.stop()
    rate = nodes * len(image) / wall / 2**20
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{nodes} simultaneous downloads of {len(image):,} bytes: {wall:.2f} s, "
          f"{rate:,.1f} MiB/s ({'met' if rate >= GOAL_MIB_PER_S and not bad else 'MISSED'}: "
          f"goal >= {GOAL_MIB_PER_S} MiB/s, every file intact; {bad} bad)")  # fmt: skip
    print(f"per download: p50 {statistics.median(times):.2f} s, p99 {p99:.2f} s")
    return {"ota_downloads": nodes, "ota_file_bytes": len(image), "ota_wall_s": round(wall, 3),
            "ota_serving_mib_per_s": round(rate, 1),
            "ota_download_p50_s": round(statistics.median(times), 3),
            "ota_download_p99_s": round(p99, 3), "ota_bad_downloads": bad}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=NODES, help="simultaneous downloads (100)")
    parser.add_argument("--segments", type=int, default=SEGMENTS, help="64 KiB segments (16)")
    args = parser.parse_args()
    try:
        figures = asyncio.run(bench(args.nodes, min(16, max(1, args.segments))))
    except KeyboardInterrupt:
        sys.exit(130)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
