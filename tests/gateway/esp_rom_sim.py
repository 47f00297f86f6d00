"""A simulated ESP ROM serial bootloader on a pseudo-terminal, for tests with the real esptool.

It speaks the ROM protocol as esptool does without its flasher stub: SLIP frames, SYNC, register
reads and writes (unknown registers read 0), chip detection by GET_SECURITY_INFO (ESP32-C3/S3)
or the magic register (ESP32, ESP8266, whose ROMs refuse GET_SECURITY_INFO).
"""

from __future__ import annotations

import hashlib
import os
import pty
import struct
import threading
import time
import tty

from esptool.targets import CHIP_DEFS

END, ESC = 0xC0, 0xDB
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
SYNC, WRITE_REG, READ_REG, SPI_SET_PARAMS, SPI_ATTACH = 0x08, 0x09, 0x0A, 0x0B, 0x0D
CHANGE_BAUDRATE, SPI_FLASH_MD5, GET_SECURITY_INFO = 0x0F, 0x13, 0x14
INVALID_COMMAND, BAD_CHECKSUM = 0x05, 0x07
FLASH_SIZE = 4 * 1024 * 1024


class EspRomSimulator:
    """A chip's ROM bootloader behind `self.device` (the pty's slave path)."""

    def __init__(
        self,
        chip: str = "esp32",
        corrupt_block: int | None = None,
        block_delay: float = 0.0,
        line_rate: bool = False,
    ) -> None:
        self.chip = CHIP_DEFS[chip]
        self.flash = bytearray(b"\xff" * FLASH_SIZE)
        self.corrupt_block = corrupt_block  # FLASH_DATA sequence number stored with a flipped bit
        self.bauds: list[int] = []  # CHANGE_BAUDRATE requests
        self.block_delay = block_delay  # seconds each FLASH_DATA takes (a slow flash chip)
        # line_rate: take and send bytes no faster than a UART at the current baud rate would
        # (10 bits a byte); a pty alone has no rate.
        self.baud: int | None = 115200 if line_rate else None
        self._write_at = 0
        self._block_size = 0
        # esptool polls this SPI register until the command bit clears: it reads 0 (done).
        self._spi_cmd = getattr(self.chip, "SPI_REG_BASE", None)
        self.registers: dict[int, int] = {}
        if self.chip.USES_MAGIC_VALUE:
            self.registers[self.chip.CHIP_DETECT_MAGIC_REG_ADDR] = self.chip.MAGIC_VALUE
        clkdiv = getattr(self.chip, "UART_CLKDIV_REG", None)
        if clkdiv is not None:  # the UART divider a 40 MHz crystal gives at 115200 baud
            divider = getattr(self.chip, "XTAL_CLK_DIVIDER", 1)
            self.registers[clkdiv] = round(40e6 * divider / 115200)
        self.commands: list[int] = []  # the command codes received, in order
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        self.device = os.ttyname(slave)
        self._slave = slave
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="esp-rom-sim", daemon=True)

    def start(self) -> EspRomSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.close(self._slave)  # wakes the reader
        self._thread.join(timeout=5)
        os.close(self._master)

    def _run(self) -> None:
        frame: bytearray | None = None
        escaped = False
        while not self._stop.is_set():
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            self._pace(len(data))
            for byte in data:
                if byte == END:
                    if frame:
                        self._handle(bytes(frame))
                    frame = bytearray()
                elif frame is None:
                    continue  # noise before the first frame
                elif escaped:
                    frame.append({0xDC: END, 0xDD: ESC}.get(byte, byte))
                    escaped = False
                elif byte == ESC:
                    escaped = True
                else:
                    frame.append(byte)

    def _handle(self, frame: bytes) -> None:
        if len(frame) < 8 or frame[0] != 0:
            return
        command, size, _checksum = struct.unpack_from("<BHI", frame, 1)
        payload = frame[8 : 8 + size]
        self.commands.append(command)
        if command == SYNC:
            for _ in range(8):  # the ROM answers a SYNC with eight replies
                self._reply(command, 0x20120707)
        elif command == READ_REG:
            (address,) = struct.unpack_from("<I", payload)
            self._reply(command, self.registers.get(address, 0))
        elif command == WRITE_REG:
            address, value, mask, _delay = struct.unpack_from("<IIII", payload)
            if address == self._spi_cmd:  # a SPI flash command: answer as RDID (Winbond, 4 MiB)
                self.registers[address + self.chip.SPI_W0_OFFS] = 0x1640EF
                self._reply(command, 0)
                return
            old = self.registers.get(address, 0)
            self.registers[address] = (old & ~mask) | (value & mask)
            self._reply(command, 0)
        elif command == GET_SECURITY_INFO and not self.chip.USES_MAGIC_VALUE:
            info = struct.pack("<IB7sII", 0, 0, b"\0" * 7, self.chip.IMAGE_CHIP_ID, 0)
            self._reply(command, 0, info)
        elif command in (SPI_ATTACH, SPI_SET_PARAMS, FLASH_END):
            self._reply(command, 0)
        elif command == CHANGE_BAUDRATE:
            self.bauds.append(struct.unpack_from("<I", payload)[0])
            self._reply(command, 0)
            if self.baud is not None:
                self.baud = self.bauds[-1]
        elif command == FLASH_BEGIN:
            erase, _blocks, self._block_size, offset = struct.unpack_from("<IIII", payload)
            self.flash[offset : offset + erase] = b"\xff" * erase
            self._write_at = offset
            self._reply(command, 0)
        elif command == FLASH_DATA:
            self._flash_data(payload, _checksum)
        elif command == SPI_FLASH_MD5:
            address, length = struct.unpack_from("<II", payload)
            digest = hashlib.md5(self.flash[address : address + length]).hexdigest()
            self._reply(command, 0, digest.encode())  # the ROM answers in hex digits
        else:
            self._reply(command, 0, status=(1, INVALID_COMMAND))

    def _flash_data(self, payload: bytes, checksum: int) -> None:
        size, sequence = struct.unpack_from("<II", payload)
        data = bytearray(payload[16 : 16 + size])
        expected = 0xEF
        for byte in data:
            expected ^= byte
        if expected != checksum or size != self._block_size:
            self._reply(FLASH_DATA, 0, status=(1, BAD_CHECKSUM))
            return
        if sequence == self.corrupt_block:
            data[0] ^= 0x01
        start = self._write_at + sequence * self._block_size
        self.flash[start : start + size] = data
        time.sleep(self.block_delay)
        self._reply(FLASH_DATA, 0)

    def _reply(self, command: int, value: int, data: bytes = b"",
               status: tuple[int, int] = (0, 0)) -> None:  # fmt: skip
        body = data + bytes(status)
        packet = struct.pack("<BBHI", 1, command, len(body), value) + body
        escaped = packet.replace(bytes([ESC]), b"\xdb\xdd").replace(bytes([END]), b"\xdb\xdc")
        self._pace(len(escaped) + 2)
        os.write(self._master, bytes([END]) + escaped + bytes([END]))

    def _pace(self, count: int) -> None:
        if self.baud:
            time.sleep(count * 10 / self.baud)
