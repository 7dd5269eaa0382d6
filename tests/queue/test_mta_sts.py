"""MTA-STS (RFC 8461) end to end on loopback: the policy TXT, MX and mta-sts A records from the
loopback DNS (tests/zones/mtasts.test.zone), the policy over HTTPS from 127.0.0.83:443 with a
certificate of a test CA, aiosmtpd MX hosts offering STARTTLS (tests/queue/tls_peers.py), the
remote transport (queue/mx_transport.py with queue/destination_tls.py), and `postoffice serve`
with `queue show`."""
from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_mx_transport import Sessions, kinds, port_free_on, queued
from tls_peers import MX_GOOD, MX_WRONG, PolicyServer, StartTlsPeer, TestCa

from cli_run import po
from dns_server import DnsServers
from postoffice.mailauth.resolver import DnsResolver
from postoffice.queue.destination_tls import TlsPolicies
from postoffice.queue.mta_sts import MtaSts
from postoffice.queue.mx_transport import MxTransport
from postoffice.queue.outcomes import RecipientOutcome
from serve_process import Serve, enqueue, init_data

BODY = b"From: <alice@example.org>\r\nSubject: over TLS\r\n\r\nHello.\r\n"
TEST_SECONDS = 60


def policy(mode: str, *mx: str) -> str:
    return "version: STSv1\r\nmode: " + mode + "\r\n" + "".join(f"mx: {m}\r\n" for m in mx) + "max_age: 86400\r\n"


POLICIES = {
    "mta-sts.enforce.mtasts.test": policy("enforce", "mx-wrong.mtasts.test"),
    "mta-sts.testing.mtasts.test": policy("testing", "mx-wrong.mtasts.test"),
    "mta-sts.good.mtasts.test": policy("enforce", "*.mtasts.test"),
    "mta-sts.stranger.mtasts.test": policy("enforce", "mx.elsewhere.test", "*.elsewhere.test"),
}


@pytest.fixture
def ca(tmp_path: Path) -> TestCa:
    return TestCa(tmp_path / "ca")


@pytest.fixture
def port() -> int:
    return port_free_on(MX_WRONG, MX_GOOD)


@pytest.fixture
def mx_hosts(ca: TestCa, port: int) -> Iterator[dict[str, StartTlsPeer]]:
    peers = {"wrong": StartTlsPeer(ca, MX_WRONG, port, "wrong.mtasts.test").start(),
             "good": StartTlsPeer(ca, MX_GOOD, port, "mx-good.mtasts.test").start()}
    yield peers
    for peer in peers.values():
        peer.stop()


@pytest.fixture
def policy_server(ca: TestCa) -> Iterator[PolicyServer]:
    with PolicyServer(ca, POLICIES) as server:
        yield server


def sts_transport(dns_server: DnsServers, port: int, ca: TestCa, cache_file: Path,
                  sessions: Sessions | None = None) -> MxTransport:
    resolver = DnsResolver((dns_server.address,), timeout=3.0)
    sts = MtaSts(resolver, cache_file=cache_file, ssl_context=ca.context(), timeout=5.0)
    return MxTransport(resolver, open_session=sessions or Sessions(), mx_port=port,
                       tls_policies=TlsPolicies(mta_sts=sts, dane=resolver, context=ca.context()))


async def send(mx: MxTransport, recipient: str) -> RecipientOutcome:
    try:
        (outcome,) = await asyncio.wait_for(mx.deliver(queued(recipient), BODY, (recipient,)), TEST_SECONDS)
    finally:
        await mx.close()
    return outcome


async def test_enforce_with_a_certificate_for_the_wrong_name_is_deferred_never_sent_in_clear(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer],
        policy_server: PolicyServer) -> None:
    outcome = await send(sts_transport(dns_server, port, ca, tmp_path / "sts.json"), "bob@enforce.mtasts.test")
    assert outcome.kind == "deferred" and outcome.reply is None
    assert "MTA-STS policy requires TLS" in outcome.reason, outcome.reason
    assert "certificate not valid for mx-wrong.mtasts.test" in outcome.reason
    assert "mismatch" in outcome.reason.lower(), outcome.reason
    assert outcome.tls is not None and outcome.tls.policy == "mta-sts" and not outcome.tls.used
    assert mx_hosts["wrong"].envelopes == []  # not in clear, not at all
    assert policy_server.requests == ["mta-sts.enforce.mtasts.test/.well-known/mta-sts.txt"]


async def test_enforce_with_a_good_certificate_delivers_over_verified_tls(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer],
        policy_server: PolicyServer) -> None:
    outcome = await send(sts_transport(dns_server, port, ca, tmp_path / "sts.json"), "bob@good.mtasts.test")
    assert outcome.kind == "delivered", outcome
    tls = outcome.tls
    assert tls is not None and tls.used and tls.verified and tls.policy == "mta-sts"
    # mx-good's TLSA record comes without DNSSEC (the zone is unsigned): noted, not used.
    assert "not DNSSEC-validated" in tls.failure and "sent without DANE" in tls.failure, tls
    assert [e.rcpt_tos for e in mx_hosts["good"].envelopes] == [["bob@good.mtasts.test"]]


async def test_testing_mode_delivers_and_records_the_failure(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer],
        policy_server: PolicyServer) -> None:
    outcome = await send(sts_transport(dns_server, port, ca, tmp_path / "sts.json"), "bob@testing.mtasts.test")
    assert outcome.kind == "delivered", outcome
    tls = outcome.tls
    assert tls is not None and tls.used and not tls.verified and tls.policy == "mta-sts"
    assert "certificate not valid for mx-wrong.mtasts.test" in tls.failure, tls
    assert len(mx_hosts["wrong"].envelopes) == 1  # still encrypted, just not verified


async def test_an_enforce_policy_naming_none_of_the_mx_hosts_defers_without_a_connection(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer],
        policy_server: PolicyServer) -> None:
    sessions = Sessions()
    outcome = await send(sts_transport(dns_server, port, ca, tmp_path / "sts.json", sessions),
                         "bob@stranger.mtasts.test")
    assert outcome.kind == "deferred"
    assert "MTA-STS policy of stranger.mtasts.test" in outcome.reason
    assert "names none of its MX hosts (mx-good.mtasts.test)" in outcome.reason, outcome.reason
    assert sessions.opened == [] and mx_hosts["good"].envelopes == []


async def test_a_policy_that_cannot_be_fetched_and_is_not_cached_leaves_opportunistic_tls(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer]) -> None:
    # RFC 8461 §5: nothing listens at mta-sts.unreachable.mtasts.test (127.0.0.85)
    outcome = await send(sts_transport(dns_server, port, ca, tmp_path / "sts.json"), "bob@unreachable.mtasts.test")
    assert outcome.kind == "delivered", outcome
    tls = outcome.tls
    assert tls is not None and tls.used and not tls.verified and tls.policy == "opportunistic"
    assert "MTA-STS policy of unreachable.mtasts.test could not be fetched" in tls.failure, tls
    assert "127.0.0.85" in tls.failure and "refused" in tls.failure


async def test_a_cached_policy_survives_a_restart_when_the_policy_server_is_gone(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer]) -> None:
    cache = tmp_path / "data" / "mta-sts-cache.json"
    cache.parent.mkdir()
    with PolicyServer(ca, POLICIES):
        resolver = DnsResolver((dns_server.address,), timeout=3.0)
        found = await MtaSts(resolver, cache_file=cache, ssl_context=ca.context()).lookup("enforce.mtasts.test")
        assert found.source == "fetched" and found.policy is not None and found.policy.mode == "enforce"
    stored = json.loads(cache.read_text())["policies"]["enforce.mtasts.test"]
    assert stored["id"] == "20261206T1" and stored["mx"] == ["mx-wrong.mtasts.test"]

    # "Restarted": a new transport on the same cache file, no policy server any more.
    outcome = await send(sts_transport(dns_server, port, ca, cache), "bob@enforce.mtasts.test")
    assert outcome.kind == "deferred" and "MTA-STS policy requires TLS" in outcome.reason, outcome
    assert mx_hosts["wrong"].envelopes == []
    # Without the cache the same situation is opportunistic (what the cache protects against).
    outcome = await send(sts_transport(dns_server, port, ca, tmp_path / "empty.json"), "bob@enforce.mtasts.test")
    assert outcome.kind == "delivered" and outcome.tls is not None and outcome.tls.policy == "opportunistic"


async def test_concurrent_deliveries_to_one_domain_fetch_its_policy_once(
        tmp_path: Path, dns_server: DnsServers, port: int, ca: TestCa, mx_hosts: dict[str, StartTlsPeer],
        policy_server: PolicyServer) -> None:
    mx = sts_transport(dns_server, port, ca, tmp_path / "sts.json")
    try:
        done = await asyncio.wait_for(asyncio.gather(*(
            mx.deliver(queued(f"u{n}@good.mtasts.test"), BODY, (f"u{n}@good.mtasts.test",)) for n in range(4))),
            TEST_SECONDS)
    finally:
        await mx.close()
    assert [kinds(o)[0][1] for o in done] == ["delivered"] * 4
    assert policy_server.requests == ["mta-sts.good.mtasts.test/.well-known/mta-sts.txt"]


# --- `postoffice serve` and `queue show` --------------------------------------------------------------


def test_queue_show_names_mta_sts_and_the_name_mismatch(tmp_path: Path, dns_server: DnsServers, port: int,
                                                       ca: TestCa, mx_hosts: dict[str, StartTlsPeer],
                                                       policy_server: PolicyServer) -> None:
    data = init_data(tmp_path / "data", ("alice@example.org",),
                     outbound=f'mx_port = {port}\nca_file = "{ca.ca_file}"')
    config = (data / "postoffice.toml").read_text()
    (data / "postoffice.toml").write_text(
        re.sub(r"^nameservers = .*$", f'nameservers = ["{dns_server.nameserver}"]', config, flags=re.M))
    (queue_id,) = enqueue(data, [("alice@example.org", BODY, ["bob@enforce.mtasts.test"])])
    server = Serve(data).started()
    try:
        deadline = time.monotonic() + TEST_SECONDS
        while not (entry := json.loads(po("queue", "show", str(queue_id), "--json", data=data).stdout))["attempts"]:
            assert time.monotonic() < deadline, "no attempt within a minute"
            time.sleep(0.3)
        (attempt,) = entry["attempts"]
        assert attempt["outcome"] == "deferred" and attempt["host"] == "mx-wrong.mtasts.test"
        assert "MTA-STS policy requires TLS" in attempt["reply"], attempt
        assert "certificate not valid for mx-wrong.mtasts.test" in attempt["reply"]
        assert "mismatch" in attempt["reply"].lower()
        assert attempt["tls"].startswith("none (") and "mismatch" in attempt["tls"].lower(), attempt
        text = po("queue", "show", str(queue_id), data=data).stdout
        assert "MTA-STS policy requires TLS" in text
        assert mx_hosts["wrong"].envelopes == []
    finally:
        assert "Traceback" not in server.stop()
    assert json.loads((data / "mta-sts-cache.json").read_text())["policies"]["enforce.mtasts.test"]["mode"] == "enforce"
