"""What `postoffice status` shows: whether `serve` runs on the data directory (and which of its
listeners are listening), the outbound queue's counts, and the certificates in use with the days
they have left. Read-only, so it works beside a running `serve`: the lock file says which
process serves (its pid, checked alive), the kernel's socket tables which ports listen, the
store counts the queue (a read), and the certificate files are read as they are now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from postoffice.config import Config, ListenAddress, UnixAddress
from postoffice.net.tls_expiry import CertificateStatus, certificate_status
from postoffice.store.interface import QueueSummary

__all__ = [
    "ListenerStatus",
    "ServerStatus",
    "listener_statuses",
    "listening_ports",
    "server_status",
    "serving_pid",
]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's state column


@dataclass(frozen=True, slots=True)
class ListenerStatus:
    protocol: str
    address: str
    listening: bool | None  # None: not known (serve is not running, or a unix socket)


@dataclass(frozen=True, slots=True)
class ServerStatus:
    data_dir: Path
    pid: int | None  # the process serving this data directory, None when none does
    listeners: tuple[ListenerStatus, ...]
    queue: QueueSummary
    certificates: tuple[CertificateStatus, ...]


def server_status(config: Config, queue: QueueSummary, certificates: list[tuple[str, Path]]) -> ServerStatus:
    pid = serving_pid(config.data_dir)
    return ServerStatus(config.data_dir, pid, tuple(listener_statuses(config, running=pid is not None)), queue,
                        tuple(certificate_status(key, path) for key, path in certificates))


def serving_pid(data_dir: Path) -> int | None:
    """The pid `serve` wrote into serve.lock, when that process is still alive. Never takes the
    lock itself: a `serve` starting at that moment must not find it taken."""
    try:
        text = (data_dir / "serve.lock").read_text().strip()
        pid = int(text)
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    try:  # a pid reused by another program after serve stopped
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid
    return pid if b"postoffice" in command else None


def listener_statuses(config: Config, *, running: bool) -> list[ListenerStatus]:
    ports = listening_ports() if running else set()
    found = []
    for protocol, addresses in config.listen.by_service().items():
        for address in addresses:
            listening: bool | None = None
            if running and isinstance(address, ListenAddress):
                listening = address.port in ports
            elif isinstance(address, UnixAddress) and running:
                listening = address.path.exists()
            found.append(ListenerStatus(protocol, str(address), listening))
    return found


def listening_ports() -> set[int]:
    """TCP ports some socket of this machine listens on (Linux /proc/net/tcp and tcp6)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports
