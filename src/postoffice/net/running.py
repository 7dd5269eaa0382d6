"""What a protocol's listener factory returns, and the factory's type.

Protocol servers build listeners; `app.py` starts and stops them. Both need these two names, so
they live below both (protocol modules import nothing from `app.py`).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postoffice.config import ListenAddress, UnixAddress
    from postoffice.services import Services


@dataclass
class RunningListener:
    protocol: str
    address: str
    close: Callable[[], Awaitable[None]]
    sockets: tuple[socket.socket, ...] = ()  # the listening sockets, where worker processes share them


# async factory(services, address) -> RunningListener, one per protocol name.
ListenerFactory = Callable[["Services", "ListenAddress | UnixAddress"], Awaitable[RunningListener]]
