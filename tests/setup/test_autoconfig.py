"""The client set-up documents and the MTA-STS policy, built from listener ports (pure)."""
from __future__ import annotations

import datetime as dt
import json
import plistlib
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.net.tls import create_self_signed_certificate
from postoffice.queue.mta_sts_policy import parse_policy
from postoffice.setup.autoconfig import (
    AUTODISCOVER_RESPONSE_SCHEMA,
    AutodiscoverRequestError,
    apple_mobileconfig,
    autodiscover_json,
    autodiscover_request_address,
    autodiscover_xml,
    mozilla_autoconfig,
    mta_sts_mode,
    mta_sts_policy,
    settings_from_listeners,
)

EVERY = {"smtp": [25], "imaps": [993], "imap": [143], "pop3s": [995], "pop3": [110],
         "submissions": [465], "submission": [587], "lmtp": [24]}
RESPONSE = "{" + AUTODISCOVER_RESPONSE_SCHEMA + "}"


def _servers(xml: bytes) -> list[tuple[str, str, str, str, str, str, str]]:
    root = ElementTree.fromstring(xml)
    return [(s.tag, s.get("type", ""), s.findtext("hostname", ""), s.findtext("port", ""),
             s.findtext("socketType", ""), s.findtext("username", ""), s.findtext("authentication", ""))
            for s in root.find("emailProvider") or []
            if s.tag in ("incomingServer", "outgoingServer")]


def test_mozilla_lists_implicit_tls_first_and_never_port_25_or_lmtp() -> None:
    xml = mozilla_autoconfig(settings_from_listeners("mail.example.org", EVERY), "example.org")
    root = ElementTree.fromstring(xml)
    provider = root.find("emailProvider")
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    assert provider is not None and provider.get("id") == "example.org"
    assert provider.findtext("domain") == "example.org"
    user, auth = "%EMAILADDRESS%", "password-cleartext"
    assert _servers(xml) == [
        ("incomingServer", "imap", "mail.example.org", "993", "SSL", user, auth),
        ("incomingServer", "imap", "mail.example.org", "143", "STARTTLS", user, auth),
        ("incomingServer", "pop3", "mail.example.org", "995", "SSL", user, auth),
        ("incomingServer", "pop3", "mail.example.org", "110", "STARTTLS", user, auth),
        ("outgoingServer", "smtp", "mail.example.org", "465", "SSL", user, auth),
        ("outgoingServer", "smtp", "mail.example.org", "587", "STARTTLS", user, auth),
    ]


def test_only_configured_listeners_are_advertised() -> None:
    settings = settings_from_listeners("mail.example.org", {"imap": [1143, 1143], "submission": [2587]})
    assert [(s[1], s[3], s[4]) for s in _servers(mozilla_autoconfig(settings, "example.org"))] == [
        ("imap", "1143", "STARTTLS"), ("smtp", "2587", "STARTTLS")]
    with pytest.raises(ValueError, match="submission"):
        apple_mobileconfig(settings_from_listeners("h.example", {"imaps": [993]}), "a@example.org")


def test_names_with_markup_characters_are_escaped() -> None:
    xml = mozilla_autoconfig(settings_from_listeners("mail.example.org", EVERY), "a&b<c>.example")
    assert ElementTree.fromstring(xml).findtext("emailProvider/domain") == "a&b<c>.example"


def test_autodiscover_response_has_the_schema_required_elements() -> None:
    xml = autodiscover_xml(settings_from_listeners("mail.example.org", EVERY), "ann@example.org")
    root = ElementTree.fromstring(xml)
    assert root.tag == "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}Autodiscover"
    account = root.find(f"{RESPONSE}Response/{RESPONSE}Account")
    assert account is not None
    assert account.findtext(f"{RESPONSE}AccountType") == "email"
    assert account.findtext(f"{RESPONSE}Action") == "settings"
    protocols = {p.findtext(f"{RESPONSE}Type"): {c.tag.removeprefix(RESPONSE): c.text for c in p}
                 for p in account.findall(f"{RESPONSE}Protocol")}
    assert set(protocols) == {"IMAP", "POP3", "SMTP"}
    for kind, port, encryption in (("IMAP", "993", "SSL"), ("POP3", "995", "SSL"), ("SMTP", "465", "SSL")):
        p = protocols[kind]
        assert (p["Server"], p["Port"], p["SSL"], p["Encryption"]) == ("mail.example.org", port, "on", encryption)
        assert (p["LoginName"], p["SPA"], p["AuthRequired"]) == ("ann@example.org", "off", "on")


def test_autodiscover_starttls_is_encryption_tls() -> None:
    settings = settings_from_listeners("mail.example.org", {"imap": [143], "submission": [587]})
    root = ElementTree.fromstring(autodiscover_xml(settings, "ann@example.org"))
    found = {p.findtext(f"{RESPONSE}Type"): (p.findtext(f"{RESPONSE}Port"), p.findtext(f"{RESPONSE}Encryption"))
             for p in root.iter(f"{RESPONSE}Protocol")}
    assert found == {"IMAP": ("143", "TLS"), "SMTP": ("587", "TLS")}


REQUEST = (b'<?xml version="1.0" encoding="utf-8"?>\r\n'
           b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
           b"<Request><EMailAddress> ann@example.org </EMailAddress>"
           b"<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
           b"</AcceptableResponseSchema></Request></Autodiscover>")
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
          b"<Autodiscover><Request><EMailAddress>&lol2;@example.org</EMailAddress></Request></Autodiscover>")
XXE = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       b"<Autodiscover><Request><EMailAddress>&x;</EMailAddress></Request></Autodiscover>")


def test_autodiscover_request_gives_its_address() -> None:
    assert autodiscover_request_address(REQUEST) == "ann@example.org"


@pytest.mark.parametrize("body, reason", [
    (LAUGHS, "DOCTYPE"), (XXE, "DOCTYPE"), (b"<Autodiscover><Request>", "well-formed"),
    (b"", "well-formed"), (b"<Autodiscover/>", "EMailAddress"), (b"\xff\xfe<a/>", "well-formed"),
    (b"<a>" * 10_000 + b"</a>" * 10_000, "EMailAddress"),
])
def test_hostile_or_broken_autodiscover_requests_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(AutodiscoverRequestError, match=reason):
        autodiscover_request_address(body)


@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: REQUEST.replace(b"ann", t.encode())))
def test_any_request_body_gives_an_address_or_a_refusal(body: bytes) -> None:
    try:
        assert "@" in autodiscover_request_address(body)
    except AutodiscoverRequestError:
        pass


def test_autodiscover_json_points_outlook_at_the_pox_endpoint() -> None:
    url = "https://mail.example.org/autodiscover/autodiscover.xml"
    assert autodiscover_json("autodiscoverv1", url) == (
        200, json.dumps({"Protocol": "AutodiscoverV1", "Url": url}).encode())
    status, body = autodiscover_json("ActiveSync", url)
    assert status == 400 and json.loads(body)["ErrorCode"] == "InvalidProtocol"


def test_mobileconfig_is_a_plist_with_one_mail_payload() -> None:
    settings = settings_from_listeners("mail.example.org", EVERY)
    profile = plistlib.loads(apple_mobileconfig(settings, "ann@example.org"))
    assert profile["PayloadType"] == "Configuration" and profile["PayloadVersion"] == 1
    (mail,) = profile["PayloadContent"]
    assert mail["PayloadType"] == "com.apple.mail.managed"
    assert (mail["EmailAccountType"], mail["EmailAddress"]) == ("EmailTypeIMAP", "ann@example.org")
    assert (mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"],
            mail["IncomingMailServerUseSSL"]) == ("mail.example.org", 993, True)
    assert (mail["OutgoingMailServerHostName"], mail["OutgoingMailServerPortNumber"]) == ("mail.example.org", 465)
    assert mail["IncomingMailServerUsername"] == mail["OutgoingMailServerUsername"] == "ann@example.org"
    # Installing it again replaces the profile: same identifiers for the same address.
    again = plistlib.loads(apple_mobileconfig(settings, "ann@example.org"))
    other = plistlib.loads(apple_mobileconfig(settings, "bob@example.org"))
    assert again["PayloadUUID"] == profile["PayloadUUID"] != other["PayloadUUID"]
    pop_only = settings_from_listeners("mail.example.org", {"pop3s": [995], "submission": [587]})
    assert plistlib.loads(apple_mobileconfig(pop_only, "a@example.org"))["PayloadContent"][0][
        "EmailAccountType"] == "EmailTypePOP"


def test_mta_sts_policy_parses_with_our_own_parser() -> None:
    text = mta_sts_policy("enforce", ["Mail.Example.org.", "mx2.example.org", "mail.example.org"])
    policy = parse_policy(text)
    assert (policy.mode, policy.mx, policy.max_age) == ("enforce", ("mail.example.org", "mx2.example.org"), 604800)
    assert text.startswith("version: STSv1\r\n") and text.endswith("\r\n")
    assert parse_policy(mta_sts_policy("testing", ["mail.example.org"], 3600)).max_age == 3600
    with pytest.raises(ValueError):
        mta_sts_policy("enforce", [])


def test_mta_sts_mode_is_testing_until_the_certificate_is_real(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    create_self_signed_certificate(tmp_path / "c.pem", tmp_path / "k.pem", "mail.example.org")
    assert mta_sts_mode((tmp_path / "c.pem").read_bytes()) == "testing"
    assert mta_sts_mode(None) == "testing"
    assert mta_sts_mode(b"not a certificate") == "testing"

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def issued(days: int) -> bytes:
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.org")]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")]))
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now + dt.timedelta(days=days))
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)

    assert mta_sts_mode(issued(60)) == "enforce"
    assert mta_sts_mode(issued(-1)) == "testing"  # expired
