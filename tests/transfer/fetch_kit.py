"""Shared by the fetch tests: fill an IMAP account with imaplib, read it back as a multiset of
(body hash, flags, INTERNALDATE) per folder, and read a fetched Maildir or mbox tree the same way."""

from __future__ import annotations

import hashlib
import imaplib
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from live_server import LiveServer
from postoffice.message.lines import to_crlf
from postoffice.transfer.maildir import read_maildir
from postoffice.transfer.mbox import read_mbox
from postoffice.transfer.source import SourceMessage

Entry = tuple[str, frozenset[str], int]  # sha256 of the CRLF form, flags, POSIX internal date
FLAG_CHOICES = ["()", "(\\Seen)", "(\\Seen \\Answered)", "(\\Flagged $Work)", "(\\Seen \\Draft)"]
BASE = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


def message(folder: str, n: int, size: int = 0) -> bytes:
    return (
        f"From: sender{n}@example.org\r\nTo: bob@example.test\r\nSubject: {folder} #{n}\r\n"
        f"Message-ID: <{n}.{abs(hash(folder))}@example.org>\r\n\r\nHello {n} in {folder}.\r\n"
        + "filler line\r\n" * (size // 13)
    ).encode()


def fill(imap: imaplib.IMAP4, folder: str, count: int, start: int = 0) -> None:
    """APPEND ``count`` messages to ``folder`` (created if needed), varied flags and dates."""
    if folder.upper() != "INBOX":
        imap.create(_quote(folder))
    for n in range(start, start + count):
        date = imaplib.Time2Internaldate(BASE + timedelta(hours=n))
        typ, _ = imap.append(_quote(folder), FLAG_CHOICES[n % len(FLAG_CHOICES)], date, message(folder, n, n % 7 * 100))
        assert typ == "OK"


def fill_store(live: LiveServer, address: str, folder: str, count: int) -> None:
    """Put ``count`` messages (as ``fill`` makes them) into ``folder`` through the store, in
    batches: what APPEND would do, a hundred times faster for setting up big accounts."""
    from postoffice.transfer.importer import Importer

    assert live.services is not None
    services = live.services
    messages = [
        SourceMessage(message(folder, n, n % 7 * 100), frozenset(FLAG_CHOICES[n % len(FLAG_CHOICES)].strip("()").split()),
                      BASE + timedelta(hours=n), folder, str(n))
        for n in range(count)
    ]

    async def run() -> None:
        account = await services.directory.get_user(address)
        assert account is not None
        await Importer(services.store, account, workers=1).run(messages)

    live.call(run(), timeout=300)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_FETCH_HEAD = re.compile(rb"UID (\d+).*FLAGS \(([^)]*)\).*INTERNALDATE (\"[^\"]+\")", re.S)


def source_multiset(imap: imaplib.IMAP4, folder: str) -> Counter[Entry]:
    """What ``folder`` holds, read with imaplib (independent of the code under test)."""
    typ, _ = imap.select(_quote(folder), readonly=True)
    assert typ == "OK"
    typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    found: Counter[Entry] = Counter()
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        m = _FETCH_HEAD.search(head)
        assert m is not None, head
        flags = frozenset(f for f in m[2].decode().split() if f != "\\Recent")
        found[(hashlib.sha256(to_crlf(body)).hexdigest(), flags, _posix(m[3]))] += 1
    return found


def _posix(quoted: bytes) -> int:
    text = quoted.decode().strip('"')
    parsed = datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z")
    return int(parsed.timestamp())


def maildir_multisets(root: Path) -> dict[str, Counter[Entry]]:
    out: dict[str, Counter[Entry]] = {}
    for m in read_maildir(root):
        date = int(m.internal_date.timestamp()) if m.internal_date else 0
        out.setdefault(m.folder, Counter())[(hashlib.sha256(m.raw).hexdigest(), m.flags, date)] += 1
    return out


def mbox_multisets(root: Path) -> dict[str, Counter[Entry]]:
    out: dict[str, Counter[Entry]] = {}
    for path in sorted(root.rglob("*.mbox")):
        folder = str(path.relative_to(root))[: -len(".mbox")]
        for m in read_mbox(path, folder):
            date = int(m.internal_date.timestamp()) if m.internal_date else 0
            out.setdefault(folder, Counter())[(hashlib.sha256(m.raw).hexdigest(), m.flags, date)] += 1
    return out


def mutt_message_count(path: Path, kind: str, workdir: Path) -> int:
    """How many messages mutt (Debian's, in a tmux terminal) finds in the Maildir or mbox at
    `path`: read from its status line, so mutt really parsed the folder."""
    import subprocess
    import time

    from peers import require_peer

    require_peer("mutt")
    require_peer("tmux")
    rc = workdir / "muttrc"
    rc.write_text(f"set folder={workdir}\nset mbox_type={'Maildir' if kind == 'maildir' else 'mbox'}\n"
                  "set status_format='STATUS Msgs:%m END'\n")
    session = f"fetch-mutt-{abs(hash(path)) % 10**8}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "30",
                    f"mutt -n -F {rc} -R -f '{path}'; sleep 30"], check=True, timeout=30)
    try:
        deadline = time.monotonic() + 60
        screen = ""
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True, timeout=30).stdout
            m = re.search(r"STATUS Msgs:(\d+) END", screen)
            if m is not None:
                return int(m[1])
            time.sleep(0.3)
        raise AssertionError(f"mutt did not open {path}:\n{screen}")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=30)
