"""The DNS records a domain served here needs, each with the one-line reason to publish it.
Pure: the caller (setup/record_inputs.py) reads config, keys and certificate into
:class:`RecordInputs`; zone_text.py writes the result as a zone file.

    records = build_records(RecordInputs(domain="example.org", hostname="mail.example.org",
                                         addresses=(IPv4Address("203.0.113.7"),), ...))
    [(r.name, r.type, r.value) for r in records.records]
        -> ("example.org", "MX", "10 mail.example.org."), ("example.org", "TXT", "v=spf1 mx ~all"), ...

What is published, and why:
- MX (RFC 5321 §5.1) to the host name; its A/AAAA from ``[server] public_addresses`` (or the
  outbound source addresses). Without an address nothing is invented: a note says what to set.
- SPF (RFC 7208): ``v=spf1 mx ~all`` for the domain (the MX host is the host that sends; ``~all``
  rather than ``-all`` so that a forwarder's copy reaches DMARC, which our DKIM signature passes),
  and ``v=spf1 a -all`` for the host name, which bounces and other mail from ``<>`` are checked
  against (RFC 7208 §2.3). When the host name is the domain itself one record serves both.
- DKIM (RFC 6376 §3.6.1, RFC 8463): the signing pair, the spare pair that `dkim rotate` switches
  to (published in advance, so rotation never waits for DNS), and pairs retired in the last
  ``RETIRED_DAYS`` days (mail in flight still needs them).
- DMARC (RFC 7489): ``p=quarantine`` with aggregate reports to a local address; an address in
  another domain needs that domain's consent record (§7.1).
- MTA-STS (RFC 8461): the ``_mta-sts`` TXT whose id is derived from the policy text, so it
  changes exactly when the policy does; the policy (setup/autoconfig.py) is ``mode: testing``
  until the certificate is one senders can verify. TLS-RPT (RFC 8460) at ``_smtp._tls``.
- SRV (RFC 6186, RFC 8314 §5.1): implicit TLS preferred over STARTTLS, IMAP over POP3; a
  listener that is off gets the target "." ("not offered here", RFC 6186 §4).
- autoconfig./autodiscover./mta-sts. names pointing at the host (and Outlook's
  ``_autodiscover._tcp`` SRV), for the web listener's client set-up and policy.
- CAA (RFC 8659) on the host name only (so the website's CA for the domain stays allowed), for
  the CA that issues our certificate when it is known (ACME, or Let's Encrypt's issuer name).
- TLSA ``_25._tcp.<host>`` 3 1 1 (DANE-EE, SPKI, SHA-256: RFC 7672 §3.1.1) of the current
  certificate's key: only meaningful in a DNSSEC-signed zone, which the reason says.
- PTR: not ours to publish; what to ask the hosting provider for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from postoffice.setup.autoconfig import StsMode, mta_sts_policy

__all__ = ["RETIRED_DAYS", "SRV_SERVICES", "Certificate", "DkimKey", "DnsRecord", "DomainRecords",
           "Placement", "RecordInputs", "build_records", "mta_sts_id"]

RETIRED_DAYS = 7
# where a record goes: the domain's zone, another zone (a host name outside the domain), or the
# hosting provider (the reverse zone of the address)
Placement = Literal["zone", "elsewhere", "provider"]
# SRV service -> (listener, priority): lower first, implicit TLS before STARTTLS (RFC 8314 §5.1),
# IMAP before POP3.
SRV_SERVICES: dict[str, tuple[str, int]] = {
    "_submissions._tcp": ("submissions", 0), "_submission._tcp": ("submission", 10),
    "_imaps._tcp": ("imaps", 0), "_imap._tcp": ("imap", 10),
    "_pop3s._tcp": ("pop3s", 20), "_pop3._tcp": ("pop3", 30),
}


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str  # absolute, lower-case, no trailing dot: "mail._domainkey.example.org"
    type: str  # "MX", "TXT", ...
    value: str  # presentation form; a TXT record's whole text, unquoted and unsplit
    reason: str  # one line: why it is there
    placement: Placement = "zone"


@dataclass(frozen=True, slots=True)
class DkimKey:
    selector: str  # "mail", "mail-ed25519"
    record: str  # the TXT value, "v=DKIM1; k=rsa; p=..."
    role: Literal["signing", "spare", "retired"]
    retired: str = ""  # ISO date it was retired (role "retired")


@dataclass(frozen=True, slots=True)
class Certificate:
    spki_sha256: str  # hex SHA-256 of the leaf's SubjectPublicKeyInfo (TLSA 3 1 1)
    sts_mode: StsMode  # "enforce" when senders can verify it (a CA's, not expired)
    expires: dt.datetime
    issuer_caa: str = ""  # the CAA issuer domain of its CA when known ("letsencrypt.org")


@dataclass(frozen=True, slots=True)
class RecordInputs:
    domain: str
    hostname: str
    addresses: tuple[IPv4Address | IPv6Address, ...] = ()
    # listener -> its port, or None when it is off: smtp, submissions, submission, imaps, ...
    ports: Mapping[str, int | None] = field(default_factory=dict)
    dkim: tuple[DkimKey, ...] = ()
    report_address: str = ""  # where DMARC and TLS reports go ("" = postmaster@domain)
    certificate: Certificate | None = None
    acme_caa: str = ""  # the CAA issuer of the ACME CA when [tls] acme is on
    smarthost: bool = False  # mail leaves through a relay: SPF must name it too


@dataclass(frozen=True, slots=True)
class DomainRecords:
    domain: str
    records: tuple[DnsRecord, ...]
    mta_sts_policy: str  # served at https://mta-sts.<domain>/.well-known/mta-sts.txt
    notes: tuple[str, ...]  # what could not be worked out, and what to set


def mta_sts_id(policy: str) -> str:
    """The ``id`` of the ``_mta-sts`` record: derived from the policy text (RFC 8461 §3.1 wants
    it to change whenever the policy does), 20 hex digits (the id allows 1 to 32 alphanumerics)."""
    return hashlib.sha256(policy.encode()).hexdigest()[:20]


def build_records(given: RecordInputs) -> DomainRecords:
    domain = given.domain.lower().rstrip(".")
    host = given.hostname.lower().rstrip(".")
    out: list[DnsRecord] = []
    notes: list[str] = []

    def add(name: str, rtype: str, value: str, reason: str, placement: Placement | None = None) -> None:
        where: Placement = placement or ("zone" if _within(name, domain) else "elsewhere")
        out.append(DnsRecord(name, rtype, value, reason, where))

    # -- receiving: MX and the host's addresses
    smtp_off = given.ports.get("smtp", 25) is None
    add(domain, "MX", f"10 {host}.", f"Mail for {domain} goes to {host}"
        + (" (but [listen] smtp is off: nothing receives it there)." if smtp_off else "."))
    for address in given.addresses:
        rtype = "A" if address.version == 4 else "AAAA"
        add(host, rtype, str(address), f"The address of {host}, the MX host and the host mail is sent from.")
    if not given.addresses:
        notes.append(f"No public address is configured, so the A/AAAA records of {host} and its PTR are "
                     "not shown: set [server] public_addresses in postoffice.toml to this server's public "
                     'IPv4 (and IPv6) address as other servers see it, e.g. ["203.0.113.7"], and run this '
                     "again.")

    # -- SPF
    relay = (" Mail goes out through [outbound] smarthost: add the include: your relay provider "
             "documents before ~all.") if given.smarthost else ""
    add(domain, "TXT", "v=spf1 mx ~all",
        f"SPF: only the MX host sends mail from {domain}; ~all marks (not refuses) mail from other hosts, "
        "so forwarded copies still reach DMARC; -all instead once you are sure nothing else sends as you."
        + relay)
    if host != domain:
        add(host, "TXT", "v=spf1 a -all",
            f"SPF for the HELO name {host}: bounces (sent from <>) are checked against it, and only {host} "
            "itself uses that name.")

    # -- DKIM
    for key in given.dkim:
        why = {"signing": "signs mail from the domain now",
               "spare": "the spare key: publish it now, so `postoffice dkim rotate` can switch to it at once",
               "retired": f"retired on {key.retired[:10]}: keep it {RETIRED_DAYS} days, for mail still in "
                          "flight, then remove it"}[key.role]
        add(f"{key.selector}._domainkey.{domain}", "TXT", key.record, f"DKIM key {key.selector}: {why}.")

    # -- DMARC and reports
    reports = given.report_address or f"postmaster@{domain}"
    where_reports = ("" if given.report_address else
                     " (postmaster; set [dmarc] report_address to have `postoffice dmarc reports` read them)")
    add(f"_dmarc.{domain}", "TXT", f"v=DMARC1; p=quarantine; rua=mailto:{reports}",
        f"DMARC: mail failing SPF and DKIM alignment goes to spam, and receivers report daily to {reports}"
        f"{where_reports}; move to p=reject once the reports show only your own servers for a few weeks.")
    report_domain = reports.rpartition("@")[2]
    if report_domain != domain:
        add(f"{domain}._report._dmarc.{report_domain}", "TXT", "v=DMARC1",
            f"{report_domain} agrees to receive {domain}'s DMARC reports (RFC 7489 §7.1).")
    add(f"_smtp._tls.{domain}", "TXT", f"v=TLSRPTv1; rua=mailto:{reports}",
        f"TLS-RPT: senders report failed TLS connections to {domain}'s MX to {reports} (RFC 8460).")

    # -- MTA-STS
    certificate = given.certificate
    mode: StsMode = certificate.sts_mode if certificate else "testing"
    policy = mta_sts_policy(mode, [host])
    add(f"_mta-sts.{domain}", "TXT", f"v=STSv1; id={mta_sts_id(policy)}",
        f"MTA-STS: senders fetch the policy (mode: {mode}) from https://mta-sts.{domain}/; the id changes "
        "whenever the policy does"
        + ("." if mode == "enforce" else "; testing until the certificate is one senders can verify."))

    # -- client set-up: SRV, autoconfig and autodiscover names
    for service, (listener, priority) in SRV_SERVICES.items():
        port = given.ports.get(listener)
        if port is None:
            add(f"{service}.{domain}", "SRV", "0 0 0 .",
                f"{listener} is off here: mail programs must not look for it (RFC 6186).")
        else:
            add(f"{service}.{domain}", "SRV", f"{priority} 1 {port} {host}.",
                f"Mail programs find {listener} on {host} port {port} (RFC 6186, RFC 8314).")
    for label, what in (("autoconfig", "Thunderbird's autoconfig"), ("autodiscover", "Outlook's Autodiscover"),
                        ("mta-sts", "the MTA-STS policy")):
        name = f"{label}.{domain}"
        if name != host:
            add(name, "CNAME", f"{host}.", f"{what} is served by {host}'s web listener.")
    https = given.ports.get("https", 443)
    if https is None:
        notes.append("No [listen] https is configured: mail programs cannot fetch their settings, nor "
                     "senders the MTA-STS policy, until it is (port 443).")
    else:
        add(f"_autodiscover._tcp.{domain}", "SRV", f"0 1 {https} {host}.",
            f"Outlook finds Autodiscover over HTTPS on {host} port {https}.")

    # -- certificates: CAA and TLSA
    issuer = given.acme_caa or (certificate.issuer_caa if certificate else "")
    if issuer:
        add(host, "CAA", f'0 issue "{issuer}"',
            f"Only {issuer} may issue certificates for {host} (RFC 8659); on the host name only, so the "
            f"CA of a website at {domain} stays allowed.")
    else:
        notes.append(f"No CAA record is suggested: the certificate's CA is not known (self-signed, or not "
                     f"Let's Encrypt); once you use one, publish {host}. CAA 0 issue \"<its CAA domain>\".")
    if certificate:
        add(f"_25._tcp.{host}", "TLSA", f"3 1 1 {certificate.spki_sha256}",
            "DANE: pins the certificate's key for port 25; publish only in a DNSSEC-signed zone, and publish "
            "the next key's TLSA before a renewal changes the key (certbot --reuse-key keeps it).")

    # -- reverse DNS: the provider's
    for address in given.addresses:
        add(_reverse_name(address), "PTR", f"{host}.",
            f"Ask your hosting provider for this reverse DNS of {address}: receivers check that it names "
            f"{host} and that {host} has the address.", "provider")
    return DomainRecords(domain, tuple(out), policy, tuple(notes))


def _within(name: str, domain: str) -> bool:
    return name == domain or name.endswith("." + domain)


def _reverse_name(address: IPv4Address | IPv6Address) -> str:
    return address.reverse_pointer
