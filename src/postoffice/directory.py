"""Who receives mail here: domains, users (argon2id password hashes), aliases and catch-alls.

Addresses are compared case-insensitively; domains are stored in their ASCII (IDNA) form.
Password hashing and verification are deliberately slow, so they always run in a worker thread,
never on the event loop, and checks take turns in a bounded queue (auth/check_queue.py).

Recipient resolution (`resolve_recipient`), for each address in order: an address in a domain
not served here is an outside address (an alias target there is forwarded through the outbound
queue); an account with that exact address; an alias, which is final once defined (its targets
are resolved the same way, recursively); the address without its `+detail` part
(user+tag@example.org reaches user@example.org); the domain's catch-all; and finally
`postmaster@` every local domain, which always exists (RFC 5321 §4.5.1): without an alias it
reaches the domain's first user. Before aliases, an SRS address of a local domain (a bounce to
a forwarded message's rewritten sender, queue/srs.py) leads to the original sender when its
hash and date check out, and nowhere (unknown: 550 5.1.1) when forged or expired, whatever
catch-all the domain has.

Expansion is bounded (MAX_ALIAS_DEPTH levels, MAX_ALIAS_ADDRESSES addresses, like Postfix's
virtual_alias_recursion_limit and virtual_alias_expansion_limit). An address reached twice
(two groups that include each other) counts once; an alias that only leads back to itself, or
past the bounds, is refused at RCPT with `Resolution.problem` rather than accepted and lost.

Address syntax: lookups accept any address a client may send, including quoted local parts
(`"john"@x` is `john@x`, RFC 5321 §4.1.2), so old rows stay reachable and removable. Names
created here (users, aliases and their targets) must be dot-atoms (RFC 5322 §3.2.3) without
`/`, so a local part can never climb out of a directory or hide a control character.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from postoffice.auth.check_queue import PasswordCheckQueue
from postoffice.auth.verified import VerifiedPasswords
from postoffice.queue.srs import SenderRewriter, SrsRefused, is_srs_address
from postoffice.store.interface import (
    AccountRecord,
    AliasRecord,
    DomainRecord,
    MailStore,
    StoreError,
)

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
# Password checks allowed to wait per slot; beyond that an attempt without priority is told to
# come back later (at ~0.25 s a check, eight per slot is a wait of about two seconds).
WAITING_PER_SLOT = 8
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL_PART = re.compile(r"^[^\s@<>()\[\]\\,;:\"]{1,64}$")  # what a lookup accepts unquoted
# RFC 5322 §3.2.3 atext without "/", widened to UTF-8 by RFC 6532 §3.2 (printable non-ASCII).
_ATEXT = r"A-Za-z0-9!#$%&'*+\-=?^_`{|}~\u00a0-\U0010ffff"
_DOT_ATOM = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
_QUOTED_PAIR = re.compile(r"\\(.)")
MAX_LOCAL_PART = 64  # octets, RFC 5321 §4.5.3.1.1
MAX_ALIAS_DEPTH = 10
MAX_ALIAS_ADDRESSES = 1000
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
_dummy_hash: str | None = None


def _dummy() -> str:
    """A hash to verify against when a user does not exist, so both cases cost the same time.
    Made on first use: hashing at import time would slow every CLI command."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("postoffice-no-such-user")
    return _dummy_hash


class DirectoryError(StoreError):
    """A bad address, domain or password; str() is one plain sentence."""


def canonical_domain(domain: str) -> str:
    """Lower-case ASCII form of a domain (IDNA for internationalised names), validated."""
    text = domain.strip().rstrip(".").lower()
    try:
        ascii_name = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        raise DirectoryError(f"{domain!r} is not a valid domain name.") from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise DirectoryError(
            f"{domain!r} is not a valid domain name: use a name like example.org."
        )
    return ascii_name


def canonical_address(address: str) -> str:
    """`Local@Example.ORG` -> `Local@example.org` after checking its shape (for lookups).

    A quoted local part that needs no quotes loses them (`"john"@x` is `john@x`, RFC 5321
    §4.1.2); one that does (`"da ve"@x`) stays quoted: it can name no user, but its domain
    still decides whether the address is ours.
    """
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if at and len(local) >= 2 and local[0] == local[-1] == '"':
        local = _unquote_local_part(local)
    elif not at or not _LOCAL_PART.match(local):
        raise DirectoryError(f"{address!r} is not a valid email address: use a form like user@example.org.")
    return f"{local}@{canonical_domain(domain)}"


def _unquote_local_part(quoted: str) -> str:
    """`"john"` -> `john`; `"da ve"` -> `"da ve"` (needless backslashes dropped)."""
    content = _QUOTED_PAIR.sub(r"\1", quoted[1:-1])
    if _DOT_ATOM.fullmatch(content) and content.isprintable():
        return content
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def new_address(address: str) -> str:
    """The canonical form of an address to create (a user, an alias or an alias target).

    Stricter than lookups: the local part must be a dot-atom (RFC 5322 §3.2.3) of at most 64
    octets without "/", so it is safe wherever it is shown or becomes part of a name.
    """
    local = address.strip().removeprefix("<").removesuffix(">").rpartition("@")[0]
    if len(local) >= 2 and local[0] == local[-1] == '"':  # judged by what it says, however quoted
        local = _QUOTED_PAIR.sub(r"\1", local[1:-1])
    problem = _local_part_problem(local) if local else None
    if problem:
        raise DirectoryError(f"{address!r} is not a valid email address: the part before @ {problem}.")
    return canonical_address(address)


def _local_part_problem(local: str) -> str | None:
    if not local.isprintable() or any(c.isspace() for c in local):
        return "may not contain spaces or control characters"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "may not start or end with a dot or have two dots in a row"
    if "/" in local:
        return 'may not contain "/"'
    if not _DOT_ATOM.fullmatch(local):
        return "may only hold letters, digits, dots and !#$%&'*+-=?^_`{|}~"
    if len(local.encode()) > MAX_LOCAL_PART:
        return f"is longer than {MAX_LOCAL_PART} octets"
    return None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise DirectoryError(f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.")
    return _hasher.hash(password)


def is_utf8_text(text: str) -> bool:
    """Whether `text` came from valid UTF-8. Drivers decode passwords with surrogateescape, so
    a password sent with bytes that are not UTF-8 arrives here as a string argon2 cannot encode:
    it matches no stored password (those are UTF-8) and must fail like any wrong one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def verify_password(password_hash: str, password: str) -> bool:
    if not is_utf8_text(password):
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where mail for one address goes."""

    local_domain: bool  # the domain is served here (if False, the address is not ours)
    accounts: tuple[AccountRecord, ...] = ()
    forwards: tuple[str, ...] = field(default_factory=tuple)  # alias targets elsewhere
    # Why an address of ours cannot take mail although aliases name it (a loop, too deep,
    # too many targets): one sentence for the 550 5.4.6 at RCPT.
    problem: str | None = None

    @property
    def exists(self) -> bool:
        return bool(self.accounts or self.forwards) and self.problem is None


class _ExpansionLimit(Exception):
    """Alias expansion went past MAX_ALIAS_DEPTH or MAX_ALIAS_ADDRESSES."""


@dataclass
class _Expansion:
    """The state of one address's alias expansion."""

    accounts: dict[int, AccountRecord] = field(default_factory=dict)
    forwards: dict[str, str] = field(default_factory=dict)  # lower-case -> address, in order
    path: set[str] = field(default_factory=set)  # the addresses being expanded (ancestors)
    done: dict[str, bool] = field(default_factory=dict)  # expanded: whether it led somewhere
    looped: bool = False  # an alias led back to one of its ancestors

    def result(self) -> Resolution:
        if not (self.accounts or self.forwards) and self.looped:
            return Resolution(True, problem="Alias loop: this address only leads back to itself")
        return Resolution(True, tuple(self.accounts.values()), tuple(self.forwards.values()))


class Directory:
    # Resolutions are cached this long. Changes made through this Directory clear the cache at
    # once; changes made by another process (an admin command) are seen within this time.
    CACHE_SECONDS = 1.0

    def __init__(self, store: MailStore, *, recipient_delimiter: str = "+", default_quota: int = 0,
                 login_cache_seconds: float = 0.0, password_checks: int | None = None,
                 srs: SenderRewriter | None = None) -> None:
        self.store = store
        self.srs = srs  # checks SRS addresses of our domains; None: they are ordinary names
        self.recipient_delimiter = recipient_delimiter
        self.default_quota = default_quota
        self._cache: dict[str, tuple[float, Resolution]] = {}
        # argon2id takes 64 MiB per check: more checks at once than cores only adds memory
        # (a burst of 20 logins would otherwise peak near 0.5 GB) and cannot finish sooner.
        slots = password_checks or os.cpu_count() or 2
        self.password_checks = PasswordCheckQueue(slots, WAITING_PER_SLOT * slots)
        self.verified = VerifiedPasswords(login_cache_seconds)

    def _changed(self) -> None:
        self._cache.clear()

    # --- domains --------------------------------------------------------------------------

    async def add_domain(self, name: str) -> DomainRecord:
        self._changed()
        return await self.store.add_domain(canonical_domain(name))

    async def remove_domain(self, name: str) -> None:
        self._changed()
        await self.store.remove_domain(canonical_domain(name))

    async def list_domains(self) -> list[DomainRecord]:
        return await self.store.list_domains()

    async def is_local_domain(self, name: str) -> bool:
        try:
            return await self.store.get_domain(canonical_domain(name)) is not None
        except DirectoryError:
            return False

    # --- users ----------------------------------------------------------------------------

    async def add_user(self, address: str, password: str, quota: int | None = None) -> AccountRecord:
        address = new_address(address)
        password_hash = await asyncio.to_thread(hash_password, password)
        self._changed()
        return await self.store.add_account(
            address, password_hash, self.default_quota if quota is None else quota
        )

    async def set_password(self, address: str, password: str) -> None:
        password_hash = await asyncio.to_thread(hash_password, password)
        await self.store.set_password_hash(canonical_address(address), password_hash)

    async def remove_user(self, address: str) -> None:
        self._changed()
        await self.store.remove_account(canonical_address(address))

    async def list_users(self, domain: str | None = None) -> list[AccountRecord]:
        return await self.store.list_accounts(canonical_domain(domain) if domain else None)

    async def get_user(self, address: str) -> AccountRecord | None:
        return await self.store.get_account(canonical_address(address))

    async def authenticate(self, address: str, password: str, *, priority: bool = False) -> AccountRecord | None:
        """The account if `password` is right, else None; unknown users cost the same time.

        `priority`: go before other waiting checks (a known user, see auth/check_queue.py).
        Raises PasswordChecksBusy when too many checks wait already.
        """
        if not (is_utf8_text(address) and is_utf8_text(password)):
            return None  # cannot match; and the store cannot even look such a name up
        try:
            account = await self.store.get_account(canonical_address(address))
        except DirectoryError:
            account = None
        if account is None or account.disabled:
            async with self.password_checks.slot(priority=priority):
                await asyncio.to_thread(verify_password, _dummy(), password)
            return None
        if self.verified.check(account.id, account.password_hash, password):
            return account
        async with self.password_checks.slot(priority=priority):
            ok = await asyncio.to_thread(verify_password, account.password_hash, password)
        if not ok:
            return None
        self.verified.remember(account.id, account.password_hash, password)
        return account

    # --- aliases --------------------------------------------------------------------------

    async def add_alias(self, source: str, targets: list[str]) -> None:
        """`source` is an address, or `@domain` to set the domain's catch-all."""
        if not targets:
            raise DirectoryError("Give at least one target address for the alias.")
        clean = [new_address(t) for t in targets]
        self._changed()
        if source.startswith("@"):
            domain = canonical_domain(source[1:])
            if len(clean) != 1:
                raise DirectoryError("A catch-all (@domain) takes exactly one target address.")
            await self.store.set_catch_all(domain, clean[0])
            return
        source = new_address(source)
        if not await self.is_local_domain(source.rpartition("@")[2]):
            raise DirectoryError(f"{source} is not in a domain served here; add the domain first.")
        for target in clean:
            await self.store.add_alias(source, target)

    async def alias_warnings(self, source: str, targets: list[str]) -> list[str]:
        """One sentence per thing an admin would want to know after adding an alias: a target
        here that is neither a user nor an alias (its share of the mail goes nowhere), and an
        alias that cannot take mail at all (a loop or too deep: senders get 550 5.4.6)."""
        warnings = []
        for target in targets:
            found = await self.resolve_recipient(target)
            if found.local_domain and not found.exists and found.problem is None:
                warnings.append(f"{target} is neither a user nor an alias here, so no mail reaches it; "
                                f"add it with `postoffice user add {target}`.")
        if not source.startswith("@"):
            found = await self.resolve_recipient(source)
            if found.problem is not None:
                warnings.append(f"{found.problem} ({source}), so senders to it are refused with 550 5.4.6.")
        return warnings

    async def remove_alias(self, source: str, target: str | None = None) -> int:
        self._changed()
        if source.startswith("@"):
            await self.store.set_catch_all(canonical_domain(source[1:]), None)
            return 1
        return await self.store.remove_alias(
            canonical_address(source), canonical_address(target) if target else None
        )

    async def list_aliases(self) -> list[AliasRecord]:
        aliases = await self.store.list_aliases()
        catch_alls = [
            AliasRecord(source=f"@{d.name}", target=d.catch_all)
            for d in await self.store.list_domains()
            if d.catch_all
        ]
        return aliases + catch_alls

    # --- sending rights -------------------------------------------------------------------

    async def may_send_as(self, account: AccountRecord, address: str) -> bool:
        """Whether `account` owns `address`: its own address (with or without +detail), or an
        alias that delivers to it. Catch-alls grant nothing: they would let a user send as
        any address of the domain."""
        try:
            address = canonical_address(address)
        except DirectoryError:
            return False
        own = account.address.lower()
        if address.lower() == own:
            return True
        local, _, domain = address.rpartition("@")
        delimiter = self.recipient_delimiter
        if delimiter and delimiter in local and f"{local.split(delimiter, 1)[0]}@{domain}".lower() == own:
            return True
        return any(a.target.lower() == own for a in await self.store.list_aliases(address))

    # --- resolution -----------------------------------------------------------------------

    async def resolve_recipient(self, address: str) -> Resolution:
        key = address.lower()
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.CACHE_SECONDS:
            return cached[1]
        resolution = await self._resolve(address)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, resolution)
        return resolution

    async def _resolve(self, address: str) -> Resolution:
        if address.lower() == "postmaster":  # RFC 5321 §4.1.1.3: <Postmaster> needs no domain
            domains = await self.store.list_domains()
            if not domains:
                return Resolution(local_domain=False)
            address = f"postmaster@{domains[0].name}"
        try:
            address = canonical_address(address)
        except DirectoryError:
            return Resolution(local_domain=False)
        domain, account, _ = await self.store.lookup_address(address)
        if domain is None:
            return Resolution(local_domain=False)
        if account is not None:  # the common case, answered by that one read
            return Resolution(True, (account,), ())
        if self.srs is not None and is_srs_address(address):
            return await self._resolve_srs(address, self.srs)
        expansion = _Expansion()
        try:
            await self._expand(address, expansion, 0)
        except _ExpansionLimit as limit:
            return Resolution(True, problem=str(limit))
        return expansion.result()

    async def _resolve_srs(self, address: str, srs: SenderRewriter) -> Resolution:
        """Where an SRS address of ours leads: its original sender (an outside address, queued;
        or, for a domain served here since, resolved as any local address)."""
        try:
            original = srs.reverse(address)
        except SrsRefused as refused:
            log.info("mail to <%s> refused: %s", address, refused)
            return Resolution(True)  # exists() is False: 550 5.1.1 at RCPT
        try:
            canonical = canonical_address(original)
        except DirectoryError:
            return Resolution(True)
        domain, account, _ = await self.store.lookup_address(canonical)
        if domain is None:
            return Resolution(True, (), (original,))
        if account is not None:
            return Resolution(True, (account,), ())
        expansion = _Expansion()
        try:
            await self._expand(canonical, expansion, 0)
        except _ExpansionLimit as limit:
            return Resolution(True, problem=str(limit))
        return expansion.result()

    async def _expand(self, address: str, expansion: _Expansion, depth: int) -> bool:
        """Add where `address` leads to `expansion`, resolving alias targets like recipients;
        False when it leads nowhere (an address reached before answers as it did then)."""
        key = address.lower()
        if key in expansion.path:
            expansion.looped = True
            return False
        if key in expansion.done:
            return expansion.done[key]
        if depth > MAX_ALIAS_DEPTH:
            raise _ExpansionLimit(f"Alias nesting deeper than {MAX_ALIAS_DEPTH} levels")
        if len(expansion.done) >= MAX_ALIAS_ADDRESSES:
            raise _ExpansionLimit(f"Alias expands to more than {MAX_ALIAS_ADDRESSES} addresses")
        expansion.path.add(key)
        try:
            found = await self._expand_one(address, expansion, depth)
        finally:
            expansion.path.discard(key)
        expansion.done[key] = found
        return found

    async def _expand_one(self, address: str, expansion: _Expansion, depth: int) -> bool:
        domain, account, aliases = await self.store.lookup_address(address)
        if domain is None:  # not ours: forwarded through the outbound queue
            expansion.forwards.setdefault(address.lower(), address)
            return True
        if account is not None:
            expansion.accounts.setdefault(account.id, account)
            return True
        if aliases:  # an alias is final: its targets, never the fallbacks below
            reached = [await self._expand(alias.target, expansion, depth + 1) for alias in aliases]
            return any(reached)
        local, _, domain_name = address.rpartition("@")
        delimiter = self.recipient_delimiter
        if delimiter and delimiter in local and not local.startswith('"'):
            base = local.split(delimiter, 1)[0]
            if base and await self._expand(f"{base}@{domain_name}", expansion, depth + 1):
                return True
        # Not again for the catch-all's own target: if it is unknown, that is a missing user
        # (5.1.1), not a loop; and a catch-all that leads nowhere still leaves postmaster@.
        catch_all = domain.catch_all
        if catch_all and catch_all.lower() not in expansion.path and await self._expand(catch_all, expansion, depth + 1):
            return True
        if local.lower() == "postmaster":
            users = await self.store.list_accounts(domain_name) or await self.store.list_accounts()
            if users:
                expansion.accounts.setdefault(users[0].id, users[0])
                return True
        return False
