"""A Dovecot (Debian's dovecot-imapd, dovecot-pop3d) of the test's own on loopback: free ports,
plaintext logins, Maildir under a temporary folder, and Gmail-like special-use folders."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peers import require_peer, unavailable

PASSWORD = "dovecot password"
# Gmail's names, with Gmail's SPECIAL-USE attributes (RFC 6154).
SPECIAL = {"[Gmail]/Sent Mail": "\\Sent", "[Gmail]/Drafts": "\\Drafts", "[Gmail]/Trash": "\\Trash",
           "[Gmail]/Spam": "\\Junk", "[Gmail]/All Mail": "\\All"}


@dataclass(frozen=True)
class Dovecot:
    imap_port: int
    pop3_port: int
    base: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dovecot exited: {log.read_text(errors='replace') if log.exists() else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("dovecot did not listen within 30 s")


@contextmanager
def running_dovecot(users: list[str]) -> Iterator[Dovecot]:
    require_peer("dovecot", package="dovecot-core")
    if not Path("/usr/lib/dovecot/imap").exists() or not Path("/usr/lib/dovecot/pop3").exists():
        unavailable("Dovecot's IMAP and POP3 servers are missing: install dovecot-imapd and dovecot-pop3d")
    if os.geteuid() != 0:
        unavailable("Dovecot needs root to start an instance of its own")
    try:
        vmail = pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"], check=True)
        vmail = pwd.getpwnam("vmail")
    base = Path(tempfile.mkdtemp(prefix="postoffice-dovecot-"))  # not under pytest's 0700 tmp
    base.chmod(0o755)
    mail = base / "mail"
    mail.mkdir()
    os.chown(mail, vmail.pw_uid, vmail.pw_gid)
    imap_port, pop3_port = _free_port(), _free_port()
    (base / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in users))
    mailboxes = "".join(
        f'  mailbox "{name}" {{\n    special_use = {use}\n    auto = subscribe\n  }}\n' for name, use in SPECIAL.items())
    (base / "dovecot.conf").write_text(f"""\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {base / "run"}
state_dir = {base / "state"}
log_path = {base / "dovecot.log"}
instance_name = postoffice-test-{imap_port}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:{mail}/%u/Maildir
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base / "passwd"}
}}
userdb {{
  driver = static
  args = uid={vmail.pw_uid} gid={vmail.pw_gid} home={mail}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(base / "dovecot.conf")], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _listening(imap_port, proc, base / "dovecot.log")
        _listening(pop3_port, proc, base / "dovecot.log")
        yield Dovecot(imap_port, pop3_port, base)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        shutil.rmtree(base, ignore_errors=True)
