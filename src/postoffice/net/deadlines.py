"""When a client's input is due: idle limits, and deadlines that trickled bytes cannot extend.

A read timeout alone lets a client hold a connection for ever by sending one byte every few
seconds: every byte restarts the clock. So besides the idle limit (no byte at all for
``idle`` seconds) each connection has deadlines that run from a fixed moment (issue 12):

- ``LINE``: a command line must be complete within ``line_timeout`` of its first byte (each
  line counts alone: the lines of a command around IMAP literals, an AUTH response line).
  Literal octets and message data are not lines; the login and transaction deadlines and the
  idle limit bound those.
- ``LOGIN``: from connecting to a successful login (IMAP, POP3, SMTP submission), started by
  the listener and ended by the driver's ``conn.deadlines.end(Expiry.LOGIN)``.
- ``TRANSACTION``: an SMTP mail transaction, from MAIL FROM to the end of its data.

The driver asks for its next read's timeout and says which line is open: ``open_line`` is any
value that stays the same while the same line is being received (the protocol core's count of
lines taken so far) and is None between lines. No I/O here: ``Connection.read_input`` in
net/listener.py does the read and raises :class:`InputTimeout`, and the driver answers with
its protocol's goodbye (IMAP ``* BYE``, POP3 ``-ERR``, SMTP ``421 4.4.2``)::

    try:
        data = await conn.read_input(65536, idle=300.0, open_line=core.open_line)
    except InputTimeout as timeout:
        send(goodbye(timeout.expiry)); return
"""
from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable

__all__ = ["Expiry", "InputDeadlines", "InputTimeout"]


class Expiry(enum.Enum):
    """Which limit a client's input missed."""

    IDLE = "idle"
    LINE = "line"
    LOGIN = "login"
    TRANSACTION = "transaction"


class InputTimeout(TimeoutError):
    """The client did not send what it had to in time; ``expiry`` says which limit it missed."""

    def __init__(self, expiry: Expiry) -> None:
        super().__init__(f"{expiry.value} timeout")
        self.expiry = expiry


class InputDeadlines:
    """One connection's deadlines; times come from ``clock`` (the event loop's time)."""

    def __init__(self, line_timeout: float = math.inf,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.line_timeout = line_timeout
        self._clock = clock
        self._line: tuple[object, float] | None = None  # (open_line, when its first byte came)
        self._phases: dict[Expiry, float] = {}  # LOGIN / TRANSACTION -> deadline

    def start(self, expiry: Expiry, seconds: float) -> None:
        """Start a phase that must end within ``seconds`` from now (``math.inf``: no limit)."""
        if math.isfinite(seconds):
            self._phases[expiry] = self._clock() + seconds

    def end(self, expiry: Expiry) -> None:
        """The phase is over (logged in; the message is complete); nothing if it had not begun."""
        self._phases.pop(expiry, None)

    def timeout(self, idle: float, open_line: object | None) -> tuple[float, Expiry]:
        """Seconds the next read may wait, and which limit ends it."""
        now = self._clock()
        if open_line is None:
            self._line = None
        elif self._line is None or self._line[0] != open_line:
            self._line = (open_line, now)  # a new line began with the bytes just received
        due, expiry = now + idle, Expiry.IDLE
        if self._line is not None and self._line[1] + self.line_timeout < due:
            due, expiry = self._line[1] + self.line_timeout, Expiry.LINE
        for phase, deadline in self._phases.items():
            if deadline < due:
                due, expiry = deadline, phase
        return max(0.0, due - now), expiry
