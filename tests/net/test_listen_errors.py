"""explain_listen_error: bind and name-lookup failures the subprocess tests in
tests/cli/test_startup_errors.py cannot cause on every machine (errors in, sentence out)."""
from __future__ import annotations

import errno
import os
import socket

from postoffice.net.listen_errors import explain_listen_error

CONFIG = "/srv/mail/postoffice.toml"


def test_port_below_1024_without_the_capability_says_how_to_grant_it() -> None:
    error = PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    assert explain_listen_error("smtp", "0.0.0.0:25", "0.0.0.0", 25, error, CONFIG) == (
        "[listen] smtp cannot listen on 0.0.0.0:25: ports below 1024 need root or the "
        "CAP_NET_BIND_SERVICE capability; start postoffice as root or with that capability "
        "(systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE), or change [listen] smtp in "
        "/srv/mail/postoffice.toml to a port above 1023.")


def test_name_lookup_that_could_not_be_done_blames_dns_not_the_name() -> None:
    error = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    sentence = explain_listen_error("imap", "mail.example.org:143", "mail.example.org", 143, error, CONFIG)
    assert sentence == (
        "[listen] imap cannot listen on mail.example.org:143: the host name mail.example.org could "
        "not be looked up (Temporary failure in name resolution); check this machine's DNS "
        "(/etc/resolv.conf), or change [listen] imap in /srv/mail/postoffice.toml to an IP address.")


def test_unix_socket_in_use_and_unknown_errors_still_name_listener_and_key() -> None:
    in_use = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    assert explain_listen_error("lmtp", "unix:/run/po/lmtp", "/run/po/lmtp", None, in_use, CONFIG) == (
        "[listen] lmtp cannot listen on unix:/run/po/lmtp: another program, or another postoffice, "
        "is already listening there; stop it, or change [listen] lmtp in "
        "/srv/mail/postoffice.toml.")
    other = OSError(errno.EROFS, os.strerror(errno.EROFS))
    assert explain_listen_error("lmtp", "unix:/run/po/lmtp", "/run/po/lmtp", None, other, CONFIG) == (
        "[listen] lmtp cannot listen on unix:/run/po/lmtp: read-only file system; change "
        "[listen] lmtp in /srv/mail/postoffice.toml.")


def test_dev_ports_in_use_point_at_the_config_file_not_at_a_key_that_would_not_help() -> None:
    error = OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
    sentence = explain_listen_error("imap", "127.0.0.1:10143", "127.0.0.1", 10143, error, CONFIG, dev=True)
    assert sentence.endswith(
        "stop it, or run serve without --dev, with other addresses in [listen] imap in "
        "/srv/mail/postoffice.toml."), sentence
