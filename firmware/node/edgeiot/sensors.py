"""Bus sensors: DS18B20 (1-Wire), DHT22, BME280 (I2C register protocol, Bosch compensation)."""

import asyncio
import struct

from edgeiot.config import REQUIRED
from edgeiot.driver import Driver


class Ds18b20(Driver):
    """A DS18B20 on a 1-Wire pin: field `temperature` (°C); `rom` (16 hex digits) picks one
    sensor of several on the bus, else the first found."""

    TYPE = "ds18b20"
    OPTIONS = {"pin": ("pin", REQUIRED), "rom": ("str", None)}  # noqa: RUF012
    PINS = ("pin",)

    def make_fields(self):
        return [self.field("temperature", self.name, "float", "°C", "temperature")]

    def setup(self):
        self._bus = self.hal.onewire_temp(self.options["pin"])
        self._rom = None
        if self.options["rom"] is not None:
            self._rom = bytes.fromhex(self.options["rom"])

    async def read(self):
        rom = self._rom
        if rom is None:
            roms = self._bus.scan()
            if not roms:
                raise OSError("no DS18B20 on pin %d" % self.options["pin"])
            rom = roms[0]
        self._bus.convert_temp()
        await asyncio.sleep_ms(750)  # 12-bit conversion time
        return {"temperature": float(self._bus.read_temp(rom))}


class Dht22(Driver):
    """A DHT22/AM2302: fields `temperature` (°C) and `humidity` (%); read at most every 2 s."""

    TYPE = "dht22"
    OPTIONS = {"pin": ("pin", REQUIRED)}  # noqa: RUF012
    PINS = ("pin",)

    def make_fields(self):
        return [
            self.field("temperature", "Temperature", "float", "°C", "temperature"),
            self.field("humidity", "Humidity", "float", "%", "humidity"),
        ]

    def setup(self):
        self.options["interval"] = max(self.options["interval"], 2)
        self._sensor = self.hal.dht22(self.options["pin"])

    async def read(self):
        self._sensor.measure()
        return {
            "temperature": float(self._sensor.temperature()),
            "humidity": float(self._sensor.humidity()),
        }


CHIP_ID, RESET, CTRL_HUM, CTRL_MEAS, DATA = 0xD0, 0xE0, 0xF2, 0xF4, 0xF7
BME280_ID = 0x60
FORCED_1X = 0x25  # osrs_t = osrs_p = 1x, forced mode


class Bme280(Driver):
    """A Bosch BME280 on I2C (`sda`, `scl`, `address` 0x76 = 118 or 0x77 = 119): fields
    `temperature` (°C), `humidity` (%), `pressure` (hPa), from the datasheet's compensation
    formulas (double precision) and the chip's calibration registers. Several sensors may share
    `sda`/`scl`."""

    TYPE = "bme280"
    OPTIONS = {  # noqa: RUF012
        "sda": ("pin", REQUIRED),
        "scl": ("pin", REQUIRED),
        "address": (("choice", 0x76, 0x77), 0x76),
        "freq": (("int", 10000, 1000000), 100000),
    }

    def make_fields(self):
        return [
            self.field("temperature", "Temperature", "float", "°C", "temperature"),
            self.field("humidity", "Humidity", "float", "%", "humidity"),
            self.field("pressure", "Pressure", "float", "hPa", "atmospheric_pressure"),
        ]

    def setup(self):
        o = self.options
        self._bus = self.hal.i2c(o["sda"], o["scl"], o["freq"])
        self._addr = o["address"]
        chip = self._bus.readfrom_mem(self._addr, CHIP_ID, 1)[0]
        if chip != BME280_ID:
            raise OSError("chip id 0x%02x at 0x%02x is not a BME280" % (chip, self._addr))
        self._t = struct.unpack("<Hhh", self._bus.readfrom_mem(self._addr, 0x88, 6))
        self._p = struct.unpack("<H8h", self._bus.readfrom_mem(self._addr, 0x8E, 18))
        h1 = self._bus.readfrom_mem(self._addr, 0xA1, 1)[0]
        e = self._bus.readfrom_mem(self._addr, 0xE1, 7)
        h2, h3 = struct.unpack("<hB", e[0:3])
        h4 = _s12((e[3] << 4) | (e[4] & 0x0F))
        h5 = _s12((e[5] << 4) | (e[4] >> 4))
        h6 = struct.unpack("<b", e[6:7])[0]
        self._h = (h1, h2, h3, h4, h5, h6)
        self._bus.writeto_mem(self._addr, CTRL_HUM, b"\x01")

    async def read(self):
        self._bus.writeto_mem(self._addr, CTRL_MEAS, bytes([FORCED_1X]))
        await asyncio.sleep_ms(10)  # measurement time at 1x oversampling: max 9.3 ms
        d = self._bus.readfrom_mem(self._addr, DATA, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        t_fine = self._t_fine(adc_t)
        return {
            "temperature": t_fine / 5120.0,
            "humidity": self._humidity(adc_h, t_fine),
            "pressure": self._pressure(adc_p, t_fine) / 100.0,
        }

    def _t_fine(self, adc):
        t1, t2, t3 = self._t
        a = (adc / 16384.0 - t1 / 1024.0) * t2
        b = adc / 131072.0 - t1 / 8192.0
        return a + b * b * t3

    def _pressure(self, adc, t_fine):
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = self._p
        v1 = t_fine / 2.0 - 64000.0
        v2 = v1 * v1 * p6 / 32768.0 + v1 * p5 * 2.0
        v2 = v2 / 4.0 + p4 * 65536.0
        v1 = (p3 * v1 * v1 / 524288.0 + p2 * v1) / 524288.0
        v1 = (1.0 + v1 / 32768.0) * p1
        if v1 == 0:
            raise ValueError("BME280 pressure calibration is zero")
        p = (1048576.0 - adc - v2 / 4096.0) * 6250.0 / v1
        return p + (p9 * p * p / 2147483648.0 + p * p8 / 32768.0 + p7) / 16.0

    def _humidity(self, adc, t_fine):
        h1, h2, h3, h4, h5, h6 = self._h
        v = t_fine - 76800.0
        v = (adc - (h4 * 64.0 + h5 / 16384.0 * v)) * (
            h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v))
        )
        v = v * (1.0 - h1 * v / 524288.0)
        return max(0.0, min(100.0, v))


def _s12(value):
    return value - 4096 if value & 0x800 else value
