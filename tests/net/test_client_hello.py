"""offered_alpn: ClientHello bytes in, ALPN names out (RFC 8446 §4.1.2, RFC 7301 §3.1)."""
from __future__ import annotations

import ssl

import pytest

from postoffice.net.client_hello import offered_alpn


def client_hello(alpn: list[str] | None, *, max_version: ssl.TLSVersion | None = None) -> bytes:
    """The ClientHello handshake message a real stdlib client sends (record header removed)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    if max_version is not None:
        context.maximum_version = max_version
    outgoing = ssl.MemoryBIO()
    client = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="mail.example.test")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    record = outgoing.read()
    assert record[0] == 22  # a handshake record
    return record[5:5 + int.from_bytes(record[3:5], "big")]


@pytest.mark.parametrize(("alpn", "expected"), [
    (["acme-tls/1"], (b"acme-tls/1",)),
    (["h2", "http/1.1"], (b"h2", b"http/1.1")),
    (None, ()),
])
def test_offered_protocols_of_a_real_client_hello(alpn: list[str] | None,
                                                  expected: tuple[bytes, ...]) -> None:
    assert offered_alpn(client_hello(alpn)) == expected


def test_tls_1_2_client_hello_is_read_too() -> None:
    hello = client_hello(["acme-tls/1"], max_version=ssl.TLSVersion.TLSv1_2)
    assert offered_alpn(hello) == (b"acme-tls/1",)


def test_every_truncation_reads_as_no_protocols() -> None:
    hello = client_hello(["acme-tls/1"])
    for end in range(len(hello)):
        assert offered_alpn(hello[:end]) in ((), (b"acme-tls/1",)), end
    assert offered_alpn(hello[:60]) == ()  # cut before the extensions: nothing is guessed


def test_other_handshake_messages_and_garbage_are_not_client_hellos() -> None:
    assert offered_alpn(b"\x02" + client_hello(["acme-tls/1"])[1:]) == ()  # a ServerHello
    assert offered_alpn(b"") == ()
    assert offered_alpn(b"\x01\xff\xff\xff" + b"\x00" * 10) == ()


def test_client_hello_without_extensions() -> None:
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    assert offered_alpn(b"\x01" + len(body).to_bytes(3, "big") + body) == ()
