"""Interop with mutt (Debian), driven in a real terminal through tmux: list the INBOX, read a
message, move it to another mailbox."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer

pytestmark = [pytest.mark.peer("mutt"), pytest.mark.peer("tmux")]
USER = "reader@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["imap", "smtp"]).start()
    live.add_user(USER)
    yield live
    live.stop()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30, check=True).stdout


def screen_until(session: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared on mutt's screen:\n{screen}")


def test_mutt_lists_reads_and_moves(server: LiveServer, tmp_path: Path) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=10) as smtp:
        for subject, body in (("Quarterly numbers", "Revenue is up."), ("Team lunch", "Friday at noon, the usual place.")):
            smtp.sendmail("boss@remote.example", [USER],
                          f"From: Boss <boss@remote.example>\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode())
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(f"""
set folder = "imap://{USER.replace('@', '%40')}@127.0.0.1:{server.ports['imap']}/"
set spoolfile = "+INBOX"
set imap_pass = "{PASSWORD}"
set ssl_starttls = no
set ssl_force_tls = no
set imap_check_subscribed = no
set confirmappend = no
set delete = yes
set move = no
set mark_old = no
set sort = date-sent
set header_cache = ""
set message_cachedir = ""
set timeout = 1
""")
    session = f"mutt{int(time.time() * 1000) % 100000}"
    tmux("new-session", "-d", "-s", session, "-x", "160", "-y", "40",
         f"TERM=xterm mutt -n -F {muttrc}")
    try:
        index = screen_until(session, "Team lunch")
        assert "Quarterly numbers" in index  # the INBOX is listed
        tmux("send-keys", "-t", session, "Enter")  # read the selected message
        pager = screen_until(session, "Revenue is up.")
        assert "Subject: Quarterly numbers" in pager
        tmux("send-keys", "-t", session, "q")  # back to the index
        screen_until(session, "Team lunch")
        tmux("send-keys", "-t", session, "s")  # save (move) the current message ...
        screen_until(session, "Save to mailbox")
        tmux("send-keys", "-t", session, "C-u", "=Archive", "Enter")
        time.sleep(1.0)
        tmux("send-keys", "-t", session, "$")  # sync: the moved message leaves the INBOX
        time.sleep(1.5)
        tmux("send-keys", "-t", session, "q")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(server.messages(USER, "Archive")) < 1:
            time.sleep(0.3)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
    archived = server.messages(USER, "Archive")
    inbox = server.messages(USER)
    assert len(archived) == 1 and b"Revenue is up." in archived[0]
    assert len(inbox) == 1 and b"Friday at noon" in inbox[0]
