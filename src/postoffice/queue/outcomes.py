"""What one delivery attempt found, per recipient: the seam between the runner and transports.

A transport (SMTP to an MX, a smarthost, or local delivery) gets a queued message and the
recipients still pending, and returns one `RecipientOutcome` each. The runner decides from
``kind`` alone: ``delivered`` finishes the recipient (and a success DSN when asked), ``failed``
bounces it now, ``deferred`` retries it on the schedule. Nothing else is inferred from text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from postoffice.store.interface import QueuedMessage

OutcomeKind = Literal["delivered", "deferred", "failed"]


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """A reply as the remote server gave it: code, enhanced status if any, text lines joined."""

    code: int
    enhanced: str = ""  # "5.1.1"; "" when the server sent none
    text: str = ""

    def __str__(self) -> str:
        return " ".join(p for p in (str(self.code), self.enhanced, self.text) if p)


@dataclass(frozen=True, slots=True)
class TlsOutcome:
    """How the session was protected, per destination: what TLS-RPT (RFC 8460) needs later."""

    used: bool
    version: str = ""  # "TLSv1.3"
    cipher: str = ""
    verified: bool = False  # the certificate chain and name were checked and good
    policy: Literal["none", "opportunistic", "mta-sts", "dane", "smarthost"] = "opportunistic"
    failure: str = ""  # why TLS was not used or failed, in plain words


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    recipient: str
    kind: OutcomeKind
    reply: SmtpReply | None = None  # the remote reply that decided it, if one did
    reason: str = ""  # plain words when there was no reply: "connection refused by mx1.example.org"
    host: str = ""  # the host (MX name) and address tried last
    address: str = ""
    tls: TlsOutcome | None = None
    # RFC 3463 code for a DSN when no reply gave one: routing's "5.1.10" (null MX), "5.1.2"
    # (no such domain), "4.4.3" (DNS trouble), a backed-off destination's "4.4.1".
    status: str = ""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one message, recorded for `queue show`."""

    started: float
    outcomes: tuple[RecipientOutcome, ...] = field(default=())


class Transport(Protocol):
    """Hands a queued message to its next hop for the given recipients (all of one domain or
    route). Never raises for delivery trouble: every recipient gets an outcome."""

    async def deliver(self, message: QueuedMessage, raw: bytes,
                      recipients: tuple[str, ...]) -> tuple[RecipientOutcome, ...]: ...


def one_per_recipient(recipients: tuple[str, ...], found: Iterable[Iterable[RecipientOutcome]],
                      who: str) -> tuple[RecipientOutcome, ...]:
    """The outcomes of the groups a transport split `recipients` into, back in their order; a
    recipient that `who` gave no outcome for is deferred (4.3.0), never dropped."""
    outcomes = {o.recipient: o for group in found for o in group}
    return tuple(outcomes.get(r) or RecipientOutcome(
        r, "deferred", reason=f"{who} gave no outcome for this recipient", status="4.3.0") for r in recipients)


def try_next_server(outcome: RecipientOutcome) -> bool:
    """No answer for this recipient from this server (or a 421: it is closing): another
    server (the next MX, the relay's next address) may take it, and the connection is not worth
    keeping. Any other reply decides it."""
    return outcome.kind == "deferred" and (outcome.reply is None or outcome.reply.code == 421)
