"""The long-lived objects every command and listener shares, built from a `Config`."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from postoffice.access_lists import AccessLists
from postoffice.auth.limits import ConnectionLimiter, LoginThrottle, connection_cap
from postoffice.auth.shared_table import SharedLimits
from postoffice.config import Config
from postoffice.directory import Directory
from postoffice.net.accept_balance import AcceptBoard
from postoffice.net.tls import ReloadingServerContext
from postoffice.queue.srs import SenderRewriter, srs_secret_path
from postoffice.setup.acme_challenges import AcmeChallenges
from postoffice.smtp.relay import RelayNetworks
from postoffice.store import open_store
from postoffice.store.interface import MailStore

if TYPE_CHECKING:
    from postoffice.filtering.greylist import Greylist
    from postoffice.filtering.pipeline import FilterPipeline
    from postoffice.filtering.spam_stage import SpamJudge
    from postoffice.mailauth.resolver import DnsResolver
    from postoffice.queue.signing import MessageSigner

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Shared by every listener of the process, so limits hold across ports and protocols."""

    config: Config
    store: MailStore
    directory: Directory
    login_throttle: LoginThrottle
    connection_limiter: ConnectionLimiter
    _tls: ReloadingServerContext | None = None
    # Per group of protocols served by several processes (net/workers.py GROUPS): connections
    # per process, so the least busy takes the next.
    accept_boards: dict[str, AcceptBoard] = field(default_factory=dict)
    # With several processes: the limiter's and the throttle's counts, for every process.
    shared_limits: SharedLimits | None = None
    _access_lists: AccessLists | None = None
    _resolver: DnsResolver | None = None
    _signer: MessageSigner | None = None
    _relay_networks: RelayNetworks | None = None
    _acme_challenges: AcmeChallenges | None = None
    _filters: FilterPipeline | None = None
    _greylist: Greylist | None = None
    _spam_judge: SpamJudge | None = None
    # Listener name -> the ports it is bound to, once open (`serve` fills it in): what the
    # autoconfig answers advertise when a configured port is 0.
    bound_ports: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Called after `reload_tls`: the main process tells its worker processes (SIGHUP).
    tls_reloaded: list[Callable[[], None]] = field(default_factory=list)

    @property
    def acme_challenges(self) -> AcmeChallenges:
        """The ACME challenges being validated now (`[tls] acme`): the ACME client puts them
        here, the HTTP listener and the TLS listeners answer the CA from them."""
        if self._acme_challenges is None:
            self._acme_challenges = AcmeChallenges()
        return self._acme_challenges

    @property
    def filters(self) -> FilterPipeline:
        """The filtering pipeline every way into a mailbox runs (filtering/stages.py): the spam
        score, the junk classifier, the Sieve scripts. Built on first use."""
        if self._filters is None:
            from postoffice.filtering.stages import build_pipeline

            self._filters = build_pipeline(self)
        return self._filters

    @property
    def spam_judge(self) -> SpamJudge:
        """The spam score of port-25 mail (`[spam]`, filtering/spam_stage.py), made on first use."""
        if self._spam_judge is None:
            from postoffice.filtering.spam_stage import SpamJudge

            self._spam_judge = SpamJudge(self.config.spam, self.directory, self.resolver)
        return self._spam_judge

    @property
    def resolver(self) -> DnsResolver:
        """The one DNS resolver of the process (`[dns]`), made on first use: its cache and its
        coalescing of identical questions serve every connection."""
        if self._resolver is None:
            from postoffice.mailauth.resolver import DnsResolver  # dnspython only where DNS is used

            self._resolver = DnsResolver.from_config(self.config.dns)
        return self._resolver

    @property
    def relay_networks(self) -> RelayNetworks:
        """`[smtp] relay_networks`: the devices that may send without logging in, and their
        per-minute counts, shared by port 25 and the submission port (smtp/relay.py)."""
        if self._relay_networks is None:
            smtp = self.config.smtp
            self._relay_networks = RelayNetworks(smtp.relay_networks, smtp.relay_messages_per_minute)
        return self._relay_networks

    @property
    def forwarding_srs(self) -> SenderRewriter | None:
        """What rewrites the envelope sender of forwarded mail (queue/srs.py), or None when
        `[outbound] srs` is off."""
        return self.directory.srs if self.config.outbound.srs else None

    def reload_tls(self) -> bool:
        """Re-read the certificate and key now (a renewal wrote them, or SIGHUP), here and in
        the other processes (`tls_reloaded`); True when this process serves the new pair. A
        process that has served no TLS yet has nothing to re-read: it loads the files on first use."""
        loaded = self._tls.reload() if self._tls is not None else False
        for notify in self.tls_reloaded:
            notify()
        return loaded

    @property
    def tls(self) -> ReloadingServerContext:
        """The server certificate, loaded on first use and re-read when the files change."""
        if self._tls is None:
            tls = self.config.tls
            # With ACME, handshakes offering acme-tls/1 may get a challenge certificate (RFC 8737).
            self._tls = ReloadingServerContext(
                tls.cert_file, tls.key_file, tls.min_version,
                challenges=self.acme_challenges if tls.acme else None)
        return self._tls

    @property
    def signer(self) -> MessageSigner:
        """DKIM signatures for mail leaving from our domains (queue/signing.py): keys and
        selector records loaded once, re-read when `postoffice dkim rotate|retire` changes them."""
        if self._signer is None:
            from postoffice.queue.signing import MessageSigner

            self._signer = MessageSigner(self.config.data_dir, default_selector=self.config.dkim.selector,
                                         is_local_domain=self.directory.is_local_domain)
        return self._signer

    @property
    def greylist(self) -> Greylist:
        """Greylisting on port 25 (`[greylist]`, filtering/greylist.py), made on first use."""
        if self._greylist is None:
            from postoffice.filtering.greylist import Greylist

            self._greylist = Greylist(self.store, self.config.greylist)
        return self._greylist

    @property
    def access_lists(self) -> AccessLists:
        """The block and allow lists (`postoffice block|allow`), reloaded when they change."""
        if self._access_lists is None:
            self._access_lists = AccessLists(self.store, delimiter=self.config.smtp.recipient_delimiter)
        return self._access_lists


@asynccontextmanager
async def open_services(config: Config, *, worker: bool = False, processes: int = 1,
                        shared: SharedLimits | None = None) -> AsyncIterator[Services]:
    """`worker`: for a worker process (net/workers.py), which sees no IMAP session and so
    leaves recently expunged blobs to the main process. `shared`: the connection counts and
    login failures of every process of this `serve`; the main process creates them when it
    runs with `processes` above 1 (net/workers.py: the most of any group;
    `services.shared_limits`), a worker gets them from it."""
    owned = None
    store = open_store(
        config.store.backend, config.store.path, config.store.blobs, config.store.reader_threads,
        keep_recently_expunged=worker, trash_days=config.store.blob_trash_days,
    )
    try:
        if shared is None and processes > 1 and not worker:
            shared = owned = SharedLimits.create(config.limits.max_connections * processes)
        directory = Directory(
            store,
            recipient_delimiter=config.smtp.recipient_delimiter,
            default_quota=config.limits.default_quota,
            login_cache_seconds=config.auth.login_cache_seconds,
            # The processes share the cores (and the memory each argon2 check takes).
            password_checks=max(1, (os.cpu_count() or 2) // processes),
            # Bounces to rewritten senders are honoured even with [outbound] srs turned off since.
            srs=SenderRewriter(srs_secret_path(config.data_dir)),
        )
        wanted = config.limits.max_connections
        cap = connection_cap(wanted)
        if cap < wanted:
            log.warning("the open-file limit allows only %d of the %d connections [limits]"
                        " max_connections asks for; raise it (ulimit -n, LimitNOFILE=)", cap, wanted)
        yield Services(
            config, store, directory,
            login_throttle=LoginThrottle(base_delay=config.auth.failed_login_delay,
                                         shared=shared.logins if shared else None),
            connection_limiter=ConnectionLimiter(
                config.limits.max_connections_per_ip, max_total=cap,
                max_per_user_ip=config.limits.max_userip_connections,
                shared=shared.connections if shared else None),
            shared_limits=shared,
        )
    finally:
        await store.close()
        if owned is not None:
            owned.close()
