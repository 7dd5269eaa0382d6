"""DKIM keys through real DNS: the loopback NSD + Unbound of tests/dns_server.py and the
DnsResolver postoffice uses. A key published as a CNAME into a provider's zone (the RFC 8463
key behind sel._domainkey.example.test, tests/zones/), a 2048-bit RSA key split over several
TXT strings, and a key whose DNS times out."""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from dns_server import DnsServers
from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_crypto import load_signing_key
from postoffice.mailauth.dkimkeys import dkim_public_record, generate_dkim_key
from postoffice.mailauth.resolver import DnsResolver

MESSAGE = (b"From: Joe SixPack <joe@example.test>\r\nTo: suzie@example.net\r\n"
           b"Subject: Is dinner ready?\r\nDate: Fri, 11 Jul 2003 21:00:37 -0700\r\n\r\n"
           b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n")
# RFC 8032 §7.1 test 1's secret key: the private half of the RFC 8463 key in provider.test.zone.
RFC8032_SEED = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="


def verify(dns_server: DnsServers, message: bytes) -> list[tuple[str, str, str]]:
    async def run() -> list[tuple[str, str, str]]:
        resolver = DnsResolver((dns_server.address,), timeout=1.0)
        return [(r.result, r.domain, r.problem) for r in await verify_dkim(resolver, message)]
    return asyncio.run(run())


def test_a_key_published_as_a_cname_into_a_provider_zone_verifies(dns_server: DnsServers) -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(RFC8032_SEED))
    signed = sign_message(MESSAGE, "example.test", "sel", key) + MESSAGE
    assert verify(dns_server, signed) == [("pass", "example.test", "")]
    assert verify(dns_server, signed.replace(b"game", b"match")) == [
        ("fail", "example.test", "the body hash did not verify")]


def test_an_rsa_2048_key_in_several_txt_strings_and_a_timeout(dns_server: DnsServers,
                                                              tmp_path: Path) -> None:
    generate_dkim_key(tmp_path / "rsa.pem")
    record = dkim_public_record(tmp_path / "rsa.pem")
    assert len(record) > 255  # one TXT string holds 255 octets: the record needs several
    strings = " ".join(f'"{record[i:i + 200]}"' for i in range(0, len(record), 200))
    dns_server.add_zone("dkim.test", f"mail._domainkey TXT {strings}\n")
    key = load_signing_key((tmp_path / "rsa.pem").read_bytes())
    message = MESSAGE.replace(b"example.test", b"dkim.test")
    signed = sign_message(message, "dkim.test", "mail", key) + message
    assert verify(dns_server, signed) == [("pass", "dkim.test", "")]
    # Nothing under timeout.test is ever answered (tests/dns_server.py).
    slow = message.replace(b"dkim.test", b"dkim.timeout.test")
    slow = sign_message(slow, "dkim.timeout.test", "mail", key) + slow
    [(result, domain, problem)] = verify(dns_server, slow)
    assert (result, domain) == ("temperror", "dkim.timeout.test"), problem
    assert problem.startswith("key lookup failed: ")
    nokey = sign_message(message, "dkim.test", "gone", key) + message
    assert verify(dns_server, nokey) == [("permerror", "dkim.test", "no key at gone._domainkey.dkim.test")]
