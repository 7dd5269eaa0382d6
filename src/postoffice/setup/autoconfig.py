"""What mail clients fetch to set themselves up, and the MTA-STS policy file. Pure: no I/O.

    settings = settings_from_listeners("mail.example.org", {"imaps": [993], "submission": [587]})
    mozilla_autoconfig(settings, "example.org")              -> config-v1.1.xml (Thunderbird)
    autodiscover_xml(settings, "ann@example.org")            -> Autodiscover POX response (Outlook)
    autodiscover_json("AutodiscoverV1", url)                  -> the JSON v2 answer
    apple_mobileconfig(settings, "ann@example.org")          -> an unsigned .mobileconfig (iOS, macOS)
    mta_sts_policy("enforce", ["mail.example.org"])          -> /.well-known/mta-sts.txt (RFC 8461)

The web listener (web/) serves these; `domain records` reuses :func:`mta_sts_policy`.

Rules, and why:
- Only listeners that are configured are advertised, implicit TLS first (RFC 8314 §3: clients
  should prefer it), then STARTTLS; plaintext ports are never offered without STARTTLS, because
  every one of ours offers it. Port 993/995/465 are "SSL", 143/110/587 "STARTTLS", by listener.
- The user name is always the full address (our logins are addresses).
- Clients send the password as typed (over TLS): Mozilla's "password-cleartext", Outlook's
  SPA off, Apple's EmailAuthPassword.
- Request bodies (Autodiscover POX) are parsed with expat and any DOCTYPE refused, so no entity
  can be declared, expanded (billion laughs) or fetched (XXE); callers cap the body's size.
- The .mobileconfig is unsigned (iOS shows "Not Signed" on install); its UUIDs derive from the
  address and host, so installing it again replaces the profile instead of adding a second one.
"""

from __future__ import annotations

import datetime as dt
import json
import plistlib
import uuid
import xml.parsers.expat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from xml.etree import ElementTree

__all__ = [
    "AUTODISCOVER_RESPONSE_SCHEMA", "MAIL_LISTENERS", "AutodiscoverRequestError", "ClientSettings",
    "MailEndpoint", "StsMode", "apple_mobileconfig", "autodiscover_json", "autodiscover_request_address",
    "autodiscover_xml", "mozilla_autoconfig", "mta_sts_mode", "mta_sts_policy",
    "settings_from_listeners",
]

Kind = Literal["imap", "pop3", "smtp"]
Security = Literal["SSL", "STARTTLS"]
StsMode = Literal["enforce", "testing"]

# listener name -> (what it serves, its TLS), in the order clients should prefer them.
MAIL_LISTENERS: dict[str, tuple[Kind, Security]] = {
    "imaps": ("imap", "SSL"), "imap": ("imap", "STARTTLS"),
    "pop3s": ("pop3", "SSL"), "pop3": ("pop3", "STARTTLS"),
    "submissions": ("smtp", "SSL"), "submission": ("smtp", "STARTTLS"),
}

AUTODISCOVER_REQUEST_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTODISCOVER_RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
_AUTODISCOVER = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
# RFC 8461 §3.2 leaves max_age to the domain; a day while testing, a week once enforced.
STS_MAX_AGE = {"testing": 86_400, "enforce": 604_800}


@dataclass(frozen=True, slots=True)
class MailEndpoint:
    kind: Kind
    hostname: str
    port: int
    security: Security


@dataclass(frozen=True, slots=True)
class ClientSettings:
    hostname: str
    endpoints: tuple[MailEndpoint, ...]  # preferred first within each kind

    def of_kind(self, kind: Kind) -> tuple[MailEndpoint, ...]:
        return tuple(e for e in self.endpoints if e.kind == kind)


class AutodiscoverRequestError(ValueError):
    """The POX request is not one we answer; the text says why (for a 400 reply)."""


def settings_from_listeners(hostname: str, ports: Mapping[str, Iterable[int]]) -> ClientSettings:
    """``ports``: listener name (``imaps``, ``submission``, ...) -> the ports it listens on.

    Names other than the six client listeners (``smtp``, ``lmtp``, ``http``) are ignored; a port
    listed twice (two addresses, one port) is advertised once.
    """
    endpoints: list[MailEndpoint] = []
    for name, (kind, security) in MAIL_LISTENERS.items():
        for port in dict.fromkeys(ports.get(name, ())):
            endpoints.append(MailEndpoint(kind, hostname, port, security))
    return ClientSettings(hostname, tuple(endpoints))


# --- Mozilla (Thunderbird, K-9/Thunderbird for Android, Evolution) -------------------------------

def mozilla_autoconfig(settings: ClientSettings, domain: str) -> bytes:
    """``config-v1.1.xml`` for ``domain`` (Mozilla's autoconfig format, clientConfig 1.1)."""
    root = ElementTree.Element("clientConfig", version="1.1")
    provider = ElementTree.SubElement(root, "emailProvider", id=domain)
    _text(provider, "domain", domain)
    _text(provider, "displayName", f"{domain} mail")
    _text(provider, "displayShortName", domain)
    for endpoint in settings.endpoints:
        tag = "outgoingServer" if endpoint.kind == "smtp" else "incomingServer"
        server = ElementTree.SubElement(provider, tag, type=endpoint.kind)
        _text(server, "hostname", endpoint.hostname)
        _text(server, "port", str(endpoint.port))
        _text(server, "socketType", endpoint.security)
        _text(server, "username", "%EMAILADDRESS%")
        _text(server, "authentication", "password-cleartext")
    return _xml(root)


# --- Microsoft Autodiscover (Outlook) -------------------------------------------------------------

def autodiscover_request_address(body: bytes) -> str:
    """The EMailAddress of a POX Autodiscover request; :class:`AutodiscoverRequestError` if the
    body is not XML, declares a DOCTYPE (entities), or names no address."""
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    path: list[str] = []
    found: dict[str, str] = {}

    def refuse(*_: object) -> None:
        raise AutodiscoverRequestError("the request declares a DOCTYPE, which is not allowed")

    def start(name: str, _attrs: object) -> None:
        path.append(name.rpartition(" ")[2])

    def end(_name: str) -> None:
        path.pop()

    def text(data: str) -> None:
        if path[-2:] == ["Request", "EMailAddress"]:
            found["address"] = found.get("address", "") + data

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(body, True)
    except xml.parsers.expat.ExpatError as error:
        raise AutodiscoverRequestError(f"the request is not well-formed XML ({error})") from None
    address = found.get("address", "").strip()
    if "@" not in address:
        raise AutodiscoverRequestError("the request has no Request/EMailAddress")
    return address


def autodiscover_xml(settings: ClientSettings, address: str) -> bytes:
    """The POX response (outlook responseschema 2006a): one Protocol per kind, the preferred
    listener of each, with the elements the schema requires."""
    root = ElementTree.Element("Autodiscover", xmlns=_AUTODISCOVER)
    response = ElementTree.SubElement(root, "Response", xmlns=AUTODISCOVER_RESPONSE_SCHEMA)
    user = ElementTree.SubElement(response, "User")
    _text(user, "DisplayName", address)
    account = ElementTree.SubElement(response, "Account")
    _text(account, "AccountType", "email")
    _text(account, "Action", "settings")
    for kind in ("imap", "pop3", "smtp"):
        chosen = settings.of_kind(kind)
        if not chosen:
            continue
        endpoint = chosen[0]
        protocol = ElementTree.SubElement(account, "Protocol")
        _text(protocol, "Type", {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}[kind])
        _text(protocol, "Server", endpoint.hostname)
        _text(protocol, "Port", str(endpoint.port))
        _text(protocol, "DomainRequired", "off")
        _text(protocol, "LoginName", address)
        _text(protocol, "SPA", "off")
        _text(protocol, "SSL", "on")
        # Encryption overrides SSL where Outlook knows it: "SSL" is implicit TLS, "TLS" STARTTLS.
        _text(protocol, "Encryption", "SSL" if endpoint.security == "SSL" else "TLS")
        _text(protocol, "AuthRequired", "on")
        if kind == "smtp":
            _text(protocol, "UsePOPAuth", "on")
            _text(protocol, "SMTPLast", "off")
    return _xml(root)


def autodiscover_json(protocol: str, pox_url: str) -> tuple[int, bytes]:
    """The Autodiscover v2 (JSON) answer: (HTTP status, body). Outlook asks with
    ``Protocol=AutodiscoverV1`` and follows the URL to the POX endpoint; other protocols (EWS,
    ActiveSync) are Exchange's, which we are not. Every address has the same POX endpoint."""
    if protocol.lower() == "autodiscoverv1":
        return 200, json.dumps({"Protocol": "AutodiscoverV1", "Url": pox_url}).encode()
    return 400, json.dumps({
        "ErrorCode": "InvalidProtocol",
        "ErrorMessage": f"The given protocol value '{protocol}' is invalid. Supported values are 'AutodiscoverV1'.",
    }).encode()


# --- Apple configuration profile ------------------------------------------------------------------

def apple_mobileconfig(settings: ClientSettings, address: str) -> bytes:
    """An unsigned configuration profile with one com.apple.mail.managed payload (IMAP if there
    is an IMAP listener, else POP3) for ``address``. ValueError without incoming or outgoing."""
    incoming = settings.of_kind("imap") or settings.of_kind("pop3")
    outgoing = settings.of_kind("smtp")
    if not incoming or not outgoing:
        raise ValueError("no IMAP or POP3 listener, or no submission listener, to put in a profile")
    inbound, outbound = incoming[0], outgoing[0]
    domain = address.rpartition("@")[2]
    reverse = ".".join(reversed(settings.hostname.split(".")))
    seed = f"{address.lower()} {settings.hostname.lower()}"
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.mail.{uuid.uuid5(uuid.NAMESPACE_URL, 'mail ' + seed)}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "mail " + seed)).upper(),
        "PayloadDisplayName": f"{address} mail",
        "EmailAccountDescription": address,
        "EmailAccountType": "EmailTypeIMAP" if inbound.kind == "imap" else "EmailTypePOP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": inbound.hostname,
        "IncomingMailServerPortNumber": inbound.port,
        # Apple Mail does STARTTLS on 143/587 and TLS on 993/465 when this is true.
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": outbound.hostname,
        "OutgoingMailServerPortNumber": outbound.port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False,
        "PreventAppSheet": False,
        "SMIMEEnabled": False,
        "allowMailDrop": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse}.profile.{uuid.uuid5(uuid.NAMESPACE_URL, 'profile ' + seed)}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "profile " + seed)).upper(),
        "PayloadDisplayName": f"{domain} mail",
        "PayloadDescription": f"Sets up the mail account {address} on {settings.hostname}.",
        "PayloadOrganization": domain,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)


# --- MTA-STS (RFC 8461) ---------------------------------------------------------------------------

def mta_sts_policy(mode: StsMode, mx_hosts: Iterable[str], max_age: int | None = None) -> str:
    """The policy file served at ``https://mta-sts.DOMAIN/.well-known/mta-sts.txt`` (§3.2), lines
    ending in CRLF. ``max_age`` defaults to a day while testing, a week once enforced."""
    hosts = list(dict.fromkeys(h.lower().rstrip(".") for h in mx_hosts))
    if not hosts:
        raise ValueError("an MTA-STS policy in testing or enforce mode needs at least one mx host")
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {h}" for h in hosts),
             f"max_age: {STS_MAX_AGE[mode] if max_age is None else max_age}"]
    return "".join(line + "\r\n" for line in lines)


def mta_sts_mode(cert_pem: bytes | None, now: dt.datetime | None = None) -> StsMode:
    """``testing`` while the certificate cannot pass a sender's verification (missing,
    self-signed or expired: senders with an enforce policy would then refuse to deliver),
    ``enforce`` otherwise. ``cert_pem``: the certificate chain file's contents."""
    from cryptography import x509  # only the MTA-STS answer needs it
    from cryptography.exceptions import InvalidSignature

    if not cert_pem:
        return "testing"
    try:
        leaf = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "testing"
    now = now or dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        return "testing"
    if leaf.issuer == leaf.subject:
        try:
            leaf.verify_directly_issued_by(leaf)
        except (ValueError, TypeError, InvalidSignature):  # a CA's certificate with the same name
            return "enforce"
        return "testing"
    return "enforce"


# --- helpers --------------------------------------------------------------------------------------

def _text(parent: ElementTree.Element, tag: str, value: str) -> None:
    ElementTree.SubElement(parent, tag).text = value


def _xml(root: ElementTree.Element) -> bytes:
    ElementTree.indent(root)
    text: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
