"""Closing a client stream the same way everywhere: never raising, never waiting long."""

from __future__ import annotations

import asyncio
import contextlib


async def close_stream(writer: asyncio.StreamWriter | None, timeout: float = 2.0) -> None:
    """Close `writer` (None: nothing to do) and wait up to `timeout` for the transport to go.

    Errors are ignored: the connection is being given up, and a peer that already reset it, or a
    TLS close that cannot finish, must not turn a finished job into a failure."""
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
