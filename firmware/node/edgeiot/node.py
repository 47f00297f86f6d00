"""The EdgeIoT node protocol v1 (docs/protocol.md section 2) over one broker connection.

One task owns the MQTT link (see edgeiot.mqtt): it connects with backoff, announces, publishes
`status` online (its Last Will says offline), subscribes to the node's `set/#` and `action`
(QoS 1), republishes every current value, then services the link: incoming commands, the outbox
(states, events, heartbeats) and the keepalive. Drivers and the heartbeat task only queue.
"""

import asyncio
import json
import time

from edgeiot import VERSION, log

OUTBOX_MAX = 64
INBOX_MAX = 16
BACKOFF_MIN, BACKOFF_MAX = 1, 30
NODE_EVENTS = ("config_error", "sensor_error", "command_error")


def _json(data):
    return json.dumps(data).encode()


class Node:
    def __init__(self, config, hal, drivers, link_factory):
        self.config = config
        self.hal = hal
        self.drivers = {d.id: d for d in drivers}
        self.ordered = drivers  # MicroPython dicts keep no order: announce in config order
        self._link_factory = link_factory
        self.prefix = "%s/%s/" % (config["broker"]["prefix"], config["node_id"])
        self.connected = False
        self.connections = 0
        self.dropped = 0
        self._outbox = []
        self._inbox = []
        self._link = None
        self._booted = time.ticks_ms()
        self.ota = None  # edgeiot.ota.Ota, set by the app
        self._reboot = False
        for driver in drivers:
            driver.node = self

    # -- what drivers and other tasks call --------------------------------------------------

    def report(self, source_id, values):
        """Queue a state; False when offline (the driver keeps the values for the reconnect)."""
        if not self.connected:
            return False
        return self._queue("state/" + source_id, {"v": 1, "values": values})

    def source_event(self, source_id, event, data):
        self._queue("event/" + source_id, {"v": 1, "event": event, "data": data})

    def node_event(self, event, data):
        self.source_event("node", event, data)

    def queue_ota_status(self, doc):
        self._queue("ota_status", doc)

    def request_reboot(self):
        """Reboot once everything queued is sent."""
        self._reboot = True

    def _queue(self, kind, payload):
        if len(self._outbox) >= OUTBOX_MAX:
            self._drop("outbox full: dropped the oldest %s" % self._outbox.pop(0)[0])
        self._outbox.append((kind, _json(payload)))
        return True

    # -- protocol documents -------------------------------------------------------------------

    def announce(self):
        c = self.config
        doc = {
            "v": 1,
            "name": c["name"],
            "kind": "edgeiot-node",
            "manufacturer": c["manufacturer"],
            "model": c["model"] or self.hal.platform,
            "firmware": self.ota.version() if self.ota else VERSION,
            "actions": ["reboot"],
            "heartbeat_interval": c["heartbeat_interval"],
            "sources": [{"id": "node", "name": "Node", "fields": [], "events": list(NODE_EVENTS)}]
            + [d.definition() for d in self.ordered],
        }
        if c["announce_ota"]:
            doc["ota"] = {"target": self.hal.platform, "formats": ["edgeiot-bundle"]}
        if c["hardware"]:
            doc["hardware"] = c["hardware"]
        return doc

    def heartbeat(self):
        doc = {"v": 1, "uptime": time.ticks_diff(time.ticks_ms(), self._booted) // 1000}
        rssi = self.hal.rssi()
        if isinstance(rssi, int) and -200 <= rssi <= 50:
            doc["rssi"] = rssi
        for driver in self.ordered:
            if hasattr(driver, "percent") and driver.percent() is not None:
                doc["battery"] = driver.percent()
                break
        return doc

    # -- commands -------------------------------------------------------------------------------

    def _on_message(self, topic, payload):
        if len(self._inbox) < INBOX_MAX:
            self._inbox.append((topic, payload))
        else:
            self._drop("inbox full: dropped a command on %r" % topic)

    def _drop(self, message):
        """Count a dropped message; log the first 10, then every 100th."""
        self.dropped += 1
        if self.dropped <= 10 or self.dropped % 100 == 0:
            log.warning("%s (%d dropped so far)" % (message, self.dropped))

    def _handle(self, topic, payload):
        try:
            topic = topic.decode()
            if not topic.startswith(self.prefix):
                raise ValueError("foreign topic")
            parts = topic[len(self.prefix) :].split("/")
            doc = json.loads(payload)
            if not isinstance(doc, dict) or doc.get("v") != 1:
                raise ValueError("not a v1 payload")
            if parts[0] == "set" and len(parts) == 3:
                self._set(parts[1], parts[2], doc.get("value"))
            elif parts == ["ota"] and self.ota is not None:
                self.ota.command(doc)
            elif parts == ["action"]:
                self._action(doc.get("action"))
            else:
                raise ValueError("unknown command topic")
        except Exception as err:  # a command never stops the node
            log.warning("command on %r refused: %r" % (topic, err))
            self.node_event("command_error", {"topic": str(topic)[-128:], "error": str(err)[:200]})

    def _set(self, source_id, field_id, value):
        driver = self.drivers.get(source_id)
        if driver is None:
            raise ValueError("no source %r" % source_id)
        if not driver.ready:
            raise ValueError("%s is not working: %s" % (source_id, "see its sensor_error"))
        driver.offer(driver.set(field_id, value), force=True)

    def _action(self, action):
        if action != "reboot":
            raise ValueError("unknown action %r" % (action,))
        log.info("reboot requested")
        self._reboot = True

    # -- the connection ---------------------------------------------------------------------------

    def _publish(self, kind, doc, retain=False):
        self._link.publish(self.prefix + kind, _json(doc), retain)

    def _session_start(self):
        # Subscribe first: a command sent once the gateway sees us online must reach us.
        self._link.subscribe(self.prefix + "set/#")
        self._link.subscribe(self.prefix + "action")
        if self.ota is not None:
            self._link.subscribe(self.prefix + "ota")
        self._publish("announce", self.announce(), retain=True)
        self._publish("status", {"v": 1, "state": "online"}, retain=True)
        self.connected = True
        self.connections += 1
        self._queue("heartbeat", self.heartbeat())
        for driver in self.ordered:
            driver.republish()

    async def _wifi(self):
        wifi = self.config["wifi"]
        if wifi is not None:
            self.hal.wifi_connect(wifi["ssid"], wifi["password"])
        for _ in range(200):
            if self.hal.wifi_connected():
                return
            await asyncio.sleep_ms(100)
        raise OSError("Wi-Fi not connected")

    async def run_link(self):
        """Connect, serve, reconnect with backoff: forever."""
        backoff = BACKOFF_MIN
        broker = self.config["broker"]
        will = _json({"v": 1, "state": "offline"})
        while True:
            try:
                await self._wifi()
                self._link = self._link_factory(
                    broker, self.prefix + "status", will, self._on_message
                )
                log.info("connecting to %s:%d" % (broker["host"], broker["port"]))
                self._link.connect()
                self._session_start()
                log.info("online (connection %d)" % self.connections)
                backoff = BACKOFF_MIN
                await self._serve()
            except (OSError, IndexError, AssertionError) as err:  # umqtt asserts on bad replies
                log.warning("broker link: %r; retry in %d s" % (err, backoff))
            if self._link is not None:
                self._link.close()
            self.connected = False
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _serve(self):
        first = True
        while True:
            if not self.hal.wifi_connected():
                raise OSError("Wi-Fi lost")
            self._link.service()
            while self._inbox:
                self._handle(*self._inbox.pop(0))
            while self._outbox:
                kind, payload = self._outbox[0]
                self._link.publish(self.prefix + kind, payload)
                self._outbox.pop(0)
            if first and self.ota is not None:
                self.ota.on_online()  # the heartbeat is out: a bundle on trial is healthy
            first = False
            if self._reboot:
                self._publish("status", {"v": 1, "state": "offline"}, retain=True)
                self._link.disconnect()
                self.hal.reset()
            await asyncio.sleep_ms(5)

    async def run_heartbeat(self):
        while True:
            await asyncio.sleep(self.config["heartbeat_interval"])
            if self.connected:
                self._queue("heartbeat", self.heartbeat())
