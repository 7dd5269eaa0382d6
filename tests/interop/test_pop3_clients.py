"""Interop with Debian's POP3 downloaders: fetchmail, getmail6 and mpop against a real server.

fetchmail and getmail download a mailbox of 200 messages in "keep" mode twice (the second run
finds nothing new: fetchmail by UIDL and its idfile, getmail by its oldmail file), then run in
delete mode (fetchmail fetches all 200 again with RETR, as it used TOP to keep them; getmail
deletes those its oldmail file lists) while an IMAP session idles on INBOX and sees the 200
expunges. mpop downloads over
STLS and over implicit TLS (POP3S), verifying the server's self-signed certificate against the
certificate file itself, with AUTH PLAIN and with USER/PASS.

Every downloaded message is compared with the stored one, byte for byte once line ends are
normalised (the server stores what SMTP received; the tools write LF line ends): no header
added by a tool (fetchmail `set invisible`, getmail `received`/`delivered_to` off, mpop
`received_header off`), dot-stuffing undone, 8-bit text and 200 kB messages intact.

Each test is marked with the program it drives (peers.py): without it the test is skipped naming
the Debian package, and fails under POSTOFFICE_REQUIRE_PEERS=1 (.ci/run). Each program runs with
HOME in tmp_path, so nothing under the real home is read or written.
"""
from __future__ import annotations

import email
import email.policy
import imaplib
import os
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from peers import require_peer

USER = "bob@example.test"
COUNT = 200

# A Maildir-like delivery for fetchmail's and getmail's MDA hook: one file per message (stdin).
# getmail's own Maildir destination refuses to deliver as root (CI runs as root), so both use it.
DELIVER = """#!/bin/sh
f=$(mktemp "$1/msg.XXXXXXXXXX") && cat > "$f" || exit 75
"""

# getmail6 (6.18.11 in Debian 12) forks its delivery child first and installs its SIGCHLD
# handler afterwards; a child that exits in between is never reaped and getmail hangs for 60 s
# ("waiting child pid N timed out"; getmail6 issues #52, #226, #245). That is getmail's local
# delivery, not POP3, so the child waits (2 s at most) until getmail catches SIGCHLD (bit 17 of
# SigCgt) and sleeps, i.e. waits for it.
GETMAIL_DELIVER = DELIVER.replace(" || exit 75\n", """ || exit 75
i=0
while [ $i -lt 400 ]; do
  caught=0 sleeping=0
  while read -r key value rest; do
    case $key in
      SigCgt:) low=${value#????????}; caught=$(( 0x$low >> 16 & 1 )) ;;
      State:) [ "$value" = S ] && sleeping=1 ;;
    esac
  done < /proc/$PPID/status
  [ $caught = 1 ] && [ $sleeping = 1 ] && exit 0
  sleep 0.005
  i=$((i + 1))
done
""")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["pop3", "pop3s", "smtp", "imap"], auth={"failed_login_delay": 0.1}).start()
    live.add_user(USER)
    yield live
    live.stop()


# --- helpers -------------------------------------------------------------------------------------


def environment(tmp_path: Path) -> dict[str, str]:
    """The programs' environment: a private HOME (and XDG dirs), C locale."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "FETCHMAIL", "GETMAIL", "MAIL"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
               LC_ALL="C.UTF-8", LANG="C.UTF-8")
    return env


def run(args: list[str], tmp_path: Path, expect: tuple[int, ...] | None = (0,)) -> str:
    """Run a program; its exit status must be in `expect` (None: any failure)."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, env=environment(tmp_path))
    output = result.stdout + result.stderr
    ok = result.returncode != 0 if expect is None else result.returncode in expect
    assert ok, f"{args[0]} exited {result.returncode}:\n{output[-6000:]}"
    return output


def message(i: int) -> bytes:
    """Message i: distinct Message-ID and body, dot-stuffing bait, 8-bit text, now and then 200 kB."""
    lines = [
        f"From: Sender {i} <sender{i}@remote.example>",
        f"To: <{USER}>",
        f"Subject: POP3 interop message {i}",
        f"Message-ID: <pop3-{i}@remote.example>",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"This is message number {i}.",
        ".",
        f".{i} starts with a dot",
        "..two dots",
        "From the start of a line",
        f"Grüße aus Köln, Nachricht {i} — ✉",
    ]
    if i % 50 == 7:  # a few large ones: RETR streams them in several chunks
        lines += [f"{i:04d} {n:06d} " + "x" * 90 for n in range(2000)]
    lines.append(f"end of message {i}")
    return ("\r\n".join(lines) + "\r\n").encode()


def deliver(server: LiveServer, count: int) -> list[bytes]:
    """Send `count` messages by SMTP; return them as stored, oldest first."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("sender.remote.example")
        for i in range(count):
            smtp.sendmail(f"sender{i}@remote.example", [USER], message(i), mail_options=["BODY=8BITMIME"])
    stored = server.messages(USER)
    assert len(stored) == count
    return stored


def message_id(raw: bytes) -> str:
    return str(email.message_from_bytes(raw, policy=email.policy.compat32)["Message-ID"]).strip()


def normalised(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def assert_same_messages(downloaded: list[Path], stored: list[bytes]) -> None:
    """The downloaded files are exactly the stored messages (line ends aside), each once."""
    expected = {message_id(raw): normalised(raw) for raw in stored}
    got: dict[str, bytes] = {}
    for path in downloaded:
        raw = path.read_bytes()
        key = message_id(raw)
        assert key not in got, f"{key} was downloaded twice"
        got[key] = normalised(raw)
    assert sorted(got) == sorted(expected)
    for key, raw in expected.items():
        assert got[key] == raw, f"{key} differs from the stored message"


def files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def new_files(directory: Path, before: list[Path]) -> list[Path]:
    return sorted(set(files(directory)) - set(before))


def deliver_script(tmp_path: Path, text: str = DELIVER, name: str = "deliver.sh") -> Path:
    script = tmp_path / name
    script.write_text(text)
    script.chmod(0o755)
    return script


def private_file(path: Path, text: str) -> Path:
    """fetchmail and mpop refuse a password file others may read."""
    path.write_text(text)
    path.chmod(0o600)
    return path


class ImapWatcher:
    """An IMAP session (imaplib) that selects INBOX and idles (RFC 2177) while a tool runs."""

    def __init__(self, server: LiveServer) -> None:
        self.imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=15)
        self.imap.login(USER, PASSWORD)
        status, data = self.imap.select("INBOX")
        assert status == "OK"
        self.exists = int(data[0])

    def idle(self) -> None:
        self.imap.send(b"W1 IDLE\r\n")
        line = self.imap.readline()
        assert line.startswith(b"+"), line

    def collect_expunges(self, expected: int) -> list[bytes]:
        """Read untagged responses until `expected` EXPUNGEs came, then end IDLE."""
        lines: list[bytes] = []
        expunges = 0
        while expunges < expected:
            try:
                line = self.imap.readline()
            except TimeoutError:
                pytest.fail(f"{expunges} of {expected} EXPUNGE responses in 15 s; last lines: {lines[-5:]}")
            assert line, f"the IMAP connection closed; last lines: {lines[-5:]}"
            lines.append(line)
            if line.startswith(b"* ") and line.rstrip().endswith(b" EXPUNGE"):
                expunges += 1
        self.imap.send(b"DONE\r\n")
        while not (line := self.imap.readline()).startswith(b"W1 "):
            lines.append(line)
        assert line.startswith(b"W1 OK"), line
        return lines

    def reselect(self) -> int:
        status, data = self.imap.select("INBOX")
        assert status == "OK"
        return int(data[0])

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass


def check_delete_run_seen_by_imap(server: LiveServer, watcher: ImapWatcher) -> None:
    lines = watcher.collect_expunges(COUNT)
    expunges = [line for line in lines if line.rstrip().endswith(b" EXPUNGE")]
    assert len(expunges) == COUNT, f"{len(expunges)} EXPUNGE responses during IDLE; last lines: {lines[-5:]}"
    assert all(line == b"* 0 EXISTS\r\n" for line in lines if line.rstrip().endswith(b" EXISTS")), lines
    assert watcher.reselect() == 0  # * 0 EXISTS
    assert watcher.imap.noop()[0] == "OK"
    assert server.messages(USER) == []


# --- fetchmail -----------------------------------------------------------------------------------


def fetchmail_rc(tmp_path: Path, name: str, poll: str, options: str, target: Path) -> Path:
    return private_file(tmp_path / name, f"""
set no syslog
set no bouncemail
set invisible
{poll}
  user "{USER}" there with password "{PASSWORD}"
  {options}
  mda "{deliver_script(tmp_path)} {target}"
""")


def fetchmail(tmp_path: Path, rc: Path, idfile: Path, expect: tuple[int, ...] = (0,)) -> str:
    return run([require_peer("fetchmail"), "-f", str(rc), "-i", str(idfile), "--nosyslog", "--daemon", "0",
                "--nodetach", "-v"], tmp_path, expect)


@pytest.mark.peer("fetchmail")
def test_fetchmail_keep_twice_by_uidl_then_delete_while_imap_idles(server: LiveServer, tmp_path: Path) -> None:
    stored = deliver(server, COUNT)
    port = server.ports["pop3"]
    target = tmp_path / "fetched"
    target.mkdir()
    idfile = tmp_path / "fetchids"
    # Plain POP3 with USER/PASS (loopback allows it); sslproto '' stops fetchmail's opportunistic STLS.
    poll = f"poll 127.0.0.1 service {port} protocol pop3 uidl auth password"
    keep = fetchmail_rc(tmp_path, "keep.rc", poll, "keep\n  sslproto ''", target)

    out = fetchmail(tmp_path, keep, idfile)
    assert "POP3> USER bob@example.test" in out and "POP3> UIDL" in out
    assert out.count("POP3> TOP ") == COUNT and "POP3> RETR " not in out  # fetchmail keeps with TOP n 99999999
    first = files(target)
    assert len(first) == COUNT
    assert_same_messages(first, stored)
    assert len(idfile.read_text().splitlines()) == COUNT

    # The second run: every UIDL is in the idfile, nothing is fetched; fetchmail exits 1, "no mail".
    out = fetchmail(tmp_path, keep, idfile, expect=(1,))
    assert f"{COUNT} messages ({COUNT} seen)" in out, out
    assert files(target) == first
    assert len(server.messages(USER)) == COUNT

    # Delete mode: fetch all 200 again (they are all "seen") and delete them, watched over IMAP.
    delete = fetchmail_rc(tmp_path, "delete.rc", poll, "no keep\n  fetchall\n  sslproto ''", target)
    watcher = ImapWatcher(server)
    try:
        assert watcher.exists == COUNT
        watcher.idle()
        out = fetchmail(tmp_path, delete, idfile)
        assert out.count("POP3> RETR ") == COUNT and out.count("POP3> DELE ") == COUNT
        assert_same_messages(new_files(target, first), stored)
        check_delete_run_seen_by_imap(server, watcher)
    finally:
        watcher.close()


@pytest.mark.peer("fetchmail")
def test_fetchmail_verifies_the_certificate_over_stls_and_pop3s(server: LiveServer, tmp_path: Path) -> None:
    """fetchmail (OpenSSL) with sslcertck and the server's certificate as the trust file. fetchmail
    checks DNS names only (not the 127.0.0.1 IP SAN), so sslcommonname names the server."""
    stored = deliver(server, 5)
    assert server.services is not None
    cert = server.services.config.tls.cert_file
    check = f"sslcertck sslcertfile {cert} sslcommonname mail.example.test"
    for transport, port, tls in (("stls", server.ports["pop3"], "sslproto 'TLS1.2+'"),
                                 ("pop3s", server.ports["pop3s"], "ssl")):
        target = tmp_path / transport
        target.mkdir()
        rc = fetchmail_rc(tmp_path, f"{transport}.rc",
                          f"poll 127.0.0.1 service {port} protocol pop3 uidl auth password",
                          f"keep\n  {tls} {check}", target)
        out = fetchmail(tmp_path, rc, tmp_path / f"{transport}.ids")
        if transport == "stls":
            assert "POP3> STLS" in out and "upgrade to TLS succeeded" in out, out
        else:
            assert "POP3> STLS" not in out
        assert "certificate verification error" not in out.lower()
        assert_same_messages(files(target), stored)


# --- getmail -------------------------------------------------------------------------------------


def getmail_rc(tmp_path: Path, name: str, port: int, target: Path, *, delete: bool) -> Path:
    return private_file(tmp_path / name, f"""
[retriever]
type = SimplePOP3Retriever
server = 127.0.0.1
port = {port}
username = {USER}
password = {PASSWORD}

[destination]
type = MDA_external
path = {deliver_script(tmp_path, GETMAIL_DELIVER, "getmail-deliver.sh")}
arguments = ("{target}",)
allow_root_commands = true

[options]
verbose = 1
read_all = false
delete = {"true" if delete else "false"}
delivered_to = false
received = false
message_log_syslog = false
""")


def getmail(tmp_path: Path, rc: Path) -> str:
    getmaildir = tmp_path / "getmail-state"
    getmaildir.mkdir(exist_ok=True)
    return run([require_peer("getmail", package="getmail6"), f"--getmaildir={getmaildir}", f"--rcfile={rc}"], tmp_path)


@pytest.mark.peer("getmail", package="getmail6")
def test_getmail_keep_twice_by_oldmail_then_delete_while_imap_idles(server: LiveServer, tmp_path: Path) -> None:
    stored = deliver(server, COUNT)
    port = server.ports["pop3"]
    target = tmp_path / "fetched"
    target.mkdir()
    keep = getmail_rc(tmp_path, "keep.rc", port, target, delete=False)

    out = getmail(tmp_path, keep)
    assert f"{COUNT} messages" in out and "retrieved, 0 skipped" in out, out
    first = files(target)
    assert len(first) == COUNT
    assert_same_messages(first, stored)
    (oldmail,) = (tmp_path / "getmail-state").glob("oldmail-*")
    assert len(oldmail.read_text().splitlines()) == COUNT

    # The second run: read_all = false and every UIDL is in the oldmail file, so nothing comes.
    out = getmail(tmp_path, keep)
    assert f"0 messages (0 bytes) retrieved, {COUNT} skipped" in out, out
    assert files(target) == first
    assert len(server.messages(USER)) == COUNT

    # Delete mode: delete = true removes what the oldmail file says was retrieved, unfetched.
    delete = getmail_rc(tmp_path, "delete.rc", port, target, delete=True)
    watcher = ImapWatcher(server)
    try:
        assert watcher.exists == COUNT
        watcher.idle()
        out = getmail(tmp_path, delete)
        assert f"0 messages (0 bytes) retrieved, {COUNT} skipped" in out, out
        assert files(target) == first
        check_delete_run_seen_by_imap(server, watcher)
    finally:
        watcher.close()


# --- mpop ----------------------------------------------------------------------------------------


def mpop_rc(tmp_path: Path, server: LiveServer, transport: str, auth: str, trust: Path, maildir: Path,
            extra: str = "") -> Path:
    """`host 127.0.0.1` and the certificate itself as the trust file: GnuTLS matches the
    certificate's 127.0.0.1 IP SAN, so this is full verification, no tls_certcheck off."""
    starttls = transport == "stls"
    port = server.ports["pop3" if starttls else "pop3s"]
    return private_file(tmp_path / f"mpop-{transport}-{auth}.rc", f"""
defaults
tls on
tls_trust_file {trust}
uidls_file {tmp_path / "mpop-uidls"}
delivery maildir {maildir}
received_header off

account po
host 127.0.0.1
port {port}
tls_starttls {"on" if starttls else "off"}
user {USER}
password {PASSWORD}
auth {auth}
timeout 30
{extra}
""")


def mpop(tmp_path: Path, rc: Path, *options: str, expect: tuple[int, ...] | None = (0,)) -> str:
    return run([require_peer("mpop"), "-C", str(rc), "--debug", *options, "po"], tmp_path, expect)


def make_maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True)
    return path


@pytest.mark.peer("mpop")
@pytest.mark.parametrize("auth", ["plain", "user"])
@pytest.mark.parametrize("transport", ["stls", "pop3s"])
def test_mpop_over_tls_with_a_verified_certificate(server: LiveServer, tmp_path: Path, transport: str,
                                                   auth: str) -> None:
    stored = deliver(server, 20)
    assert server.services is not None
    maildir = make_maildir(tmp_path / "Maildir")
    rc = mpop_rc(tmp_path, server, transport, auth, server.services.config.tls.cert_file, maildir)

    out = mpop(tmp_path, rc, "--keep=on")
    if transport == "stls":
        assert "--> STLS" in out and "<-- +OK Begin TLS negotiation" in out
    else:
        assert "--> STLS" not in out
    assert "TLS session parameters" in out and "CN=mail.example.test" in out
    if auth == "plain":
        assert "--> AUTH PLAIN" in out and "--> USER" not in out
    else:
        assert f"--> USER {USER}" in out and "--> AUTH" not in out
    assert "<-- +OK Logged in" in out
    first = files(maildir)
    assert len(first) == 20
    assert_same_messages(first, stored)

    # The second run finds every UID in the uidls file: nothing new.
    out = mpop(tmp_path, rc, "--keep=on")
    assert "--> RETR" not in out and "new: no messages" in out, out
    assert files(maildir) == first

    # keep off: mpop deletes what it has already fetched.
    out = mpop(tmp_path, rc, "--keep=off")
    assert out.count("--> DELE ") == 20
    assert server.messages(USER) == []


@pytest.mark.peer("mpop")
def test_mpop_refuses_an_untrusted_certificate_or_a_wrong_name(server: LiveServer, tmp_path: Path) -> None:
    """Verification really happens, so the verified runs above prove something: another
    self-signed certificate for the same name as the trust file fails, and so does the server's
    own certificate checked against a name it does not carry. No password is sent either time."""
    from postoffice.net.tls import create_self_signed_certificate

    deliver(server, 1)
    assert server.services is not None
    stranger = tmp_path / "stranger.pem"
    create_self_signed_certificate(stranger, tmp_path / "stranger.key", "mail.example.test")
    maildir = make_maildir(tmp_path / "Maildir")
    for transport in ("stls", "pop3s"):
        rc = mpop_rc(tmp_path, server, transport, "plain", stranger, maildir)
        out = mpop(tmp_path, rc, expect=None)
        assert "TLS certificate verification failed" in out and "not trusted" in out.lower(), out
        assert "--> AUTH" not in out and "--> USER" not in out
        rc = mpop_rc(tmp_path, server, transport, "user", server.services.config.tls.cert_file, maildir,
                     extra="tls_host_override other.example")
        out = mpop(tmp_path, rc, expect=None)
        assert "TLS certificate verification failed" in out and "does not match" in out, out
        assert "--> AUTH" not in out and "--> USER" not in out
    assert files(maildir) == []
    assert len(server.messages(USER)) == 1
