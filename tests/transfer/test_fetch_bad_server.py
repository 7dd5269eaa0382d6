"""`postoffice fetch` against a scripted server that misbehaves: each fault is reported in the
summary, the rest completes, and a rerun (once the server behaves) finishes the job, without
duplicates. Also Gmail's labels (X-GM-EXT-1) and a server answering LOGIN with NO."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fetch_kit import maildir_multisets
from scripted_imap import Folder, Message, ScriptedImap, messages

from cli_run import po

ENV = {"POSTOFFICE_FROM_PASSWORD": "pw"}


def fetch(server: ScriptedImap, dest: Path, *args: str, check: bool = True) -> tuple[int, dict[str, object]]:
    result = po("fetch", f"imap://bob@127.0.0.1:{server.port}?tls=none", "--to", f"maildir:{dest}", "--json",
                *args, env=ENV, check=check, timeout=120)
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def bad() -> Iterator[ScriptedImap]:
    folders = [Folder("INBOX", messages("inbox", 10)), Folder("Other", messages("other", 6)),
               Folder("Bad&Jjo", messages("broken", 3))]  # "&Jjo" lacks its "-": not modified UTF-7
    with ScriptedImap(folders) as server:
        server.faults.drop_mid_literal.add(("INBOX", 7))
        server.faults.refuse.add(("Other", 3))
        server.faults.malformed.add(("Other", 5))
        yield server


def test_faults_are_reported_the_rest_completes_and_a_rerun_finishes(bad: ScriptedImap, tmp_path: Path) -> None:
    dest = tmp_path / "Mail"
    code, first = fetch(bad, dest, check=False)
    assert code == 1, first
    reasons = {(f["folder"], f["uid"]): f["reason"] for f in first["failures"]}  # type: ignore[union-attr]
    assert "NO" in reasons[("Other", 3)] and "cannot read that message" in reasons[("Other", 3)]
    assert "malformed" in reasons[("Other", 5)]
    assert ("INBOX", None) in reasons and "run fetch again" in reasons[("INBOX", None)]
    assert any("not valid modified UTF-7" in w for w in first["warnings"])  # type: ignore[union-attr]
    fetched = maildir_multisets(dest)
    assert sum(fetched["Other"].values()) == 4  # all but the refused and the malformed one
    assert sum(fetched["Bad&Jjo"].values()) == 3
    assert 6 <= sum(fetched["INBOX"].values()) < 10  # those before the drop, written and kept

    bad.faults.refuse.clear()
    bad.faults.malformed.clear()
    code, second = fetch(bad, dest)
    assert code == 0 and second["failed"] == 0, second
    assert second["copied"] == 19 - first["copied"]  # type: ignore[operator]
    fetched = maildir_multisets(dest)
    for folder in bad.folders.values():
        assert sum(fetched[folder.wire_name].values()) == len(folder.messages), folder.wire_name
        assert all(n == 1 for n in fetched[folder.wire_name].values())


def test_wrong_password_is_one_sentence_and_exit_1(bad: ScriptedImap, tmp_path: Path) -> None:
    result = po("fetch", f"imap://bob@127.0.0.1:{bad.port}?tls=none", "--to", f"maildir:{tmp_path / 'M'}",
                env={"POSTOFFICE_FROM_PASSWORD": "wrong"}, check=False)
    assert result.returncode == 1 and "refused the login of bob" in result.stderr
    assert "Traceback" not in result.stderr


def gmail_folders() -> list[Folder]:
    a = Message(1, b"Subject: a\r\n\r\nA\r\n", ("\\Seen",), gm_msgid=111, labels=("Work", "\\Important"))
    b = Message(2, b"Subject: b\r\n\r\nB\r\n", (), gm_msgid=222, labels=("Work", "Family"))
    c = Message(3, b"Subject: c\r\n\r\nC\r\n", (), gm_msgid=333, labels=())
    spam = Message(1, b"Subject: spam\r\n\r\nS\r\n", (), gm_msgid=444, labels=())
    return [
        Folder("INBOX", [Message(1, a.raw, a.flags, gm_msgid=111, labels=a.labels)]),
        Folder("[Gmail]/All Mail", [a, b, c], attributes=("\\All",)),
        Folder("[Gmail]/Spam", [spam], attributes=("\\Junk",)),
        Folder("Work", [Message(5, a.raw, a.flags, gm_msgid=111), Message(6, b.raw, gm_msgid=222)]),
    ]


def test_gmail_all_mail_with_labels_as_keywords(tmp_path: Path) -> None:
    with ScriptedImap(gmail_folders(), gmail=True) as server:
        code, summary = fetch(server, tmp_path / "Mail")
    assert code == 0 and summary["copied"] == 4, summary
    fetched = maildir_multisets(tmp_path / "Mail")
    assert set(fetched) == {"[Gmail]/All Mail", "[Gmail]/Spam"}  # INBOX and Work: labels, not fetched
    flags = sorted(sorted(flags) for (_, flags, _) in fetched["[Gmail]/All Mail"])
    assert flags == [[], ["$Important", "Work", "\\Seen"], ["Family", "Work"]]


def test_gmail_labels_as_folders_download_each_message_once(tmp_path: Path) -> None:
    with ScriptedImap(gmail_folders(), gmail=True) as server:
        code, summary = fetch(server, tmp_path / "Mail", "--gmail-labels", "folders")
    assert code == 0, summary
    assert summary["copied"] == 4 and summary["skipped_duplicates"] == 3, summary  # INBOX a, Work a and b: linked
    fetched = maildir_multisets(tmp_path / "Mail")
    assert sum(fetched["Work"].values()) == 2 and sum(fetched["INBOX"].values()) == 1
    inode = {p.stat().st_ino for p in (tmp_path / "Mail").rglob("*") if p.is_file() and ",H=" in p.name}
    assert len(inode) == 4  # seven files, four messages


def test_oauth_token_command_is_run_again_when_the_token_is_refused(tmp_path: Path) -> None:
    # The command prints an expired token first, then a fresh one: one refused login, then in.
    counter = tmp_path / "runs"
    command = tmp_path / "token.sh"
    command.write_text(f'#!/bin/sh\necho x >> {counter}\n[ "$(wc -l < {counter})" -ge 2 ] && echo fresh || echo expired\n')
    command.chmod(0o755)
    with ScriptedImap([Folder("INBOX", messages("inbox", 3))], token="fresh") as server:
        result = po("fetch", f"imap://bob@127.0.0.1:{server.port}?tls=none", "--to", f"maildir:{tmp_path / 'M'}",
                    "--json", "--oauth-token-command", str(command), timeout=120)
        assert server.logins == ["XOAUTH2 refused", "XOAUTH2 ok"]
    assert json.loads(result.stdout)["copied"] == 3
    assert counter.read_text().count("x") == 2


def test_password_from_netrc_and_admin_login(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login admin password master-secret\n")
    netrc.chmod(0o600)
    with ScriptedImap([Folder("INBOX", messages("inbox", 2))], admin=("admin", "master-secret")) as server:
        result = po("fetch", f"imap://bob@127.0.0.1:{server.port}?tls=none", "--to", f"maildir:{tmp_path / 'M'}",
                    "--json", "--authuser", "admin", env={"NETRC": str(netrc)}, timeout=120)
        assert server.logins == ["PLAIN ok as bob"]  # the admin's password, on bob's behalf
    assert json.loads(result.stdout)["copied"] == 2
    nothing = po("fetch", f"imap://bob@127.0.0.1:{server.port}?tls=none", "--to", f"maildir:{tmp_path / 'M'}",
                 env={"NETRC": str(tmp_path / "none")}, check=False)
    assert nothing.returncode == 1 and "No password for bob" in nothing.stderr
