"""Issue 17's end-to-end line: Debian's sieve-connect uploads and activates a script through
ManageSieve over STARTTLS (verifying the test certificate), and the store's active script is it."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from live_server import PASSWORD, LiveServer
from peers import require_peer

USER = "carol@example.test"
SCRIPT = ('require "fileinto";\r\n'
          'if not address :is "from" "boss@example.org" { fileinto "Other"; }\r\n')


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    # Plaintext logins are off even on loopback, so a login only works after STARTTLS.
    live = LiveServer(tmp_path / "data", ["managesieve"], auth={"plaintext_on_loopback": False}).start()
    live.add_user(USER)
    yield live
    live.stop()


def sieve_connect(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    program = require_peer("sieve-connect")
    read_end, write_end = os.pipe()
    os.write(write_end, PASSWORD.encode() + b"\n")
    os.close(write_end)
    try:
        return subprocess.run(
            [program, "--server", "127.0.0.1", "--port", str(server.ports["managesieve"]),
             "--user", USER, "--passwordfd", str(read_end), "--authmech", "PLAIN",
             "--tlscafile", str(server.data_dir / "tls" / "cert.pem"), "--tlshostname", "mail.example.test",
             "--noclearauth", *args],
            pass_fds=(read_end,), capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.close(read_end)


def test_sieve_connect_uploads_and_activates_over_starttls(server: LiveServer, tmp_path: Path) -> None:
    local = tmp_path / "filters.sieve"
    local.write_bytes(SCRIPT.encode())
    upload = sieve_connect(server, "--upload", "--localsieve", str(local), "--remotesieve", "filters")
    assert upload.returncode == 0, upload.stderr
    activate = sieve_connect(server, "--activate", "--remotesieve", "filters")
    assert activate.returncode == 0, activate.stderr
    listing = sieve_connect(server, "--list")
    assert listing.returncode == 0 and "filters" in listing.stdout and "ACTIVE" in listing.stdout, listing

    assert server.services is not None
    store = server.services.store

    async def active() -> tuple[str, str] | None:
        account = await store.get_account(USER)
        assert account is not None
        return await store.active_sieve_script(account.id)

    assert server.call(active()) == ("filters", SCRIPT)

    bad = tmp_path / "bad.sieve"
    bad.write_text('fileinto "x";\n')  # fileinto without require
    refused = sieve_connect(server, "--upload", "--localsieve", str(bad), "--remotesieve", "bad")
    assert refused.returncode != 0 and "line 1, column 1" in refused.stdout + refused.stderr, refused
