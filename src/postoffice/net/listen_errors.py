"""Why a listener could not open, as the one sentence `postoffice serve` prints (DESIGN §5).

The operating system says "address already in use" or "cannot assign requested address"; an
administrator needs to hear which listener, which address, what that means here and what to
change. :func:`explain_listen_error` turns the ``OSError`` from binding (or from resolving a host
name in ``[listen]``) into that sentence. Pure: no I/O, so tests feed it errors directly too.
"""
from __future__ import annotations

import errno
import socket

__all__ = ["explain_listen_error"]

# getaddrinfo results that mean "no such name", as opposed to "ask again later".
_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def explain_listen_error(protocol: str, address: str, host: str, port: int | None,
                         error: OSError, config_file: str, *, dev: bool = False) -> str:
    """One sentence: listener, address, the cause in plain words, and the fix.

    ``address`` is the address as configured (``127.0.0.1:25``, ``[::1]:25``, ``unix:/path``),
    ``host`` and ``port`` its parts (``port`` None for a unix socket). ``dev``: the address came
    from ``serve --dev``, which has fixed ports, not from the file.
    """
    where = f"[listen] {protocol} cannot listen on {address}"
    change = (f"run serve without --dev, with other addresses in [listen] {protocol} in {config_file}"
              if dev else f"change [listen] {protocol} in {config_file}")
    if isinstance(error, socket.gaierror):
        if error.errno in _NO_SUCH_NAME:
            return (f"{where}: the host name {host} has no address (DNS and /etc/hosts do not know "
                    f"it); {change} to an IP address of this machine, or to 0.0.0.0 or [::] for "
                    "all of them.")
        return (f"{where}: the host name {host} could not be looked up ({error.strerror}); check "
                f"this machine's DNS (/etc/resolv.conf), or {change} to an IP address.")
    code = error.errno
    if code == errno.EADDRINUSE:
        finder = f" (`ss -ltnp 'sport = :{port}'` shows which)" if port is not None else ""
        return (f"{where}: another program, or another postoffice, is already listening there"
                f"{finder}; stop it, or {change}.")
    if code == errno.EADDRNOTAVAIL:
        return (f"{where}: {host} is not an address of this machine; {change} to one of its "
                "addresses (`ip -brief address` lists them), or to 0.0.0.0 or [::] for all of them.")
    if code in (errno.EACCES, errno.EPERM) and port is not None and 0 < port < 1024:
        return (f"{where}: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability; "
                "start postoffice as root or with that capability (systemd: "
                f"AmbientCapabilities=CAP_NET_BIND_SERVICE), or {change} to a port above 1023.")
    if code in (errno.EACCES, errno.EPERM):
        return (f"{where}: permission denied; give the user running postoffice access to it, "
                f"or {change}.")
    if code == errno.EAFNOSUPPORT:
        return (f"{where}: this machine has no IPv6 (or no IPv4) networking for {host}; {change} "
                "to an address of a kind it has.")
    reason = error.strerror or str(error)
    return f"{where}: {reason[:1].lower()}{reason[1:]}; {change}."
