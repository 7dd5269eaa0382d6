"""Postoffice instances that send each other mail over real sockets, for the outbound end-to-end
tests (tests/queue/test_outbound_e2e.py): each one a real `postoffice serve` process on its own
loopback address, all on one port number, with DNS from tests/dns_server.py.

    port = shared_port(["127.0.0.2", "127.0.0.3"])      # free on every address given
    alpha = Instance(tmp / "alpha", "alpha.outbound.test", "127.0.0.2", port, dns_server.nameserver,
                     users=("alice@alpha.outbound.test",), submission_port=2587).start()
    dns_server.add_zone(*alpha.dkim_zone())                # its DKIM keys, as `init` printed them
    alpha.submit("alice@alpha.outbound.test", ["bob@bravo.outbound.test"], raw)
    alpha.messages("alice@alpha.outbound.test")            # raw messages in the INBOX, oldest first
    alpha.queue_show(queue_id)                             # `postoffice queue show ID --json`

The static records (MX, A, SPF, DMARC) of every test domain are in tests/zones/outbound.test.zone;
the DKIM keys are made by `postoffice init` per run, so their TXT records are served from a zone of
their own, ``_domainkey.<domain>`` (the more specific zone wins). `Postfix` runs a Debian Postfix
of the test's own as a receiving MX on one more loopback address.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cli_run import po
from peers import require_peer, unavailable
from postoffice.directory import Directory
from postoffice.mailauth.dkimkeys import dkim_public_record, domain_key_files
from postoffice.store import open_store
from serve_process import Serve

PASSWORD = "correct horse battery staple"


def shared_port(addresses: Iterable[str]) -> int:
    """A TCP port free on every one of `addresses` now (peers listen on one port number)."""
    addresses = list(addresses)
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_free(address, port) for address in addresses):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


def _free(address: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def eventually(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.3) -> Any:
    """`check()`'s first true value, polled; fails the test naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


class Instance:
    """One postoffice: `init` for `domain` (host name mx.<domain>), its users, port 25's listener
    on `address`:`port`, submission on `address`:`submission_port` (0: none), everything else off,
    sending from `address` to MX hosts at `port`, DNS from `nameserver`. `outbound` lines replace
    keys of [outbound] (retry_schedule = [2, 4], ...)."""

    def __init__(self, data: Path, domain: str, address: str, port: int, nameserver: str, *,
                 users: tuple[str, ...], submission_port: int = 0, outbound: str = "") -> None:
        self.data = data
        self.domain = domain
        self.hostname = f"mx.{domain}"
        self.address = address
        self.port = port
        self.submission_port = submission_port
        self.server: Serve | None = None
        po("init", "--domain", domain, "--hostname", self.hostname, data=data)
        for user in users:
            po("user", "add", user, "--password-stdin", data=data, stdin=PASSWORD + "\n")
        listen = {"smtp": f'["{address}:{port}"]',
                  "submission": f'["{address}:{submission_port}"]' if submission_port else "[]"}
        config = (data / "postoffice.toml").read_text()
        config = re.sub(r"^(smtp|submission|submissions|imap|imaps|pop3|pop3s|http|https|managesieve) = .*$",
                        lambda m: f"{m.group(1)} = {listen.get(m.group(1), '[]')}", config, flags=re.M)
        config = re.sub(r"^nameservers = .*$", f'nameservers = ["{nameserver}"]', config, flags=re.M)
        lines = [f"mx_port = {port}", f'source_ipv4 = "{address}"', *outbound.strip().splitlines()]
        for line in lines:
            key = line.split("=", 1)[0].strip()
            config, found = re.subn(rf"^{key} = .*$", line, config, flags=re.M)
            assert found == 1, f"no key {key} in postoffice.toml"
        (data / "postoffice.toml").write_text(config)

    def dkim_zone(self) -> tuple[str, str]:
        """(origin, text) of the zone publishing this instance's DKIM keys, for `add_zone`."""
        records = []
        for selector, path in domain_key_files(self.data, self.domain, "mail"):
            value = dkim_public_record(path)
            # TXT strings hold at most 255 bytes: an RSA-2048 record is split in several.
            strings = " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))
            records.append(f"{selector} TXT {strings}")
        return f"_domainkey.{self.domain}", "\n".join(records) + "\n"

    def start(self) -> Instance:
        self.server = Serve(self.data).started()
        return self

    def stop(self) -> str:
        """SIGTERM and the whole log (the test fails on an unclean exit)."""
        assert self.server is not None
        server, self.server = self.server, None
        return server.stop()

    def log(self) -> str:
        """The running server's log so far."""
        assert self.server is not None
        return self.server.log_text()

    def submit(self, sender: str, recipients: list[str], raw: bytes) -> None:
        """Send as a user's mail program does: port 587, STARTTLS, AUTH, then the message."""
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # init's self-signed certificate
        with smtplib.SMTP(self.address, self.submission_port, timeout=30) as client:
            client.starttls(context=context)
            client.login(sender, PASSWORD)
            refused = client.sendmail(sender, recipients, raw)
        assert refused == {}, refused

    def messages(self, user: str, mailbox: str = "INBOX") -> list[bytes]:
        """A user's messages as stored, oldest first (read from the store beside the server)."""
        async def read() -> list[bytes]:
            store = open_store("sqlite", self.data / "store.sqlite3", self.data / "blobs")
            try:
                account = await Directory(store).get_user(user)
                assert account is not None, user
                box = await store.get_mailbox(account.id, mailbox)
                assert box is not None
                return [await store.read_blob(m.blob) for m in await store.list_messages(box.id)]
            finally:
                await store.close()
        return asyncio.run(read())

    def queue(self) -> list[dict[str, Any]]:
        """`postoffice queue list --json`."""
        return json.loads(po("queue", "list", "--json", data=self.data).stdout)  # type: ignore[no-any-return]

    def queue_show(self, queue_id: int) -> dict[str, Any] | None:
        """`postoffice queue show ID --json`; None once the entry is gone (delivered or bounced)."""
        shown = po("queue", "show", str(queue_id), "--json", data=self.data, check=False)
        if shown.returncode != 0:
            return None
        return json.loads(shown.stdout)  # type: ignore[no-any-return]


def with_subject(messages: list[bytes], subject: str) -> list[bytes]:
    return [m for m in messages if re.search(rb"^Subject: .*" + re.escape(subject.encode()), m, re.M)]


def header_fields(raw: bytes, name: str) -> list[str]:
    """Every `name` field of the header, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    unfolded = re.sub(r"\r\n[ \t]+", " ", head)
    return [line.split(":", 1)[1].strip() for line in unfolded.split("\r\n")
            if line.lower().startswith(name.lower() + ":")]


# -- Postfix as a receiving MX --------------------------------------------------------------------

# master.cf below the smtpd line: the services a Postfix that receives (and relays) needs.
POSTFIX_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A Postfix instance of the test's own (Debian package postfix; needs root) on
    `address`:`port`, taking mail for `domain` with opportunistic STARTTLS (a self-signed
    certificate) and discarding it after queueing; `log` is its log file."""

    def __init__(self, address: str, port: int, domain: str,
                 tls_listeners: dict[int, tuple[Path, Path]] | None = None) -> None:
        """`tls_listeners`: more smtpd listeners on `address`, port -> (certificate file, key
        file) each, for tests of what a server with that certificate shows (copied here, where
        Postfix may read them)."""
        require_peer("postfix")
        require_peer("postconf", package="postfix")
        if os.geteuid() != 0:
            unavailable("Postfix needs root to start an instance of its own")
        from postoffice.net.tls import create_self_signed_certificate

        self.address, self.port, self.domain = address, port, domain
        self.base = Path(tempfile.mkdtemp(prefix="postoffice-postfix-"))  # not under pytest's 0700 tmp
        self.base.chmod(0o755)
        etc, spool, data, logs = (self.base / name for name in ("etc", "spool", "data", "log"))
        for folder in (etc, spool, data, logs):
            folder.mkdir()
        shutil.chown(data, "postfix")
        self.etc, self.log = etc, logs / "postfix.log"
        create_self_signed_certificate(etc / "cert.pem", etc / "key.pem", f"mx.{domain}")
        (etc / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{domain}
# Postfix takes only addresses of an interface here; master.cf below binds {address} itself.
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {domain}
virtual_transport = discard:delivered
local_transport = error:local delivery disabled
alias_maps =
alias_database =
# No DNS from this Postfix: the client's name would be asked of the machine's resolver.
smtpd_peername_lookup = no
smtpd_tls_cert_file = {etc / "cert.pem"}
smtpd_tls_key_file = {etc / "key.pem"}
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
maillog_file_prefixes = {logs}
maillog_file = {self.log}
""")
        extra = ""
        for extra_port, (cert_file, key_file) in (tls_listeners or {}).items():
            shutil.copy(cert_file, etc / f"{extra_port}.crt")
            shutil.copy(key_file, etc / f"{extra_port}.key")
            extra += (f"{address}:{extra_port} inet n - n - - smtpd -o smtpd_tls_cert_file={etc}/{extra_port}.crt"
                      f" -o smtpd_tls_key_file={etc}/{extra_port}.key\n")
        (etc / "master.cf").write_text(f"{address}:{port} inet n - n - - smtpd\n{extra}{POSTFIX_SERVICES}")

    def start(self) -> Postfix:
        subprocess.run(["postfix", "-c", str(self.etc), "set-permissions"], capture_output=True)
        started = subprocess.run(["postfix", "-c", str(self.etc), "start"], capture_output=True, text=True,
                                 start_new_session=True)
        assert started.returncode == 0, started.stdout + started.stderr
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex((self.address, self.port)) == 0
        eventually(listening, 30, "Postfix listening")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run(["postfix", "-c", str(self.etc), "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
