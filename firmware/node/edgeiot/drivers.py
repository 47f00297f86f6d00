"""The driver types a node config may name, by `type`."""

from edgeiot.gpio import Adc, Battery, Button, Pwm, Relay
from edgeiot.sensors import Bme280, Dht22, Ds18b20

DRIVERS = {cls.TYPE: cls for cls in (Relay, Button, Adc, Pwm, Battery, Ds18b20, Dht22, Bme280)}
