"""Hardware access behind one small interface, so the same firmware runs on a board and on the
unix port (tests). `open_hal()` returns `BoardHal` on ESP32/ESP8266 (over `machine`, `network`,
`onewire`/`ds18x20`, `dht`) and `edgeiot.sim.SimHal` on the unix port.

The interface (both implement it):
- `pin_in(n, pull)` / `pin_out(n)`: objects with `value()` / `value(v)`;
- `adc(n)` with `read_u16()`; `pwm(n, freq)` with `duty_u16(d)`;
- `i2c(sda, scl, freq)` with `readfrom_mem(addr, reg, n)`, `writeto_mem(addr, reg, buf)`, `scan()`;
- `onewire_temp(n)` with `scan()`, `convert()`, `read_temp(rom)` (DS18B20 family);
- `dht22(n)` with `measure()`, `temperature()`, `humidity()`;
- `wifi_connect(ssid, password)`, `wifi_connected()`, `rssi()` (int dBm or None);
- `watchdog(timeout_ms)` with `feed()`; `reset()`; `fs_root` (where config and bundles live).
"""

import sys


class BoardHal:
    """A real board: ESP32 family or ESP8266."""

    fs_root = ""
    platform = sys.platform  # "esp32" for the whole ESP32 family, or "esp8266"

    def __init__(self):
        import machine
        import network

        self._machine = machine
        self._wlan = network.WLAN(network.STA_IF)

    def pin_in(self, n, pull=None):
        m = self._machine
        pulls = {"up": m.Pin.PULL_UP, "down": getattr(m.Pin, "PULL_DOWN", None), None: None}
        return m.Pin(n, m.Pin.IN, pulls[pull])

    def pin_out(self, n):
        return self._machine.Pin(n, self._machine.Pin.OUT)

    def adc(self, n):
        adc = self._machine.ADC(self._machine.Pin(n) if sys.platform != "esp8266" else n)
        if hasattr(adc, "atten"):
            adc.atten(self._machine.ADC.ATTN_11DB)
        return adc

    def pwm(self, n, freq):
        return self._machine.PWM(self._machine.Pin(n), freq=freq, duty_u16=0)

    def i2c(self, sda, scl, freq):
        m = self._machine
        return m.SoftI2C(sda=m.Pin(sda), scl=m.Pin(scl), freq=freq)

    def onewire_temp(self, n):
        import ds18x20
        import onewire

        return ds18x20.DS18X20(onewire.OneWire(self._machine.Pin(n)))

    def dht22(self, n):
        import dht

        return dht.DHT22(self._machine.Pin(n))

    def wifi_connect(self, ssid, password):
        self._wlan.active(True)
        if not self._wlan.isconnected():
            self._wlan.connect(ssid, password)

    def wifi_connected(self):
        return self._wlan.isconnected()

    def rssi(self):
        try:
            return int(self._wlan.status("rssi"))
        except Exception:  # not every port or state reports it
            return None

    def watchdog(self, timeout_ms):
        try:
            return self._machine.WDT(timeout=timeout_ms)
        except (TypeError, ValueError):  # ESP8266: a fixed timeout of its own
            return self._machine.WDT()

    def reset(self):
        self._machine.reset()


def open_hal():
    """The hardware of the board this runs on (simulated on the unix port)."""
    if sys.platform in ("linux", "darwin"):
        from edgeiot.sim import SimHal

        return SimHal()
    return BoardHal()
