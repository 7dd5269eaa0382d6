"""COMPRESS=DEFLATE (RFC 4978): raw deflate (RFC 1951) in both directions after the OK.

Every write is flushed with Z_SYNC_FLUSH so the client can decode each response as it arrives.
Incoming data is inflated in bounded pieces, and one read may not inflate to more than
`MAX_INFLATE` octets: a few compressed bytes can expand a thousandfold, and the parser's limits
only act on what it is given.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

PIECE = 256 * 1024
MAX_INFLATE = 256 * 1024 * 1024


class CompressionError(Exception):
    """The client's compressed stream is broken or expands beyond any sane message."""


class Deflate:
    __slots__ = ("_in", "_out")

    def __init__(self) -> None:
        self._in = zlib.decompressobj(-zlib.MAX_WBITS)
        self._out = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._out.compress(data) + self._out.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes) -> Iterator[bytes]:
        """The inflated bytes of one read, in pieces of at most PIECE octets."""
        total = 0
        try:
            piece = self._in.decompress(data, PIECE)
            while True:
                total += len(piece)
                if total > MAX_INFLATE:
                    raise CompressionError("compressed data expands too far")
                if piece:
                    yield piece
                if not self._in.unconsumed_tail:
                    return
                piece = self._in.decompress(self._in.unconsumed_tail, PIECE)
        except zlib.error as exc:
            raise CompressionError(f"broken compressed data: {exc}") from None
