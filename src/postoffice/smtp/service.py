"""Start the SMTP-family listeners (smtp, submission, submissions, lmtp) for `serve` and its
worker processes (`[smtp] processes`).

The login throttle and the per-IP connection limiter come from `Services`, shared by every
listener of the process, so an attacker cannot multiply its budget by switching ports.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Sequence

from postoffice.auth.limits import Refusal
from postoffice.config import ListenAddress, UnixAddress
from postoffice.net.listener import Connection, start_listener, start_unix_listener
from postoffice.net.running import ListenerFactory, RunningListener
from postoffice.services import Services
from postoffice.smtp.policy import InboundPolicy, LmtpPolicy, SmtpPolicy, SubmissionPolicy
from postoffice.smtp.proto import replies as r
from postoffice.smtp.session import SmtpSession


async def _refuse(conn: Connection, refusal: Refusal) -> None:
    conn.writer.write(r.Reply(421, "4.7.0", f"{refusal.value}, try later").to_bytes())
    await conn.writer.drain()


_POLICIES: dict[str, tuple[SmtpPolicy, bool]] = {  # protocol -> (policy, implicit TLS)
    "smtp": (InboundPolicy(), False),
    "submission": (SubmissionPolicy(), False),
    "submissions": (SubmissionPolicy(), True),
    "lmtp": (LmtpPolicy(), False),
}


async def start_smtp_listener(services: Services, protocol: str, address: ListenAddress | UnixAddress | None,
                              sockets: Sequence[socket.socket] = ()) -> RunningListener:
    """Serve `protocol` (smtp, submission, submissions, lmtp) on `address`, or on `sockets` that
    another process listens on already (`[smtp] processes`, see net/workers.py)."""
    policy, implicit_tls = _POLICIES[protocol]
    tls = services.tls

    async def handle(conn: Connection) -> None:
        await SmtpSession(conn, services, policy, tls=tls, throttle=services.login_throttle).run()

    if isinstance(address, UnixAddress):
        if not policy.lmtp:
            raise ValueError(f"{protocol} listens on host:port only, not {address}.")
        unix = await start_unix_listener(address.path, handle, name=protocol)
        return RunningListener(protocol, unix.address, unix.close)
    host, port = (address.host, address.port) if address is not None else ("", 0)
    limits = services.config.limits
    listener = await start_listener(
        host, port, handle,
        tls=tls if implicit_tls else None,
        limiter=services.connection_limiter, on_refused=_refuse, name=protocol,
        sockets=sockets, board=services.accept_boards.get("smtp"),
        line_timeout=limits.line_timeout,
        # Submission must log in before it can do anything; an MX has no login to wait for.
        login_timeout=limits.login_timeout if policy.offers_auth else math.inf,
    )
    return RunningListener(protocol, listener.address, listener.close, listener.sockets)


def _factory(protocol: str) -> ListenerFactory:
    async def start(services: Services, address: ListenAddress | UnixAddress) -> RunningListener:
        return await start_smtp_listener(services, protocol, address)

    return start


def listener_factories() -> dict[str, ListenerFactory]:
    return {protocol: _factory(protocol) for protocol in _POLICIES}
