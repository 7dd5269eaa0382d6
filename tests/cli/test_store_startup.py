"""`postoffice serve` refuses, in one plain sentence and without touching a file, a store path
that does not lead to the store beside the message files, and a configured path whose parent
does not exist: the issue's "a typo deletes every message file"."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli import PASSWORD, po

USER = "alice@example.org"


@pytest.fixture
def data_with_mail(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    po("init", "--domain", "example.org", "--hostname", "mail.example.org", data=data)
    po("user", "add", USER, "--password-stdin", data=data, stdin=PASSWORD + "\n")
    mail = tmp_path / "mail"
    mail.mkdir()
    for n in range(5):
        (mail / f"{n}.eml").write_bytes(f"Subject: kept {n}\r\nMessage-ID: <{n}@x>\r\n\r\nbody {n}\r\n".encode())
    po("import", "eml", str(mail), "--into", USER, data=data)
    config = (data / "postoffice.toml").read_text()
    # No listeners: the store is what is under test, and a server that does start must not
    # need a port.
    config = re.sub(r"^(smtp|submission|submissions|imap|imaps|pop3|pop3s|http|https|managesieve) = .*$", r"\1 = []", config, flags=re.M)
    (data / "postoffice.toml").write_text(config)
    two_hours_ago = time.time() - 7200  # old enough for the clean-up of files no row knows
    for p in (data / "blobs").rglob("*"):
        os.utime(p, (two_hours_ago, two_hours_ago))
    return data


def blob_files(blobs: Path) -> set[str]:
    return {p.name for p in blobs.rglob("*") if p.is_file() and p.parent.name != "tmp"}


def serve(data: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`postoffice serve`, expected to refuse: a server that starts instead is stopped and the
    test fails (rather than hangs)."""
    proc = subprocess.Popen([sys.executable, "-m", "postoffice", "serve", "--data", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"serve started instead of refusing:\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def set_store_key(data: Path, key: str, value: str) -> None:
    config = (data / "postoffice.toml").read_text()
    config, count = re.subn(rf"^{key} = .*$", f'{key} = "{value}"', config, count=1, flags=re.M)
    assert count == 1
    (data / "postoffice.toml").write_text(config)


def test_serve_refuses_a_store_path_typo_and_keeps_every_message_file(data_with_mail: Path) -> None:
    data = data_with_mail
    before = blob_files(data / "blobs")
    assert len(before) == 5
    set_store_key(data, "path", "store.sqlite")  # the file is store.sqlite3
    result = serve(data)
    assert result.returncode == 1
    assert f"{data / 'store.sqlite'}:" in result.stderr and "[store] path" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert blob_files(data / "blobs") == before
    assert not (data / "store.sqlite").exists()
    # The admin commands refuse it the same way, so none of them creates the wrong file either.
    listed = po("user", "list", data=data, check=False)
    assert listed.returncode == 1 and "[store] path" in listed.stderr and not (data / "store.sqlite").exists()
    # With the path fixed, every message is there.
    set_store_key(data, "path", "store.sqlite3")
    po("export", USER, "--format", "mbox", str(data.parent / "out"), data=data)
    assert (data.parent / "out" / "INBOX.mbox").read_bytes().count(b"Subject: kept ") == 5


def test_serve_names_a_missing_parent_and_creates_nothing(data_with_mail: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "dir"
    set_store_key(data_with_mail, "blobs", str(missing / "blobs"))
    result = serve(data_with_mail)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"because {missing} does not exist" in result.stderr.replace("\n", ""), result.stderr
    assert not (tmp_path / "nonexistent").exists()
