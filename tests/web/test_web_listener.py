"""The HTTP(S) listener against real clients (http.client, raw sockets): client autoconfiguration
as Thunderbird, Outlook and iOS fetch it, MTA-STS, ACME HTTP-01, hostile requests, and a
certificate replaced on disk served without a restart."""
from __future__ import annotations

import http.client
import json
import plistlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from live_server import DOMAIN, LiveServer
from postoffice.net.tls import create_self_signed_certificate
from postoffice.queue.mta_sts_policy import parse_policy
from postoffice.setup.autoconfig import AUTODISCOVER_RESPONSE_SCHEMA

MAIL = ["imaps", "imap", "pop3s", "submissions", "submission"]
RESPONSE = "{" + AUTODISCOVER_RESPONSE_SCHEMA + "}"
ADDRESS = f"ann@{DOMAIN}"
POX = (f'<?xml version="1.0" encoding="utf-8"?>'
       f'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
       f"<Request><EMailAddress>{ADDRESS}</EMailAddress>"
       f"<AcceptableResponseSchema>{AUTODISCOVER_RESPONSE_SCHEMA}</AcceptableResponseSchema>"
       f"</Request></Autodiscover>").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("web") / "data", [*MAIL, "http", "https"],
                      limits={"line_timeout": 2.0}).start()
    yield live
    live.stop()


def _tls_context(server: LiveServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.data_dir / "tls" / "cert.pem"))


def fetch(server: LiveServer, path: str, *, method: str = "GET", body: bytes | None = None,
          tls: bool = False, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    if tls:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            "localhost", server.ports["https"], context=_tls_context(server), timeout=30)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.ports["http"], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


# --- Mozilla autoconfig (Thunderbird) --------------------------------------------------------------

@pytest.mark.parametrize("path", ["/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml"])
@pytest.mark.parametrize("tls", [False, True])
def test_thunderbird_finds_the_listeners_as_they_are_bound(server: LiveServer, path: str, tls: bool) -> None:
    status, headers, body = fetch(server, f"{path}?emailaddress={ADDRESS}", tls=tls)
    assert status == 200 and headers["content-type"].startswith("application/xml")
    provider = ElementTree.fromstring(body).find("emailProvider")
    assert provider is not None and provider.get("id") == DOMAIN and provider.findtext("domain") == DOMAIN
    servers = [(s.tag, s.get("type"), s.findtext("hostname"), int(s.findtext("port") or 0), s.findtext("socketType"),
                s.findtext("username"), s.findtext("authentication")) for s in provider
               if s.tag in ("incomingServer", "outgoingServer")]
    host, ports, user, auth = "mail.example.test", server.ports, "%EMAILADDRESS%", "password-cleartext"
    assert servers == [
        ("incomingServer", "imap", host, ports["imaps"], "SSL", user, auth),
        ("incomingServer", "imap", host, ports["imap"], "STARTTLS", user, auth),
        ("incomingServer", "pop3", host, ports["pop3s"], "SSL", user, auth),
        ("outgoingServer", "smtp", host, ports["submissions"], "SSL", user, auth),
        ("outgoingServer", "smtp", host, ports["submission"], "STARTTLS", user, auth),
    ]


def test_autoconfig_without_address_takes_the_domain_from_the_host_name(server: LiveServer) -> None:
    status, _, body = fetch(server, "/mail/config-v1.1.xml", headers={"Host": f"autoconfig.{DOMAIN}"})
    assert status == 200 and ElementTree.fromstring(body).findtext("emailProvider/domain") == DOMAIN


@pytest.mark.parametrize("query, status", [
    ("?emailaddress=ann@elsewhere.example", 404), ("?emailaddress=not-an-address", 400),
    ("?emailaddress=%00@%ff", 400), ("", 404), (f"?emailaddress=a%0Ab@{DOMAIN}", 400),
    ("?emailaddress=" + "a" * 300 + f"@{DOMAIN}", 400),
])
def test_autoconfig_for_other_domains_or_nonsense_is_refused(server: LiveServer, query: str, status: int) -> None:
    got, headers, body = fetch(server, f"/mail/config-v1.1.xml{query}", headers={"Host": "mail.example.test"})
    assert got == status and headers["content-type"].startswith("text/plain") and body.endswith(b".\n")


# --- Microsoft Autodiscover (Outlook) ------------------------------------------------------------

@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"])
def test_outlook_gets_the_schema_required_elements(server: LiveServer, path: str) -> None:
    status, headers, body = fetch(server, path, method="POST", body=POX, tls=True,
                                  headers={"Content-Type": "text/xml"})
    assert status == 200 and headers["content-type"].startswith("application/xml")
    account = ElementTree.fromstring(body).find(f"{RESPONSE}Response/{RESPONSE}Account")
    assert account is not None
    assert (account.findtext(f"{RESPONSE}AccountType"), account.findtext(f"{RESPONSE}Action")) == ("email", "settings")
    found = {p.findtext(f"{RESPONSE}Type"): tuple(p.findtext(f"{RESPONSE}{tag}") for tag in (
        "Server", "Port", "SSL", "Encryption", "LoginName", "SPA", "AuthRequired"))
        for p in account.findall(f"{RESPONSE}Protocol")}
    host = "mail.example.test"
    assert found == {
        "IMAP": (host, str(server.ports["imaps"]), "on", "SSL", ADDRESS, "off", "on"),
        "POP3": (host, str(server.ports["pop3s"]), "on", "SSL", ADDRESS, "off", "on"),
        "SMTP": (host, str(server.ports["submissions"]), "on", "SSL", ADDRESS, "off", "on"),
    }


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
                             for n in range(1, 10))
                  + b"]><Autodiscover><Request><EMailAddress>&lol9;</EMailAddress></Request></Autodiscover>")
XXE = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b"<Autodiscover><Request><EMailAddress>&x;@example.test</EMailAddress></Request></Autodiscover>")


@pytest.mark.parametrize("body, status", [
    (BILLION_LAUGHS, 400), (XXE, 400), (b"<Autodiscover><Request>", 400), (b"", 400),
    (POX.replace(DOMAIN.encode(), b"elsewhere.example"), 404), (b"x" * 1_000_000, 413),
])
def test_hostile_autodiscover_bodies_get_an_error_and_the_server_goes_on(
        server: LiveServer, body: bytes, status: int) -> None:
    started = time.monotonic()
    got, _, text = fetch(server, "/autodiscover/autodiscover.xml", method="POST", body=body)
    assert got == status, text
    assert b"root:" not in text
    assert time.monotonic() - started < 20
    assert fetch(server, "/autodiscover/autodiscover.xml", method="POST", body=POX)[0] == 200


def test_a_huge_chunked_body_is_cut_off(server: LiveServer) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(1000):
            yield b"<a>" * 1000
    conn = http.client.HTTPConnection("127.0.0.1", server.ports["http"], timeout=30)
    try:
        conn.request("POST", "/autodiscover/autodiscover.xml", body=chunks(), encode_chunked=True)
        assert conn.getresponse().status == 413
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending: also a refusal
    finally:
        conn.close()


def test_autodiscover_json_points_outlook_at_the_https_pox_endpoint(server: LiveServer) -> None:
    status, headers, body = fetch(server, f"/autodiscover/autodiscover.json/v1.0/{ADDRESS}?Protocol=AutodiscoverV1", tls=True)
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "Protocol": "AutodiscoverV1",
        "Url": f"https://mail.example.test:{server.ports['https']}/autodiscover/autodiscover.xml"}
    status, _, body = fetch(server, f"/Autodiscover/Autodiscover.json/v1.0/{ADDRESS}?Protocol=ActiveSync")
    assert status == 400 and json.loads(body)["ErrorCode"] == "InvalidProtocol"


# --- Apple --------------------------------------------------------------------------------------

def test_the_mobileconfig_profile_parses_with_plistlib(server: LiveServer) -> None:
    status, headers, body = fetch(server, f"/apple/mobileconfig?emailaddress={ADDRESS}", tls=True)
    assert status == 200 and headers["content-type"] == "application/x-apple-aspen-config"
    assert f'filename="{ADDRESS}.mobileconfig"' in headers["content-disposition"]
    profile = plistlib.loads(body)
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed" and mail["EmailAddress"] == ADDRESS
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "mail.example.test", server.ports["imaps"])
    assert mail["OutgoingMailServerPortNumber"] == server.ports["submissions"]
    assert fetch(server, "/apple/mobileconfig")[0] == 400


def test_a_non_ascii_address_gets_a_profile_with_a_safe_file_name(server: LiveServer) -> None:
    status, headers, body = fetch(server, f"/apple/mobileconfig?emailaddress=j%C3%BCrgen@{DOMAIN}")
    assert status == 200 and f'filename="j_rgen@{DOMAIN}.mobileconfig"' in headers["content-disposition"]
    assert plistlib.loads(body)["PayloadContent"][0]["EmailAddress"] == f"jürgen@{DOMAIN}"


# --- MTA-STS and ACME ---------------------------------------------------------------------------

def test_mta_sts_policy_is_testing_with_the_self_signed_certificate(server: LiveServer) -> None:
    status, headers, body = fetch(server, "/.well-known/mta-sts.txt", tls=True,
                                  headers={"Host": f"mta-sts.{DOMAIN}"})
    assert status == 200 and headers["content-type"].startswith("text/plain")
    policy = parse_policy(body.decode())
    assert (policy.mode, policy.mx, policy.max_age) == ("testing", ("mail.example.test",), 86400)


def test_acme_http01_challenge_is_answered_and_unknown_tokens_are_404(server: LiveServer) -> None:
    assert server.services is not None
    server.services.acme_challenges.put_http("tok-EN_1", "tok-EN_1.thumbprint")
    try:
        status, headers, body = fetch(server, "/.well-known/acme-challenge/tok-EN_1")
        assert (status, body) == (200, b"tok-EN_1.thumbprint")
        assert headers["content-type"] == "application/octet-stream"
    finally:
        server.services.acme_challenges.remove(token="tok-EN_1")
    assert fetch(server, "/.well-known/acme-challenge/tok-EN_1")[0] == 404
    assert fetch(server, "/.well-known/acme-challenge/other")[0] == 404
    assert fetch(server, "/no/such/page")[0] == 404


# --- connections ----------------------------------------------------------------------------------

def test_garbage_gets_400_and_the_server_goes_on(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        reply = sock.recv(100)
    assert reply.startswith(b"HTTP/1.1 4") or reply == b""
    assert fetch(server, f"/mail/config-v1.1.xml?emailaddress={ADDRESS}")[0] == 200


def test_a_client_that_never_finishes_its_request_is_closed(server: LiveServer) -> None:
    # line_timeout is 2 s here: a request head trickling in longer than that is cut off.
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /mail/config-v1.1.xml HTTP/1.1\r\n")
        for _ in range(20):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
            time.sleep(0.5)
        try:
            closed = sock.recv(100) == b""
        except ConnectionResetError:
            closed = True
    assert closed and time.monotonic() - started < 15


def test_http_connections_count_under_the_per_address_limit(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "data", ["http"], limits={"max_connections_per_ip": 2}).start()
    try:
        held = [socket.create_connection(("127.0.0.1", live.ports["http"]), timeout=30) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", live.ports["http"]), timeout=30) as third:
            third.sendall(b"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert third.recv(100) == b""
            except ConnectionResetError:
                pass
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 10
        while True:  # the two slots come back once the server has seen the closes
            conn = http.client.HTTPConnection("127.0.0.1", live.ports["http"], timeout=30)
            try:
                conn.request("GET", "/.well-known/mta-sts.txt")
                assert conn.getresponse().status == 200
                break
            except (ConnectionError, http.client.RemoteDisconnected):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            finally:
                conn.close()
    finally:
        live.stop()


def test_a_new_certificate_on_disk_is_served_without_a_restart(server: LiveServer, tmp_path: Path) -> None:
    def served() -> bytes:
        raw = socket.create_connection(("127.0.0.1", server.ports["https"]), timeout=30)
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            cert = tls.getpeercert(binary_form=True)
        assert cert is not None
        return cert

    cert_file, key_file = server.data_dir / "tls" / "cert.pem", server.data_dir / "tls" / "key.pem"
    before = served()
    create_self_signed_certificate(cert_file, key_file, "mail.example.test", days=30)
    new = ssl.PEM_cert_to_DER_cert(cert_file.read_text())
    assert new != before
    deadline = time.monotonic() + 15
    while served() != new:  # the files are looked at once a second at most
        assert time.monotonic() < deadline, "the new certificate was not served"
        time.sleep(0.2)
    status, _, _ = fetch(server, "/.well-known/mta-sts.txt", tls=True)  # verified against the new one
    assert status == 200
