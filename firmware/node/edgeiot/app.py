"""Boot: load the node config, build the drivers, run the node and its helper tasks.

A config that cannot run a node (unreadable, no valid `node_id` or `broker`) falls back to the
last good copy (`config.good.json`, written after every boot that had a usable config); without
one the node waits, re-reading the file every 10 s: never a crash loop. Every problem is logged
and, once connected, sent as a `config_error` event of the `node` source.
"""

import asyncio
import os

from edgeiot import log
from edgeiot.config import load
from edgeiot.drivers import DRIVERS
from edgeiot.hal import open_hal
from edgeiot.mqtt import Link
from edgeiot.node import Node
from edgeiot.ota import Ota

MAX_REPORTED = 20


def _path(hal, name):
    return hal.fs_root + name


def _load_config(hal):
    path = os.getenv("EDGEIOT_CONFIG") if hasattr(os, "getenv") else None
    path = path or _path(hal, "config.json")
    config, problems = load(path)
    if config is None:
        good, _ = load(_path(hal, "config.good.json"))
        if good is not None:
            problems.append((path, "unusable; running the last good config"))
            return good, problems
        return None, problems
    try:
        with open(path) as src, open(_path(hal, "config.good.json"), "w") as dst:
            dst.write(src.read())
    except OSError as err:
        log.warning("cannot keep a good copy of the config: %r" % err)
    return config, problems


async def _feed(watchdog):
    while True:
        watchdog.feed()
        await asyncio.sleep(1)


async def _sim_poll(hal):
    while True:
        hal.poll()
        await asyncio.sleep_ms(5)


async def main():
    hal = open_hal()
    while True:
        config, problems = _load_config(hal)
        for where, message in problems:
            log.warning("config %s: %s" % (where, message))
        if config is not None:
            break
        log.error("no usable node config; trying again in 10 s")
        await asyncio.sleep(10)
    watchdog = hal.watchdog(config["watchdog"] * 1000) if config["watchdog"] else None
    drivers = [DRIVERS[options["type"]](hal, options) for options in config["drivers"]]
    node = Node(config, hal, drivers, Link)
    node.ota = Ota(node, hal, hal.platform)
    for driver in drivers:
        driver.start()
    for where, message in problems[:MAX_REPORTED]:
        node.node_event("config_error", {"path": where, "error": message})
    if len(problems) > MAX_REPORTED:
        more = "%d more problems, see the log" % (len(problems) - MAX_REPORTED)
        node.node_event("config_error", {"path": "", "error": more})
    log.info("node %s: %d drivers" % (config["node_id"], len(drivers)))
    tasks = [node.run_link(), node.run_heartbeat(), node.ota.health_window(config["health_window"])]
    tasks += [d.supervise() for d in drivers]
    if watchdog is not None:
        tasks.append(_feed(watchdog))
    if hasattr(hal, "poll"):
        tasks.append(_sim_poll(hal))
    await asyncio.gather(*[asyncio.create_task(t) for t in tasks])


def run():
    asyncio.run(main())
