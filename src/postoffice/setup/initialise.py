"""`postoffice init`: make a data directory ready to serve.

Writes a commented `postoffice.toml`, a self-signed TLS certificate for the host name, and,
when a domain is given, adds it with its DKIM keys (RSA and Ed25519, setup/domain_keys.py). Running it again on an initialised directory
changes nothing and says so (DESIGN §5).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import socket
import string
from dataclasses import dataclass, field
from pathlib import Path

from postoffice.config import default_config_text, load_config
from postoffice.config_values import is_host_name
from postoffice.net.tls import TlsConfigError, certificate_expiry, create_self_signed_certificate
from postoffice.services import open_services
from postoffice.setup.domain_keys import create_signing_and_spare_keys

CONFIG_NAME = "postoffice.toml"
DEMO_DOMAIN = "example.test"
DEMO_USER = f"demo@{DEMO_DOMAIN}"


@dataclass
class InitResult:
    created: bool
    data_dir: Path
    messages: list[str] = field(default_factory=list)
    demo_password: str | None = None


def machine_hostname() -> tuple[str, str]:
    """The host name `init` uses without --hostname, and one sentence saying so: this machine's
    fully qualified name, else its short name, else localhost (many containers and VMs only
    resolve their name to localhost)."""
    for how, name in (("socket.getfqdn()", socket.getfqdn()), ("socket.gethostname()", socket.gethostname())):
        name = name.lower().removesuffix(".")
        if is_host_name(name) and name not in ("localhost", "localhost.localdomain"):
            return name, (f"No --hostname given: using this machine's name, {name} (from {how}); a public "
                          "server needs its public name, set with --hostname mail.example.org or as hostname "
                          "in the [server] section of postoffice.toml.")
    return "localhost", ("No --hostname given and this machine has no name but localhost, so the host name is "
                         "localhost: fine for trying postoffice out, but other servers need its public name, set "
                         "with --hostname mail.example.org or as hostname in the [server] section of postoffice.toml.")


def is_initialised(data_dir: Path) -> bool:
    return (data_dir / CONFIG_NAME).is_file()


def random_password(length: int = 16) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def initialise(data_dir: Path, hostname: str, domain: str | None = None, *, demo: bool = False) -> InitResult:
    """Create config, certificate, store and (optionally) a domain with its DKIM key."""
    result = InitResult(created=False, data_dir=data_dir)
    if is_initialised(data_dir):
        config = load_config(data_dir)
        unusable = _unusable_certificate(config.tls.cert_file, config.tls.key_file)
        if unusable and _replaceable(data_dir, config.tls.cert_file, config.tls.key_file):
            # What serve's start-up error advises for a missing or expired certificate.
            create_self_signed_certificate(config.tls.cert_file, config.tls.key_file, config.server.hostname)
            result.messages.append(
                f"{data_dir} is already initialised; only its {unusable} TLS certificate was created again "
                f"(self-signed for {config.server.hostname}, in {config.tls.cert_file})."
            )
            return result
        if unusable:
            result.messages.append(
                f"{data_dir} is already initialised; nothing was changed. Its TLS certificate is {unusable}, "
                f"but {config.tls.cert_file} is outside the data directory, so init leaves it alone: renew it "
                "(for example with certbot renew) or point [tls] cert_file and key_file at good files.")
            return result
        result.messages.append(f"{data_dir} is already initialised; nothing was changed.")
        return result
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    tmp = data_dir / (CONFIG_NAME + ".tmp")
    tmp.write_text(default_config_text(hostname))
    config = load_config(data_dir, tmp)  # validate before it becomes the real file
    create_self_signed_certificate(config.tls.cert_file, config.tls.key_file, hostname)
    result.messages.append(f"created a self-signed TLS certificate for {hostname} in {config.tls.cert_file}")
    if demo:
        domain = domain or DEMO_DOMAIN
    if domain:
        signing, spare = create_signing_and_spare_keys(data_dir, domain, config.dkim.selector)
        for key in signing:
            result.messages.append(f"{'created' if key.created else 'kept'} the DKIM key {key.path} "
                                   f"(selector {key.selector}, {key.algorithm}); publish the TXT "
                                   f"record {key.record_name}: {key.record}")
        for key in spare:
            result.messages.append(f"{'created' if key.created else 'kept'} the spare DKIM key {key.path} "
                                   f"(selector {key.selector}, {key.algorithm}, for `postoffice dkim "
                                   f"rotate`); publish it now too: {key.record_name}: {key.record}")
    result.demo_password = asyncio.run(_populate(config, domain, demo))
    if domain:
        result.messages.append(f"added the domain {domain}; every DNS record to publish for it: "
                               f"postoffice domain records {domain} --data {data_dir}")
    if demo:
        result.messages.append(f"added the demo user {DEMO_USER}")
    os.replace(tmp, data_dir / CONFIG_NAME)  # last: its presence means "initialised"
    result.created = True
    return result


def _unusable_certificate(cert_file: Path, key_file: Path) -> str:
    """"missing" or "expired" when the certificate pair cannot serve; "" when it can (or has a
    problem init cannot fix by making a new one, which serve explains)."""
    if not cert_file.exists() or not key_file.exists():
        return "missing"
    try:
        expired = certificate_expiry(cert_file) <= dt.datetime.now(dt.UTC)
    except TlsConfigError:
        return ""
    return "expired" if expired else ""


def _replaceable(data_dir: Path, *files: Path) -> bool:
    """Only files in the data directory are init's to replace: a certbot certificate in
    /etc/letsencrypt is certbot's."""
    root = data_dir.resolve()
    return all(f.resolve().is_relative_to(root) for f in files)


async def _populate(config, domain: str | None, demo: bool) -> str | None:
    async with open_services(config) as services:
        if domain and await services.store.get_domain(domain) is None:
            await services.directory.add_domain(domain)
        if demo and await services.directory.get_user(DEMO_USER) is None:
            password = random_password()
            await services.directory.add_user(DEMO_USER, password)
            return password
    return None
