"""Start the SMTP-family listeners (smtp, submission, submissions, lmtp) for `serve`.

The login throttle and the per-IP connection limiter come from `Services`, shared by every
listener of the process, so an attacker cannot multiply its budget by switching ports.
"""

from __future__ import annotations

import math

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


def _factory(protocol: str, policy: SmtpPolicy, implicit_tls: bool):
    async def start(services: Services, address: ListenAddress | UnixAddress) -> RunningListener:
        tls = services.tls

        async def handle(conn: Connection) -> None:
            await SmtpSession(conn, services, policy, tls=tls, throttle=services.login_throttle).run()

        if isinstance(address, UnixAddress):
            if not policy.lmtp:
                raise ValueError(f"{protocol} listens on host:port only, not {address}.")
            unix = await start_unix_listener(address.path, handle, name=protocol)
            return RunningListener(protocol, unix.address, unix.close)
        limits = services.config.limits
        listener = await start_listener(
            address.host, address.port, handle,
            tls=tls if implicit_tls else None,
            limiter=services.connection_limiter, on_refused=_refuse, name=protocol,
            line_timeout=limits.line_timeout,
            # Submission must log in before it can do anything; an MX has no login to wait for.
            login_timeout=limits.login_timeout if policy.offers_auth else math.inf,
        )
        return RunningListener(protocol, listener.address, listener.close)

    return start


def listener_factories() -> dict[str, ListenerFactory]:
    return {
        "smtp": _factory("smtp", InboundPolicy(), implicit_tls=False),
        "submission": _factory("submission", SubmissionPolicy(), implicit_tls=False),
        "submissions": _factory("submissions", SubmissionPolicy(), implicit_tls=True),
        "lmtp": _factory("lmtp", LmtpPolicy(), implicit_tls=False),
    }
