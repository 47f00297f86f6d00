"""Simulated hardware for the unix port: what tests drive the firmware with.

Initial state comes from the JSON file named by `EDGEIOT_SIM_STATE`; later changes arrive as JSON
datagrams on UDP `127.0.0.1:$EDGEIOT_SIM_PORT` (polled by `poll()`), both of the shape
`{"pins": {"0": 1}, "adc": {"34": 30000}, "onewire": {"4": {"28aa...": 21.5}},
"dht22": {"14": {"temperature": 21.0, "humidity": 50.0}},
"i2c": {"118": {"208": [96]}}, "wifi": true, "rssi": -60}` (i2c: address → start register →
bytes written into that device's register file). Outputs are printed as `SIM pin 5 1` and
`SIM pwm 12 32768` lines, so tests see what the firmware drives.
"""

import json
import os
import socket
import sys


class _Pin:
    def __init__(self, sim, n, output):
        self._sim, self._n, self._output = sim, n, output

    def value(self, v=None):
        if v is None:
            return self._sim.pin_values.get(self._n, 0)
        v = 1 if v else 0
        if self._output and self._sim.pin_values.get(self._n) != v:
            print("SIM pin %d %d" % (self._n, v))
        self._sim.pin_values[self._n] = v
        return None


class _Adc:
    def __init__(self, sim, n):
        self._sim, self._n = sim, n

    def read_u16(self):
        return self._sim.adc_values.get(self._n, 0)


class _Pwm:
    def __init__(self, n):
        self._n = n
        self._duty = None

    def duty_u16(self, duty):
        if duty != self._duty:
            print("SIM pwm %d %d" % (self._n, duty))
        self._duty = duty


class _I2c:
    """A bus of register-file devices: reads return what was written (by the test or firmware)."""

    def __init__(self, sim):
        self._sim = sim

    def scan(self):
        return sorted(self._sim.i2c_devices)

    def _regs(self, addr):
        if addr not in self._sim.i2c_devices:
            raise OSError(19)  # ENODEV: no ACK
        return self._sim.i2c_devices[addr]

    def readfrom_mem(self, addr, reg, n):
        regs = self._regs(addr)
        return bytes(regs.get(reg + i, 0) for i in range(n))

    def writeto_mem(self, addr, reg, buf):
        regs = self._regs(addr)
        for i, b in enumerate(buf):
            regs[reg + i] = b


class _OneWireTemp:
    def __init__(self, sim, n):
        self._sim, self._n = sim, n

    def scan(self):
        return [bytes.fromhex(rom) for rom in sorted(self._sim.onewire_devices.get(self._n, {}))]

    def convert_temp(self):
        if not self._sim.onewire_devices.get(self._n):
            raise OSError(5)  # no presence pulse

    def read_temp(self, rom):
        devices = self._sim.onewire_devices.get(self._n, {})
        key = "".join("%02x" % b for b in rom)
        if key not in devices:
            raise OSError(5)
        return devices[key]


class _Dht22:
    def __init__(self, sim, n):
        self._sim, self._n = sim, n
        self._reading = None

    def measure(self):
        reading = self._sim.dht_readings.get(self._n)
        if reading is None:
            raise OSError(110)  # ETIMEDOUT, as dht.DHT22 raises without a sensor
        self._reading = reading

    def temperature(self):
        return self._reading["temperature"]

    def humidity(self):
        return self._reading["humidity"]


class _Watchdog:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class SimHal:
    """The unix port's hardware: state in dicts, changed by the test over UDP."""

    def __init__(self):
        self.pin_values, self.adc_values, self.onewire_devices = {}, {}, {}
        self.dht_readings, self.i2c_devices = {}, {}
        self.wifi, self.rssi_dbm = True, -55
        self.platform = "esp32"  # the board it stands for (the OTA target it announces)
        self.fs_root = os.getenv("EDGEIOT_FS") or ""
        path = os.getenv("EDGEIOT_SIM_STATE")
        if path:
            with open(path) as f:
                self.apply(json.load(f))
        self._sock = None
        port = os.getenv("EDGEIOT_SIM_PORT")
        if port:
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._sock.bind(socket.getaddrinfo("127.0.0.1", int(port))[0][-1])
            self._sock.setblocking(False)

    def apply(self, change):
        """Merge one state document (see the module docstring)."""
        for key, target in (("pins", self.pin_values), ("adc", self.adc_values)):
            for n, v in change.get(key, {}).items():
                target[int(n)] = v
        for n, devices in change.get("onewire", {}).items():
            self.onewire_devices[int(n)] = devices
        for n, reading in change.get("dht22", {}).items():
            self.dht_readings[int(n)] = reading
        for addr, writes in change.get("i2c", {}).items():
            regs = self.i2c_devices.setdefault(int(addr), {})
            for reg, data in writes.items():
                for i, b in enumerate(data):
                    regs[int(reg) + i] = b
        self.wifi = change.get("wifi", self.wifi)
        self.platform = change.get("platform", self.platform)
        self.rssi_dbm = change.get("rssi", self.rssi_dbm)

    def poll(self):
        """Apply the control datagrams that arrived (non-blocking)."""
        while self._sock is not None:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                self.apply(json.loads(data))
            except (ValueError, TypeError, AttributeError) as err:
                print("SIM bad control message:", err)

    def pin_in(self, n, pull=None):
        if pull == "up":
            self.pin_values.setdefault(n, 1)
        return _Pin(self, n, False)

    def pin_out(self, n):
        return _Pin(self, n, True)

    def adc(self, n):
        return _Adc(self, n)

    def pwm(self, n, freq):
        return _Pwm(n)

    def i2c(self, sda, scl, freq):
        return _I2c(self)

    def onewire_temp(self, n):
        return _OneWireTemp(self, n)

    def dht22(self, n):
        return _Dht22(self, n)

    def wifi_connect(self, ssid, password):
        pass

    def wifi_connected(self):
        return bool(self.wifi)

    def rssi(self):
        return self.rssi_dbm

    def watchdog(self, timeout_ms):
        return _Watchdog(timeout_ms)

    def reset(self):
        print("SIM reset")
        sys.exit(3)
