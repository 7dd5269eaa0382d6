"""What `domain records` needs to know, read from the configuration and the data directory: the
host name and public addresses, the listeners' ports, the DKIM keys (signing, spare, recently
retired), the certificate in use. setup/records.py builds the records from it without I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import urllib.parse
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from postoffice.config import Config, ListenAddress
from postoffice.mailauth.dkim_selectors import RETIRED_DIR, SelectorState, read_selectors
from postoffice.mailauth.dkimkeys import dkim_public_record, domain_key_files
from postoffice.net.tls import TlsConfigError, leaf_certificate
from postoffice.setup.autoconfig import mta_sts_mode
from postoffice.setup.records import RETIRED_DAYS, SRV_SERVICES, Certificate, DkimKey, RecordInputs

__all__ = ["certificate_facts", "dkim_keys", "listener_ports", "record_inputs"]

# The CAA issuer domain of CAs recognised by their certificate's issuer organisation.
_CAA_BY_ISSUER = {"Let's Encrypt": "letsencrypt.org"}
_ROLES: dict[SelectorState, Literal["signing", "spare", "retired"]] = {
    "signing": "signing", "new": "spare", "retired": "retired"}


def record_inputs(config: Config, domain: str, *,
                  now: dt.datetime | None = None) -> tuple[RecordInputs, list[str]]:
    """The inputs for ``domain``, and notes on what could not be read (one sentence each)."""
    notes: list[str] = []
    # The outbound source addresses are this machine's own; behind NAT only public_addresses
    # can say what others see.
    addresses = config.server.public_addresses or tuple(
        ipaddress.ip_address(a) for a in (config.outbound.source_ipv4, config.outbound.source_ipv6) if a)
    try:
        certificate = certificate_facts(config.tls.cert_file, now=now)
    except TlsConfigError as error:
        certificate = None
        notes.append(f"The TLS certificate could not be read, so no TLSA record is shown: {error}")
    inputs = RecordInputs(
        domain=domain, hostname=config.server.hostname, addresses=tuple(addresses),
        ports=listener_ports(config), dkim=tuple(dkim_keys(config.data_dir, domain, config.dkim.selector, now=now)),
        report_address=config.dmarc.report_address, certificate=certificate,
        acme_caa=acme_caa(config), smarthost=config.outbound.smarthost is not None)
    if config.tls.acme and not inputs.acme_caa:
        notes.append(f"[tls] acme uses the CA at {config.tls.acme_directory}, whose CAA domain is not known "
                     "here: publish a CAA record naming it (its documentation says which).")
    return inputs, notes


def acme_caa(config: Config) -> str:
    """The CAA issuer domain of the ACME CA that `[tls] acme` gets certificates from, when known."""
    if not config.tls.acme:
        return ""
    host = urllib.parse.urlsplit(config.tls.acme_directory).hostname or ""
    return "letsencrypt.org" if host == "letsencrypt.org" or host.endswith(".letsencrypt.org") else ""


def listener_ports(config: Config) -> dict[str, int | None]:
    """Each client listener's port (its first address), or None when it is off."""
    ports: dict[str, int | None] = {}
    for name in ("smtp", "https", *(listener for listener, _ in SRV_SERVICES.values())):
        addresses = [a for a in getattr(config.listen, name) if isinstance(a, ListenAddress)]
        ports[name] = addresses[0].port if addresses else None
    return ports


def dkim_keys(data_dir: Path, domain: str, default: str, *,
              now: dt.datetime | None = None) -> list[DkimKey]:
    """The published keys: signing, spare, and those retired less than RETIRED_DAYS ago."""
    now = now or dt.datetime.now(dt.UTC)
    keys: list[DkimKey] = []
    for use in read_selectors(data_dir, domain, default=default).selectors:
        if use.state == "retired":
            when = _parse_iso(use.retired)
            if when is None or now - when > dt.timedelta(days=RETIRED_DAYS):
                continue
        role = _ROLES[use.state]
        for selector, path in domain_key_files(data_dir, domain, use.selector):
            if use.state == "retired":
                path = path.parent / RETIRED_DIR / path.name
            if path.exists():
                keys.append(DkimKey(selector, dkim_public_record(path), role, use.retired))
    return keys


def certificate_facts(cert_file: Path, *, now: dt.datetime | None = None) -> Certificate:
    """The key hash (TLSA), MTA-STS mode, expiry and CA of the certificate in ``cert_file``."""
    leaf = leaf_certificate(cert_file)
    spki = leaf.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    organisations = [a.value for a in leaf.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    issuer = next((_CAA_BY_ISSUER[o] for o in organisations if o in _CAA_BY_ISSUER), "")
    return Certificate(hashlib.sha256(spki).hexdigest(), mta_sts_mode(Path(cert_file).read_bytes(), now),
                       leaf.not_valid_after_utc, issuer)


def _parse_iso(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
