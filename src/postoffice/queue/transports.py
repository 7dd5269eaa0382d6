"""The remote transport `serve` gives the queue runner, built from `[outbound]` (DESIGN §1).

    runner = QueueRunner(store, directory, config.outbound, hostname, remote=remote_transport(services))

Mail for other servers goes to each recipient domain's MX hosts (`MxTransport`) over SMTP
sessions that say EHLO with `[server] hostname` and send from `[outbound] source_ipv4` /
`source_ipv6`, with the TLS each MX host needs (queue/destination_tls.py): MTA-STS policies
cached in ``<data>/mta-sts-cache.json`` (`[outbound] mta_sts`), DANE when `[outbound] dane` and
the resolver validates on this machine, CAs of `[outbound] ca_file` besides the system's.
Local domains never get here: the runner delivers them itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from postoffice.queue.destination_tls import TlsPolicies, verified_context
from postoffice.queue.mta_sts import MtaSts
from postoffice.queue.mx_transport import MxTransport, smtp_sessions

if TYPE_CHECKING:
    from postoffice.services import Services

__all__ = ["remote_transport"]


def remote_transport(services: Services) -> MxTransport:
    """The transport for recipients at other servers, as `[outbound]` configures it."""
    config = services.config
    out = config.outbound
    context = verified_context(str(out.ca_file) if out.ca_file else None)
    mta_sts = (MtaSts(services.resolver, cache_file=config.data_dir / "mta-sts-cache.json", ssl_context=context)
               if out.mta_sts else None)
    policies = TlsPolicies(mta_sts=mta_sts, dane=services.resolver if out.dane else None, context=context)
    return MxTransport(
        services.resolver,
        open_session=smtp_sessions(helo_name=config.server.hostname, source_ipv4=out.source_ipv4,
                                   source_ipv6=out.source_ipv6),
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
