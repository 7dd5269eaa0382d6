"""COMPRESS=DEFLATE (RFC 4978) over a real socket, with zlib on the client side."""
from __future__ import annotations

import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

USER = "bob@example.test"
MESSAGE = b"Subject: squeeze\r\n\r\n" + b"compressible text " * 2000 + b"\r\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap"]).start()
    live.add_user(USER)
    yield live
    live.stop()


class Compressed:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.out = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.received = b""
        self.wire = 0

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def until(self, marker: bytes) -> bytes:
        while marker not in self.received:
            chunk = self.sock.recv(65536)
            assert chunk, self.received[-200:]
            self.wire += len(chunk)
            self.received += self.inflate.decompress(chunk)
        data, _, self.received = self.received.partition(marker)
        return data + marker


def plain_command(sock: socket.socket, line: bytes, tag: bytes) -> bytes:
    sock.sendall(line)
    data = b""
    while tag + b" " not in data:
        data += sock.recv(65536)
    return data


def test_compressed_session(server: LiveServer) -> None:
    sock = socket.create_connection(("127.0.0.1", server.ports["imap"]), timeout=10)
    assert sock.recv(4096).startswith(b"* OK")
    reply = plain_command(sock, f'a LOGIN {USER} "{PASSWORD}"\r\n'.encode(), b"a")
    assert b"COMPRESS=DEFLATE" in reply
    assert b"b OK" in plain_command(sock, b"b COMPRESS DEFLATE\r\n", b"b")
    z = Compressed(sock)
    z.send(b"c APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
    assert z.until(b"\r\n").startswith(b"c OK [APPENDUID")
    z.send(b"d SELECT INBOX\r\ne FETCH 1 BODY[]\r\n")
    data = z.until(b"e OK FETCH completed\r\n")
    assert MESSAGE in data
    assert z.wire < len(MESSAGE) / 10  # it really is compressed on the wire
    z.send(b"f COMPRESS DEFLATE\r\n")
    assert b"f NO [COMPRESSIONACTIVE]" in z.until(b"\r\n")
    sock.sendall(b"\x00garbage that is no deflate stream\xff" * 10)  # broken compression: BYE
    rest = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    assert b"* BYE" in z.inflate.decompress(rest)
