"""The remote transport `serve` gives the queue runner, built from `[outbound]` (DESIGN §1).

    runner = QueueRunner(store, directory, config.outbound, hostname, remote=remote_transport(services))

Mail for other servers goes to each recipient domain's MX hosts (`MxTransport`) over SMTP
sessions that say EHLO with `[server] hostname` and send from `[outbound] source_ipv4` /
`source_ipv6`, with the TLS each MX host needs (queue/destination_tls.py): MTA-STS policies
cached in ``<data>/mta-sts-cache.json`` (`[outbound] mta_sts`), DANE when `[outbound] dane` and
the resolver validates on this machine, CAs of `[outbound] ca_file` besides the system's.
A relay configured for the mail comes first (`RoutedTransport`), first match wins:

1. `sender_routes`: the envelope sender's domain has its own relay (all its mail goes there),
2. `routes`: the recipient's domain has its own relay,
3. `smarthost`: every other recipient goes through it,
4. otherwise the recipient domain's MX hosts.

Domains match exactly (`example.com` does not cover `eu.example.com`). Every relay uses the
smarthost's TLS mode and login (queue/smarthost.py), verified with the same CAs; one
`SmarthostTransport` per relay address, so routes naming the smarthost share its connections.
Local domains never get here: the runner delivers them itself.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from postoffice.config_values import ListenAddress
from postoffice.queue.destination_tls import TlsPolicies, verified_context
from postoffice.queue.mta_sts import MtaSts
from postoffice.queue.mx_transport import MxTransport, smtp_sessions
from postoffice.queue.outcomes import RecipientOutcome, Transport, one_per_recipient
from postoffice.queue.smarthost import CommandTokens, FileTokens, RelayLogin, SmarthostTransport
from postoffice.queue.smtp_session import AccessTokens, Timeouts, TokenUnavailable
from postoffice.store.interface import QueuedMessage

if TYPE_CHECKING:
    from postoffice.config import OutboundConfig
    from postoffice.services import Services

__all__ = ["RoutedTransport", "remote_transport"]


def remote_transport(services: Services, *,
                     relay_context: ssl.SSLContext | None = None) -> RoutedTransport:
    """The transport for recipients at other servers, as `[outbound]` configures it.
    ``relay_context``: the TLS context relays are verified with (None: the system's CAs and
    `[outbound] ca_file`)."""
    config = services.config
    out = config.outbound
    context = verified_context(str(out.ca_file) if out.ca_file else None)
    mta_sts = (MtaSts(services.resolver, cache_file=config.data_dir / "mta-sts-cache.json", ssl_context=context)
               if out.mta_sts else None)
    policies = TlsPolicies(mta_sts=mta_sts, dane=services.resolver if out.dane else None, context=context)
    timeouts = Timeouts.scaled(out.reply_timeout, out.connect_timeout)
    mx = MxTransport(
        services.resolver,
        open_session=smtp_sessions(helo_name=config.server.hostname, source_ipv4=out.source_ipv4,
                                   source_ipv6=out.source_ipv6,
                                   timeouts=timeouts),
        mx_port=out.mx_port,
        concurrency=out.destination_concurrency,
        ipv4_first=out.ipv4_first,
        local_hosts=(config.server.hostname,),
        max_messages_per_connection=out.messages_per_connection,
        backoff_seconds=out.backoff_seconds,
        max_backoff_seconds=out.max_backoff_seconds,
        providers=out.providers,
        tls_policies=policies,
    )
    login = relay_login(out)
    relays: dict[ListenAddress, SmarthostTransport] = {}

    def relay(address: ListenAddress) -> SmarthostTransport:
        if address not in relays:
            relays[address] = SmarthostTransport(
                address, services.resolver, helo_name=config.server.hostname,
                implicit_tls=out.smarthost_tls == "tls", login=login, context=relay_context or context,
                concurrency=out.destination_concurrency,
                max_messages_per_connection=out.messages_per_connection,
                source_ipv4=out.source_ipv4, source_ipv6=out.source_ipv6, timeouts=timeouts)
        return relays[address]

    return RoutedTransport(
        mx, smarthost=relay(out.smarthost) if out.smarthost is not None else None,
        routes={domain: relay(address) for domain, address in out.routes},
        sender_routes={domain: relay(address) for domain, address in out.sender_routes})


def relay_login(out: OutboundConfig) -> RelayLogin | None:
    """How to log in at relays; None without `smarthost_user` (a relay that needs no login)."""
    if not out.smarthost_user:
        return None
    tokens: AccessTokens | None = None
    if out.smarthost_auth == "xoauth2":
        if out.smarthost_token_command:
            tokens = CommandTokens(out.smarthost_token_command)
        elif out.smarthost_token_file is not None:
            tokens = FileTokens(out.smarthost_token_file)
        else:
            tokens = _NoTokens()
    return RelayLogin(out.smarthost_user, password_file=out.smarthost_password_file, tokens=tokens)


class RoutedTransport:
    """Sends each recipient to its relay or to its domain's MX hosts (the module docstring)."""

    def __init__(self, mx: Transport, *, smarthost: Transport | None = None,
                 routes: dict[str, Transport] | None = None,
                 sender_routes: dict[str, Transport] | None = None) -> None:
        self.mx = mx
        self.smarthost = smarthost
        self.routes = routes or {}
        self.sender_routes = sender_routes or {}

    def transport_for(self, sender: str, recipient: str) -> Transport:
        """Where mail from ``sender`` to ``recipient`` goes next."""
        by_sender = self.sender_routes.get(_domain(sender)) if sender else None
        if by_sender is not None:
            return by_sender
        return self.routes.get(_domain(recipient)) or self.smarthost or self.mx

    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]:
        groups: dict[int, tuple[Transport, list[str]]] = {}
        for recipient in recipients:
            transport = self.transport_for(message.envelope.sender, recipient)
            groups.setdefault(id(transport), (transport, []))[1].append(recipient)
        done = await asyncio.gather(*(transport.deliver(message, raw, tuple(group))
                                      for transport, group in groups.values()))
        return one_per_recipient(recipients, done, "the transport")

    async def close(self) -> None:
        """QUIT the connections every transport keeps for reuse."""
        unique = {id(t): t for t in (self.mx, self.smarthost, *self.routes.values(),
                                     *self.sender_routes.values()) if t is not None}
        for transport in unique.values():
            close = getattr(transport, "close", None)
            if close is not None:
                await close()


class _NoTokens:
    async def get(self, *, fresh: bool = False) -> str:
        raise TokenUnavailable('smarthost_auth is "xoauth2" but neither smarthost_token_command '
                               "nor smarthost_token_file is set")


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().removesuffix(".")
