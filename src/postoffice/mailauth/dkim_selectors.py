"""Which DKIM selectors of a domain sign its mail: the record `dkim rotate` and `dkim retire`
keep, ``<data dir>/keys/<domain>.selectors.json``.

    selectors = read_selectors(data_dir, "example.org", default="mail")
    selectors.signing          # "mail": RSA key keys/example.org.mail.pem, Ed25519 mail-ed25519
    rotate(data_dir, "example.org", default="mail")    # a new pair "202612", state "new"
    retire(data_dir, "example.org", "mail", default="mail")   # "202612" signs from now on

A selector names a pair of keys (dkimkeys.domain_key_files): RSA under the selector, Ed25519
under ``<selector>-ed25519``. Each has a state:

- ``signing``: the one pair outgoing mail is signed with (at most one);
- ``new``: made by `rotate`, its TXT records waiting to be published in DNS; mail is NOT signed
  with it yet, since a signature whose key a verifier cannot find fails (RFC 6376 §6.1.2);
- ``retired``: no longer used; its key files moved to ``keys/retired/`` (kept, never deleted,
  so a backup or a mistaken retire loses nothing).

Retiring the signing pair hands signing to the oldest ``new`` one: publish the new records
first, then retire the old selector (and leave its old TXT records in DNS for a few days, so
mail still in flight verifies). A domain without a record file has one implicit selector, the
configured ``[dkim] selector`` (what `domain add` made), in state ``signing``; the file is
written by the first `rotate`. Writes are atomic and durable (durable.write_file) and
serialised by a lock on the keys directory, so two admin commands cannot lose each other's
change, and a running server that reads the file sees the old or the new record, never a mix.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from postoffice.durable import fsync_dir, make_dirs, write_file
from postoffice.mailauth.dkimkeys import dkim_key_path, domain_key_files, ed25519_selector

__all__ = ["RETIRED_DIR", "DomainSelectors", "SelectorError", "SelectorState", "SelectorUse",
           "new_selector_name", "read_selectors", "retire", "rotate", "selectors_path"]

SelectorState = Literal["signing", "new", "retired"]
RETIRED_DIR = "retired"
_ED25519_SUFFIX = ed25519_selector("")


class SelectorError(ValueError):
    """An admin request that cannot be done, in one plain sentence."""


@dataclass(frozen=True, slots=True)
class SelectorUse:
    selector: str  # the pair's name: RSA under it, Ed25519 under <selector>-ed25519
    state: SelectorState
    created: str = ""  # ISO 8601 UTC; "" for the implicit selector made before any rotation
    retired: str = ""


@dataclass(frozen=True, slots=True)
class DomainSelectors:
    domain: str
    selectors: tuple[SelectorUse, ...]  # oldest first
    recorded: bool  # False: no record file yet (the implicit [dkim] selector)

    @property
    def signing(self) -> str | None:
        return next((s.selector for s in self.selectors if s.state == "signing"), None)

    def find(self, selector: str) -> SelectorUse | None:
        name = selector.lower().removesuffix(_ED25519_SUFFIX)
        return next((s for s in self.selectors if s.selector == name), None)

    def to_json(self) -> dict[str, object]:
        return {"domain": self.domain, "selectors": [
            {"selector": s.selector, "state": s.state, "created": s.created, "retired": s.retired}
            for s in self.selectors]}


def selectors_path(data_dir: Path, domain: str) -> Path:
    """``keys/<domain>.selectors.json`` (a name no key file can have: keys end in .pem)."""
    return dkim_key_path(data_dir, domain, "selectors").with_suffix(".json")


def read_selectors(data_dir: Path, domain: str, *, default: str) -> DomainSelectors:
    """The domain's record, or the implicit one (``default`` signing) when there is none.
    Raises SelectorError for a damaged file (named, with what is wrong)."""
    domain = _domain(domain)
    path = selectors_path(data_dir, domain)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DomainSelectors(domain, (SelectorUse(default.lower(), "signing"),), recorded=False)
    try:
        items = json.loads(text)["selectors"]
        uses = tuple(SelectorUse(str(i["selector"]), _state(i["state"]), str(i.get("created", "")),
                                 str(i.get("retired", ""))) for i in items)
    except (ValueError, KeyError, TypeError) as error:
        raise SelectorError(f"The DKIM selector record {path} is damaged ({error}); fix it or "
                            "remove it to sign with the [dkim] selector again.") from None
    return DomainSelectors(domain, uses, recorded=True)


def new_selector_name(data_dir: Path, domain: str, taken: set[str], now: dt.datetime) -> str:
    """``YYYYMM`` of ``now``, or ``YYYYMMb``, ``YYYYMMc``... when that is taken (in the record
    or by a key file in keys/ or keys/retired/)."""
    base: str = now.strftime("%Y%m")
    for suffix in ["", *"bcdefghijklmnopqrstuvwxyz"]:
        name: str = base + suffix
        if name in taken:
            continue
        files = [path for _, path in domain_key_files(data_dir, domain, name)]
        if not any(p.exists() or (p.parent / RETIRED_DIR / p.name).exists() for p in files):
            return name
    raise SelectorError(f"{domain} was rotated 26 times this month; retire some selectors or "
                        "wait for the next month.")


def rotate(data_dir: Path, domain: str, *, default: str,
           now: dt.datetime | None = None) -> tuple[DomainSelectors, str]:
    """Make a new key pair in state ``new``; return the record and the new selector. The key
    files themselves are written by the caller (setup.domain_keys.create_domain_keys), after
    this has recorded the selector, so a crash in between leaves a recorded selector whose
    missing keys `rotate` reports, never an unrecorded key."""
    now = now or dt.datetime.now(dt.UTC)
    with _locked(data_dir):
        current = read_selectors(data_dir, domain, default=default)
        waiting = [s.selector for s in current.selectors if s.state == "new"]
        if waiting:
            raise SelectorError(
                f"{current.domain} already has a new selector waiting ({waiting[0]}): publish its "
                f"TXT records and retire the old selector (postoffice dkim retire {current.domain} "
                f"{current.signing}), or abandon it with postoffice dkim retire {current.domain} "
                f"{waiting[0]}.")
        name = new_selector_name(data_dir, current.domain, {s.selector for s in current.selectors}, now)
        state: SelectorState = "signing" if current.signing is None else "new"
        updated = replace(current, selectors=(*current.selectors, SelectorUse(name, state, _iso(now))),
                          recorded=True)
        _write(data_dir, updated)
    return updated, name


def retire(data_dir: Path, domain: str, selector: str, *, default: str,
           now: dt.datetime | None = None) -> DomainSelectors:
    """Stop using ``selector`` (its RSA and Ed25519 keys), move its key files to keys/retired/;
    when it was signing, the oldest ``new`` selector signs from now on."""
    now = now or dt.datetime.now(dt.UTC)
    with _locked(data_dir):
        current = read_selectors(data_dir, domain, default=default)
        use = current.find(selector)
        listing = ", ".join(f"{s.selector} ({s.state})" for s in current.selectors)
        if use is None:
            raise SelectorError(f"{current.domain} has no DKIM selector {selector} (its selectors: {listing}).")
        if use.state == "retired":
            raise SelectorError(f"The DKIM selector {use.selector} of {current.domain} is already retired.")
        successor = next((s.selector for s in current.selectors if s.state == "new"), None)
        if use.state == "signing" and successor is None:
            raise SelectorError(
                f"Retiring {use.selector} would leave {current.domain}'s mail unsigned: run "
                f"postoffice dkim rotate {current.domain} first, publish the new records, then retire "
                f"{use.selector}.")
        uses = []
        for s in current.selectors:
            if s.selector == use.selector:
                s = replace(s, state="retired", retired=_iso(now))
            elif use.state == "signing" and s.selector == successor:
                s = replace(s, state="signing")
            uses.append(s)
        updated = replace(current, selectors=tuple(uses), recorded=True)
        _write(data_dir, updated)  # first: from here on nothing signs with it, even if a move fails
        _move_to_retired(data_dir, current.domain, use.selector)
    return updated


def _move_to_retired(data_dir: Path, domain: str, selector: str) -> None:
    for _, path in domain_key_files(data_dir, domain, selector):
        if not path.exists():
            continue
        target = path.parent / RETIRED_DIR / path.name
        make_dirs(target.parent)
        if target.exists():  # never overwrite a kept key
            raise SelectorError(f"{target} already exists; move it away and run the command again.")
        os.rename(path, target)
        fsync_dir(target.parent)
        fsync_dir(path.parent)


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    keys = Path(data_dir) / "keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(keys, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(data_dir: Path, selectors: DomainSelectors) -> None:
    text = json.dumps(selectors.to_json(), indent=2) + "\n"
    write_file(selectors_path(data_dir, selectors.domain), text.encode(), mode=0o600)


def _state(value: object) -> SelectorState:
    if value == "signing" or value == "new" or value == "retired":
        return value
    raise ValueError(f"unknown state {value!r}")


def _domain(domain: str) -> str:
    return domain.strip().lower().removesuffix(".")


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
