"""`postoffice status` beside a real `postoffice serve` on the same data directory, and the
warning serve logs at start-up for a certificate made here that expires in 10 days."""
from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

from tests.net.test_tls_expiry import write_certificate

from cli_run import po
from serve_process import Serve, enqueue, init_data

ALICE = "alice@example.org"
MESSAGE = b"From: alice@example.org\r\nTo: bob@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_status_beside_serve_shows_listeners_queue_and_a_certificate_about_to_expire(tmp_path: Path) -> None:
    data = init_data(tmp_path / "data", (ALICE,))
    port = free_port()
    config = data / "postoffice.toml"
    config.write_text(re.sub(r"^imaps = .*$", f'imaps = ["127.0.0.1:{port}"]', config.read_text(), count=1, flags=re.M))
    write_certificate(data / "tls" / "cert.pem", days=10, key_path=data / "tls" / "key.pem")
    # both held: serve would soon bounce mail to remote.test, which has no MX in the quiet DNS
    for queue_id in enqueue(data, [(ALICE, MESSAGE, ["bob@remote.test"]), (ALICE, MESSAGE, ["carol@remote.test"])]):
        po("queue", "hold", str(queue_id), data=data)

    before = json.loads(po("status", "--json", data=data).stdout)
    assert before["serving"] is False and before["pid"] is None
    assert [(x["protocol"], x["listening"]) for x in before["listeners"]] == [("imaps", None)]

    serve = Serve(data).started()
    try:
        status = json.loads(po("status", "--json", data=data).stdout)
        table = po("status", data=data).stdout
    finally:
        log = serve.stop()
    assert status["serving"] is True and status["pid"] == serve.proc.pid
    assert status["listeners"] == [{"protocol": "imaps", "address": f"127.0.0.1:{port}", "listening": True}]
    assert before["queue"] == status["queue"]
    assert (status["queue"]["messages"], status["queue"]["held"], status["queue"]["deferred"]) == (2, 2, 0)
    assert status["queue"]["oldest"] <= time.time()
    (certificate,) = status["certificates"]
    assert certificate["key"] == "[tls] cert_file" and certificate["file"] == str(data / "tls" / "cert.pem")
    assert certificate["days_left"] == 9 and certificate["names"] == ["mail.example.org"]
    assert "expires in 9 day(s)" in certificate["warning"]
    assert f"server: serving (pid {serve.proc.pid})" in table
    assert f"imaps        127.0.0.1:{port}" in table and "listening" in table
    assert "queue: 2 message(s) waiting to be sent, 2 held, 0 deferred" in table
    assert "9 day(s) left  WARNING" in table
    # serve said so itself, at start-up, naming the file, its key and the fix
    assert f"The TLS certificate {data}/tls/cert.pem ([tls] cert_file) expires in 9 day(s)" in log
    assert "WARNING" in log.split("expires in 9 day(s)")[0].splitlines()[-1]


def test_status_help_has_an_example() -> None:
    assert "Example: postoffice status" in po("status", "--help").stdout

