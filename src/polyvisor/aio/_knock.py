"""Knocking on a guest's SSH port from the event loop: :class:`~polyvisor.verbs.ops.Knock` without a thread."""

from __future__ import annotations

import asyncio
import contextlib

from polyvisor.provisioning.readiness import BANNER_LIMIT, banner_complete, socket_error
from polyvisor.verbs.ops import Knock, KnockReply

__all__ = ["knock"]


async def knock(op: Knock) -> KnockReply:
    """Connect, read the server's first words (up to its identification line), close; all within ``op.seconds``."""
    data = bytearray()

    async def talk() -> None:
        reader, writer = await asyncio.open_connection(op.host, op.port)
        try:
            while not banner_complete(bytes(data)):
                chunk = await reader.read(BANNER_LIMIT - len(data))
                if not chunk:
                    break
                data.extend(chunk)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    try:
        await asyncio.wait_for(talk(), op.seconds)
    except (TimeoutError, OSError) as error:
        return KnockReply(bytes(data), socket_error(error))
    return KnockReply(bytes(data))
