"""A domain's DKIM keys, made when the domain is added (`postoffice init --domain`, `postoffice
domain add`): an RSA-2048 key under the configured selector and an Ed25519 key under
``<selector>-ed25519`` (mailauth.dkimkeys), with the TXT records to publish for them, and a
spare pair for rotation (mailauth/dkim_selectors.py: published now, signing after `dkim rotate`).

A key file that already exists is kept, never replaced (a domain removed and added again keeps
signing with the key its DNS still publishes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from postoffice.mailauth.dkim_selectors import add_spare, read_selectors
from postoffice.mailauth.dkimkeys import dkim_public_record, domain_key_files, generate_dkim_key


@dataclass(frozen=True, slots=True)
class DomainKey:
    selector: str
    algorithm: Literal["rsa-sha256", "ed25519-sha256"]
    path: Path
    record_name: str  # <selector>._domainkey.<domain>
    record: str  # the TXT value
    created: bool  # False: the file was already there and is kept


def create_domain_keys(data_dir: Path, domain: str, selector: str) -> list[DomainKey]:
    """Make the domain's missing DKIM keys; return every key it has, RSA first."""
    domain = domain.lower().removesuffix(".")
    kinds: tuple[Literal["rsa", "ed25519"], ...] = ("rsa", "ed25519")
    keys = []
    for (key_selector, path), kind in zip(domain_key_files(data_dir, domain, selector), kinds,
                                          strict=True):
        created = not path.exists()
        if created:
            generate_dkim_key(path, kind=kind)
        keys.append(DomainKey(key_selector, "rsa-sha256" if kind == "rsa" else "ed25519-sha256",
                              path, f"{key_selector}._domainkey.{domain}",
                              dkim_public_record(path), created))
    return keys


def create_signing_and_spare_keys(data_dir: Path, domain: str,
                                  default: str) -> tuple[list[DomainKey], list[DomainKey]]:
    """The keys of the pair that signs (the ``[dkim] selector`` for a new domain) and of the
    spare, each made when missing: what `domain add` and `init --domain` publish."""
    signing = read_selectors(data_dir, domain, default=default).signing or default
    keys = create_domain_keys(data_dir, domain, signing)
    return keys, create_spare_keys(data_dir, domain, default)


def create_spare_keys(data_dir: Path, domain: str, default: str) -> list[DomainKey]:
    """Give the domain a spare DKIM pair (recorded first, then its key files) unless it has
    one; return the spare's keys, made now or kept."""
    record, _ = add_spare(data_dir, domain, default=default)
    selector = record.spare or record.signing
    assert selector is not None  # add_spare leaves a spare, or a signing pair when none signed
    return create_domain_keys(data_dir, domain, selector)
