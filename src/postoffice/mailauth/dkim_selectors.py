"""Which DKIM selectors of a domain sign its mail: the record `dkim rotate` and `dkim retire`
keep, ``<data dir>/keys/<domain>.selectors.json``.

    selectors = read_selectors(data_dir, "example.org", default="mail")
    selectors.signing          # "mail": RSA key keys/example.org.mail.pem, Ed25519 mail-ed25519
    add_spare(data_dir, "example.org", default="mail")  # "202612", state "new": the spare
    rotate(data_dir, "example.org", default="mail")     # "202612" signs, "mail" retired,
                                                        #   "202612b" the next spare

A selector names a pair of keys (dkimkeys.domain_key_files): RSA under the selector, Ed25519
under ``<selector>-ed25519``. Each has a state:

- ``signing``: the one pair outgoing mail is signed with (at most one);
- ``new``: the spare, made when the domain is added (or by `domain records`, or `rotate`): its
  TXT records are published beside the signing ones (`postoffice domain records`) long before
  they are needed, so a rotation switches to it at once instead of waiting for DNS. Mail is NOT
  signed with it until then, since a signature whose key a verifier cannot find fails
  (RFC 6376 §6.1.2);
- ``retired``: no longer used; its key files moved to ``keys/retired/`` (kept, never deleted,
  so a backup or a mistaken retire loses nothing). `domain records` keeps listing a pair for
  a few days after it was retired, so mail still in flight verifies.

`rotate` promotes the spare to signing, retires the old signing pair and records a new spare.
A domain without a spare (made before spares existed) first gets one: publish it, then rotate
again. Retiring the signing pair by hand hands signing to the oldest ``new`` one. A domain
without a record file has one implicit selector, the configured ``[dkim] selector`` (what
`domain add` made before spares), in state ``signing``. Writes are atomic and durable
(durable.write_file) and serialised by a lock on the keys directory, so two admin commands
cannot lose each other's change, and a running server that reads the file sees the old or the
new record, never a mix. The key files themselves are written by the caller
(setup/domain_keys.py), after the record, so a crash in between leaves a recorded selector
whose missing keys the next `domain records` or `rotate` makes, never an unrecorded key.
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

__all__ = ["RETIRED_DIR", "DomainSelectors", "Rotation", "SelectorError", "SelectorState",
           "SelectorUse", "add_spare", "new_selector_name", "read_selectors", "retire", "rotate",
           "selectors_path"]

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

    @property
    def spare(self) -> str | None:
        """The oldest ``new`` pair: the one `rotate` switches to."""
        return next((s.selector for s in self.selectors if s.state == "new"), None)

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


@dataclass(frozen=True, slots=True)
class Rotation:
    """What `rotate` did: ``signing`` signs from now on; ``retired`` stopped signing (None when
    there was no spare to switch to, so nothing switched); ``spare`` is the new spare, whose key
    files the caller makes."""

    record: DomainSelectors
    signing: str | None
    retired: str | None
    spare: str


def add_spare(data_dir: Path, domain: str, *, default: str,
              now: dt.datetime | None = None) -> tuple[DomainSelectors, str | None]:
    """Record a spare pair (state ``new``) unless the domain has one; return the record and the
    new spare's name (None: it already had one). A domain with no signing pair at all gets a
    signing one instead, since something must sign."""
    now = now or dt.datetime.now(dt.UTC)
    with _locked(data_dir):
        current = read_selectors(data_dir, domain, default=default)
        if current.spare is not None:
            return current, None
        updated, name = _with_new_pair(data_dir, current, now)
        _write(data_dir, updated)
    return updated, name


def rotate(data_dir: Path, domain: str, *, default: str,
           now: dt.datetime | None = None) -> Rotation:
    """Switch signing to the spare, retire the pair that signed (its key files move to
    keys/retired/) and record a new spare. Without a spare only the spare is recorded: it
    must be published before anything can switch to it."""
    now = now or dt.datetime.now(dt.UTC)
    with _locked(data_dir):
        current = read_selectors(data_dir, domain, default=default)
        spare, old = current.spare, current.signing
        if spare is None:
            updated, name = _with_new_pair(data_dir, current, now)
            _write(data_dir, updated)
            return Rotation(updated, updated.signing, None, name)
        uses = []
        for s in current.selectors:
            if s.selector == spare:
                s = replace(s, state="signing")
            elif s.selector == old:
                s = replace(s, state="retired", retired=_iso(now))
            uses.append(s)
        switched = replace(current, selectors=tuple(uses), recorded=True)
        updated, name = _with_new_pair(data_dir, switched, now)
        _write(data_dir, updated)  # first: from here on nothing signs with the old pair
        if old is not None:
            _move_to_retired(data_dir, current.domain, old)
    return Rotation(updated, spare, old, name)


def _with_new_pair(data_dir: Path, current: DomainSelectors,
                   now: dt.datetime) -> tuple[DomainSelectors, str]:
    """``current`` with one more pair: ``new`` (a spare), or ``signing`` if nothing signs."""
    name = new_selector_name(data_dir, current.domain, {s.selector for s in current.selectors}, now)
    state: SelectorState = "signing" if current.signing is None else "new"
    return replace(current, selectors=(*current.selectors, SelectorUse(name, state, _iso(now))),
                   recorded=True), name


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
