"""The diagnostics tests reuse the outbound tests' TLS peers (tests/queue/tls_peers.py: a test CA,
the MTA-STS policy server on 127.0.0.83:443); the `check message` tests share a DKIM key of
message.test published in the loopback DNS server (tests/diagnostics/message_kit.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.diagnostics.message_kit import publish_dkim_key

from dns_server import DnsServers
from postoffice.mailauth.dkim_crypto import SigningKey

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "queue"))


@pytest.fixture(scope="session")
def dkim_key(dns_server: DnsServers) -> SigningKey:
    """The DKIM key of message.test, published in the loopback DNS server (once per run)."""
    return publish_dkim_key(dns_server)
