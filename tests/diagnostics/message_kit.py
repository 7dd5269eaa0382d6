"""Messages for the `check message` tests: composed, DKIM-signed with a key of message.test
published in the loopback DNS server for the run, and received by our (trusted) host."""
from __future__ import annotations

import base64
import email.utils

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dns_server import ZONES, DnsServers
from postoffice.mailauth.dkim import sign_message
from postoffice.mailauth.dkim_crypto import SigningKey, load_signing_key

SELECTOR = "check"
TRUSTED = "mx.inbound.test"  # our server, in the tests: the host that wrote the top Received field


def publish_dkim_key(dns_server: DnsServers) -> SigningKey:
    """An RSA-2048 key for message.test, published in the zone for this run."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    record = " ".join(f'"{part}"' for part in
                      ["v=DKIM1; k=rsa; p=", *(public[i:i + 200] for i in range(0, len(public), 200))])
    zone = "\n".join(line for line in (ZONES / "message.test.zone").read_text().splitlines()
                     if not line.startswith(("$ORIGIN", "$TTL")))
    dns_server.add_zone("message.test", f"{zone}\n{SELECTOR}._domainkey TXT {record}\n")
    return load_signing_key(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def compose(author: str, *, extra: str = "", html: str | None = None) -> bytes:
    head = (f"From: {author}\r\nTo: bob@example.org\r\nSubject: Your account\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {email.utils.make_msgid()}\r\n{extra}")
    if html is None:
        return (head + "\r\nHello Bob, see you on Friday.\r\n").encode()
    return (head + "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + html + "\r\n").encode()


def received(raw: bytes, ip: str, return_path: str, helo: str = "mail.message.test",
             by: str = TRUSTED) -> bytes:
    """RAW as our server stores it: Return-Path and Received on top (RFC 5321 §4.4)."""
    return (f"Return-Path: <{return_path}>\r\nReceived: from {helo} ({helo} [{ip}])\r\n"
            f"\tby {by} (postoffice) with ESMTPS id 0A1B2C;\r\n\t{email.utils.formatdate()}\r\n"
            ).encode() + raw


def signed(raw: bytes, key: SigningKey) -> bytes:
    return sign_message(raw, "message.test", SELECTOR, key) + raw
