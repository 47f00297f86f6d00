"""MySensors OTA firmware: images from the firmware library and the answers to a node's requests.

What the node does (MySensors core/MyOTAFirmwareUpdate.cpp for a sketch with
MY_OTA_FIRMWARE_FEATURE on DualOptiboot, MySensorsBootloader.h of MYSBootloader): at start it
sends ST_FIRMWARE_CONFIG_REQUEST with the type, version, block count and CRC it runs. A
ST_FIRMWARE_CONFIG_RESPONSE that differs in any of the four starts an update: the node asks for
blocks `blocks - 1` down to 0 with ST_FIRMWARE_REQUEST (re-asking for a block that got no answer)
and takes only a response for the block it asked for. Then it checks CRC-16/MODBUS over the
`blocks * 16` bytes and, when it matches, reboots into the new firmware, which asks again.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...commands import INVALID_FIRMWARE, NOT_FOUND, CommandError
from . import protocol as ms
from .nodes import FirmwareSource, NodeState

_LOGGER = logging.getLogger(__name__)

_S = ms.Stream
BLOCK = ms.FIRMWARE_BLOCK_SIZE
FILL = 0xFF  # pads the image to whole blocks: the value of erased flash
MAX_BLOCKS = 0xFFFF  # the config's block count is a uint16


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (reflected polynomial 0xA001, start 0xFFFF), as the node computes it."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


@dataclass(frozen=True, slots=True)
class OtaImage:
    """A firmware as the node receives it: flash content from address 0 in whole blocks."""

    type: int
    version: int
    data: bytes  # a multiple of BLOCK bytes
    crc: int

    @property
    def blocks(self) -> int:
        return len(self.data) // BLOCK

    @property
    def config(self) -> ms.FirmwareConfig:
        return ms.FirmwareConfig(self.type, self.version, self.blocks, self.crc)

    def block(self, number: int) -> bytes:
        return self.data[number * BLOCK : (number + 1) * BLOCK]


def make_image(firmware_type: int, version: int, binary: bytes) -> OtaImage:
    """`binary` padded with FILL to whole blocks, with its CRC."""
    data = binary + bytes([FILL]) * (-len(binary) % BLOCK)
    return OtaImage(firmware_type, version, data, crc16_modbus(data))


def image_from_hex(text: bytes, firmware_type: int, version: int) -> OtaImage:
    """The image of an Intel HEX file: its bytes from address 0 (gaps FILL) to its last one."""
    from intelhex import IntelHex, IntelHexError  # noqa: PLC0415

    hexfile = IntelHex()
    try:
        hexfile.loadhex(io.StringIO(text.decode("ascii")))
    except (UnicodeDecodeError, IntelHexError) as err:
        raise CommandError(INVALID_FIRMWARE, f"Intel HEX: {err}") from None
    if not len(hexfile):
        raise CommandError(INVALID_FIRMWARE, "Intel HEX: no data records")
    end = hexfile.maxaddr() + 1
    if end > MAX_BLOCKS * BLOCK:
        raise CommandError(
            INVALID_FIRMWARE,
            f"Intel HEX reaches address 0x{end - 1:x}: MySensors OTA carries at most"
            f" {MAX_BLOCKS * BLOCK} bytes from address 0",
        )
    hexfile.padding = FILL
    return make_image(firmware_type, version, hexfile.tobinstr(start=0, end=end - 1))


def check_entry(entry: Mapping[str, Any]) -> None:
    """invalid_firmware unless a firmware library entry is MySensors Intel HEX."""
    mysensors = entry.get("mysensors")
    if (
        entry.get("target") != "mysensors"
        or entry.get("format") != "intel-hex"
        or not (isinstance(mysensors, Mapping) and {"type", "version"} <= set(mysensors))
    ):
        raise CommandError(
            INVALID_FIRMWARE,
            f"firmware {entry.get('id')} is {entry.get('format')} for {entry.get('target')}:"
            " a MySensors node takes intel-hex firmware of target mysensors",
        )


def load_image(entry: Mapping[str, Any], path: Path) -> OtaImage:
    """(Worker thread) the image of a firmware library entry (see check_entry)."""
    check_entry(entry)
    mysensors = entry["mysensors"]
    try:
        text = path.read_bytes()
    except OSError as err:
        raise CommandError(NOT_FOUND, f"firmware {entry.get('id')}: {err}") from None
    return image_from_hex(text, int(mysensors["type"]), int(mysensors["version"]))


def firmware_reply(
    firmware: FirmwareSource, node: NodeState, message: ms.Message
) -> ms.Message | None:
    """The answer to an ST_FIRMWARE_CONFIG_REQUEST or ST_FIRMWARE_REQUEST (None: none); a config
    request also tells which firmware the node runs. Raises ParseError for a payload that is not
    one, or a block the firmware does not have."""
    if message.type == _S.ST_FIRMWARE_CONFIG_REQUEST:
        request = ms.parse_firmware_config_request(message.payload)
        node.running = (request.type, request.version)
        config = firmware.firmware_for(node.node_id, request)
        if config is None:
            _LOGGER.debug("MySensors node %d runs firmware %d v%d; no update for it",
                          node.number, request.type, request.version)  # fmt: skip
            return None
        kind, payload = _S.ST_FIRMWARE_CONFIG_RESPONSE, ms.encode_firmware_config(config)
    else:
        block_request = ms.parse_firmware_block_request(message.payload)
        block = firmware.firmware_block(node.node_id, block_request)
        if block is None:
            return None
        kind, payload = _S.ST_FIRMWARE_RESPONSE, ms.encode_firmware_block(block_request, block)
    return ms.Message(node.number, ms.NODE_CHILD, ms.Command.STREAM, False, kind, payload)
