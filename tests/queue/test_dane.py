"""DANE for outbound SMTP (RFC 7672, queue/dane.py): TLSA matching on certificates made here with
`cryptography`; the resolver's ``authenticated`` flag (the AD bit, believed only from loopback);
delivery through the remote transport: without DNSSEC validation (NSD + Unbound serve an unsigned
zone) mail goes without DANE, and with a validated answer (a DNS server of the test's own that
sets AD, standing in for a local validating resolver) the certificate must match the TLSA records."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from test_mx_transport import Sessions, port_free_on, queued
from tls_peers import MX_GOOD, StartTlsPeer, TestCa

from dns_server import BrokenDnsServer, DnsServers
from postoffice.config import ListenAddress
from postoffice.mailauth.dns_types import TlsaRecord
from postoffice.mailauth.resolver import DnsResolver
from postoffice.queue.dane import check_tlsa, dane_records, dane_verdict
from postoffice.queue.destination_tls import TlsPolicies
from postoffice.queue.mta_sts import MtaSts
from postoffice.queue.mx_transport import MxTransport
from postoffice.queue.outcomes import RecipientOutcome

BODY = b"From: <alice@example.org>\r\nSubject: DANE\r\n\r\nHello.\r\n"
NOW = dt.datetime.now(dt.UTC)


# --- certificates and TLSA matching -----------------------------------------------------------------


def _certificate(subject: str, issuer_key: ec.EllipticCurvePrivateKey | None = None,
                 issuer: x509.Certificate | None = None, *, names: tuple[str, ...] = (), ca: bool = False,
                 expired: bool = False) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    start = NOW - dt.timedelta(days=400 if expired else 1)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + dt.timedelta(days=30 if expired else 60))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                                        critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.DER)


def tlsa(usage: int, selector: int, matching: int, certificate: x509.Certificate) -> TlsaRecord:
    data = der(certificate) if selector == 0 else certificate.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if matching == 1:
        data = hashlib.sha256(data).digest()
    elif matching == 2:
        data = hashlib.sha512(data).digest()
    return TlsaRecord(usage, selector, matching, data)


@pytest.fixture(scope="module")
def chain() -> dict[str, x509.Certificate]:
    root, root_key = _certificate("Root", ca=True)
    intermediate, intermediate_key = _certificate("Intermediate", root_key, root, ca=True)
    leaf, _ = _certificate("mx1.example.org", intermediate_key, intermediate, names=("mx1.example.org",))
    wildcard, _ = _certificate("wild", intermediate_key, intermediate, names=("*.example.org",))
    other, _ = _certificate("other", names=("mx1.example.org",))  # self-signed, unrelated
    expired, _ = _certificate("old", names=("elsewhere.test",), expired=True)
    return {"root": root, "intermediate": intermediate, "leaf": leaf, "wildcard": wildcard,
            "other": other, "expired": expired}


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matching", [0, 1, 2])
def test_dane_ee_matches_the_servers_own_certificate_by_every_selector_and_matching_type(
        chain: dict[str, x509.Certificate], selector: int, matching: int) -> None:
    record = tlsa(3, selector, matching, chain["leaf"])
    assert check_tlsa([record], [der(chain["leaf"]), der(chain["intermediate"])], "mx1.example.org") is None
    problem = check_tlsa([record], [der(chain["other"])], "mx1.example.org")
    assert problem == "no TLSA record of mx1.example.org matches the certificate it presented"


def test_dane_ee_ignores_names_and_dates(chain: dict[str, x509.Certificate]) -> None:
    # RFC 7672 §3.1.1: the key is what is pinned
    assert check_tlsa([tlsa(3, 1, 1, chain["expired"])], [der(chain["expired"])], "mx1.example.org") is None


def test_dane_ta_needs_a_signed_chain_up_to_the_anchor_and_the_mx_name(chain: dict[str, x509.Certificate]) -> None:
    sent = [der(chain["leaf"]), der(chain["intermediate"]), der(chain["root"])]
    for anchor in ("intermediate", "root"):
        assert check_tlsa([tlsa(2, 0, 1, chain[anchor])], sent, "mx1.example.org") is None
        assert check_tlsa([tlsa(2, 1, 2, chain[anchor])], sent, "MX1.example.org.") is None
    wildcard = [der(chain["wildcard"]), der(chain["intermediate"])]
    assert check_tlsa([tlsa(2, 0, 1, chain["intermediate"])], wildcard, "mx7.example.org") is None
    assert "does not name a.mx7.example.org" in (
        check_tlsa([tlsa(2, 0, 1, chain["intermediate"])], wildcard, "a.mx7.example.org") or "")
    assert "does not name mx2.example.org" in (
        check_tlsa([tlsa(2, 0, 1, chain["root"])], sent, "mx2.example.org") or "")
    # The anchor is in the chain but did not sign the certificate below it.
    forged = [der(chain["other"]), der(chain["intermediate"])]
    assert check_tlsa([tlsa(2, 0, 1, chain["intermediate"])], forged, "mx1.example.org") is not None


def test_a_dane_ta_record_set_with_only_the_leaf_known_is_accepted_unauthenticated(
        chain: dict[str, x509.Certificate]) -> None:
    """Python < 3.13 shows only the server's certificate: DANE-TA cannot be checked."""
    accepted, note = dane_verdict([tlsa(2, 0, 1, chain["root"])], [der(chain["leaf"])], "mx1.example.org")
    assert accepted and "DANE-TA records not checked" in note
    accepted, note = dane_verdict([tlsa(3, 1, 1, chain["other"])], [der(chain["leaf"])], "mx1.example.org")
    assert not accepted and "no TLSA record" in note
    assert dane_verdict([tlsa(3, 1, 1, chain["leaf"])], [der(chain["leaf"])], "mx1.example.org") == (True, "")


# --- the resolver: TLSA records and the AD bit ---------------------------------------------------------


def validating_dns(records: dict[tuple[str, str], list[str]], *, ad: bool = True) -> Callable[[bytes, str], bytes]:
    """A stand-in for a local validating resolver: answers from ``records`` (name, type) -> texts,
    with the AD bit set when ``ad``; NXDOMAIN for anything else."""
    def respond(query: bytes, transport: str) -> bytes:
        question = dns.message.from_wire(query)
        response = dns.message.make_response(question)
        asked = question.question[0]
        texts = records.get((asked.name.to_text().lower(), dns.rdatatype.to_text(asked.rdtype)))
        if texts:
            response.answer.append(dns.rrset.from_text_list(asked.name, 300, dns.rdataclass.IN, asked.rdtype, texts))
        elif not any(name == asked.name.to_text().lower() for name, _ in records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        if ad:
            response.flags |= dns.flags.AD
        wire = response.to_wire()
        return wire if transport == "udp" else len(wire).to_bytes(2, "big") + wire
    return respond


async def test_the_ad_bit_counts_only_from_a_resolver_on_this_machine() -> None:
    records = {("_25._tcp.mx.dane.test.", "TLSA"): ["3 1 1 " + "ab" * 32]}
    with BrokenDnsServer(validating_dns(records)) as server:
        answer = await DnsResolver((server.address,), timeout=2.0).tlsa("_25._tcp.mx.dane.test")
        assert answer.authenticated and answer.records == (TlsaRecord(3, 1, 1, bytes.fromhex("ab" * 32)),)
        # The same answer "from" a server elsewhere (its AD bit could be forged on the way).
        remote = DnsResolver((server.address,), timeout=2.0)
        remote.local = False
        assert not (await remote.tlsa("_25._tcp.mx.dane.test")).authenticated
    with BrokenDnsServer(validating_dns(records, ad=False)) as server:
        resolver = DnsResolver((server.address,), timeout=2.0)
        found = await dane_records(resolver, "mx.dane.test")
        assert not found.usable and "not DNSSEC-validated" in found.problem
    assert not DnsResolver((ListenAddress("192.0.2.53", 53),), timeout=1.0).local


async def test_unbound_without_dnssec_gives_tlsa_records_that_are_not_authenticated(dns_server: DnsServers) -> None:
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    answer = await resolver.tlsa("_25._tcp.mx-good.mtasts.test")
    assert len(answer.records) == 1 and answer.records[0].usage == 3 and not answer.authenticated


# --- delivery -------------------------------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def port() -> int:
    return port_free_on(MX_GOOD)


@pytest.fixture
def mx_good(ca: TestCa, port: int) -> Iterator[StartTlsPeer]:
    peer = StartTlsPeer(ca, MX_GOOD, port, "mx-good.mtasts.test").start()
    yield peer
    peer.stop()


async def send(mx: MxTransport, recipient: str) -> RecipientOutcome:
    try:
        (outcome,) = await asyncio.wait_for(mx.deliver(queued(recipient), BODY, (recipient,)), 60)
    finally:
        await mx.close()
    return outcome


async def test_without_dnssec_validation_delivery_proceeds_without_dane(
        dns_server: DnsServers, port: int, mx_good: StartTlsPeer) -> None:
    # dane.mtasts.test's MX has a TLSA record that matches nothing; unvalidated, it is not used.
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    mx = MxTransport(resolver, open_session=Sessions(), mx_port=port, tls_policies=TlsPolicies(dane=resolver))
    outcome = await send(mx, "bob@dane.mtasts.test")
    assert outcome.kind == "delivered", outcome
    assert outcome.tls is not None and outcome.tls.used and outcome.tls.policy == "opportunistic"
    assert "not DNSSEC-validated" in outcome.tls.failure
    assert len(mx_good.envelopes) == 1


def server_certificate(ca: TestCa) -> x509.Certificate:
    return x509.load_pem_x509_certificate((ca.dir / "mx-good.mtasts.test.crt").read_bytes())


@pytest.mark.parametrize("matches", [True, False])
async def test_validated_tlsa_records_decide_the_session(ca: TestCa, port: int, mx_good: StartTlsPeer,
                                                         matches: bool) -> None:
    own = server_certificate(ca)
    pinned = own if matches else _certificate("someone else")[0]
    record = tlsa(3, 1, 1, pinned)
    records = {("dane.example.test.", "MX"): ["10 mx.dane.example.test."],
               ("mx.dane.example.test.", "A"): [MX_GOOD],
               ("_25._tcp.mx.dane.example.test.", "TLSA"): [f"3 1 1 {record.data.hex()}"]}
    with BrokenDnsServer(validating_dns(records)) as server:
        resolver = DnsResolver((server.address,), timeout=2.0)
        mx = MxTransport(resolver, open_session=Sessions(), mx_port=port, tls_policies=TlsPolicies(dane=resolver))
        outcome = await send(mx, "bob@dane.example.test")
    if matches:
        assert outcome.kind == "delivered", outcome
        tls = outcome.tls
        assert tls is not None and tls.used and tls.verified and tls.policy == "dane" and tls.failure == ""
        assert len(mx_good.envelopes) == 1
    else:
        assert outcome.kind == "deferred"
        assert "DANE (TLSA records) requires TLS" in outcome.reason, outcome.reason
        assert "no TLSA record of mx.dane.example.test matches" in outcome.reason
        assert mx_good.envelopes == []  # never in clear


async def test_an_address_literal_asks_dns_for_no_policy(tmp_path: Path, port: int, mx_good: StartTlsPeer) -> None:
    """``bob@[127.0.0.86]`` has no domain to publish MTA-STS or TLSA records: no DNS question."""
    with BrokenDnsServer(validating_dns({})) as server:
        resolver = DnsResolver((server.address,), timeout=2.0)
        policies = TlsPolicies(mta_sts=MtaSts(resolver, cache_file=tmp_path / "sts.json"), dane=resolver)
        mx = MxTransport(resolver, open_session=Sessions(), mx_port=port, tls_policies=policies)
        outcome = await send(mx, f"bob@[{MX_GOOD}]")
        assert server.received == {"udp": 0, "tcp": 0}
    assert outcome.kind == "delivered" and outcome.tls is not None and outcome.tls.policy == "opportunistic"
