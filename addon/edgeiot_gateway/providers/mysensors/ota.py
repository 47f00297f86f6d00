"""OTA firmware requests of MySensors bootloaders, answered from a FirmwareSource (the seam where
a firmware store plugs in); without one they stay unanswered and the node keeps its firmware."""

from __future__ import annotations

import logging

from . import protocol as ms
from .nodes import FirmwareSource, NodeState

_LOGGER = logging.getLogger(__name__)

_S = ms.Stream


def firmware_reply(
    firmware: FirmwareSource | None, node: NodeState, message: ms.Message
) -> ms.Message | None:
    """The answer to an ST_FIRMWARE_CONFIG_REQUEST or ST_FIRMWARE_REQUEST (None: none);
    raises ParseError for a payload that is not one."""
    if message.type == _S.ST_FIRMWARE_CONFIG_REQUEST:
        request = ms.parse_firmware_config_request(message.payload)
        config = firmware.firmware_for(node.node_id, request) if firmware else None
        if config is None:
            _LOGGER.debug("MySensors node %d runs firmware %d v%d; no update for it",
                          node.number, request.type, request.version)  # fmt: skip
            return None
        kind, payload = _S.ST_FIRMWARE_CONFIG_RESPONSE, ms.encode_firmware_config(config)
    else:
        block_request = ms.parse_firmware_block_request(message.payload)
        block = firmware.firmware_block(node.node_id, block_request) if firmware else None
        if block is None:
            return None
        kind, payload = _S.ST_FIRMWARE_RESPONSE, ms.encode_firmware_block(block_request, block)
    return ms.Message(node.number, ms.NODE_CHILD, ms.Command.STREAM, False, kind, payload)
