"""`[smtp] processes`: SMTP and submission served by `postoffice serve` and a worker process
together (net/workers.py), with IMAP and the queue runner in the main process.

A real `postoffice serve` in a subprocess, real sockets: smtplib, imaplib and a raw IMAP IDLE.
Which process takes a connection is the kernel's and the accept board's choice, so the test
sends over new connections until the log shows transactions in both processes, within a bound.
"""
from __future__ import annotations

import asyncio
import imaplib
import re
import signal
import smtplib
import socket
import ssl
import time
from pathlib import Path

from tests.queue.peer_host import PeerHost, Record, greet, take_mail

from postoffice.delivery import Envelope, deliver_message
from postoffice.directory import Directory
from postoffice.net.tls import create_self_signed_certificate
from postoffice.store import open_store
from postoffice.store.interface import OutboundMessage, QueuedRecipient
from serve_process import PASSWORD, Serve, init_data

ALICE = "alice@example.org"
BOB = "bob@example.org"
SINK = "127.0.0.1"
ATTEMPTS = 60  # messages sent before giving up on seeing both processes take one
IN_WORKER = re.compile(r"\[worker 1\]: smtp transaction: protocol=smtp ")
IN_MAIN = re.compile(r"^(?!.*\[worker \d+\]).*: smtp transaction: protocol=smtp ", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.05)


def serve_with_two_smtp_processes(data: Path, ports: dict[str, int]) -> Serve:
    """`serve` on `data` with `[smtp] processes = 2`, each of `ports` on 127.0.0.1, once the
    SMTP worker serves too."""
    config = (data / "postoffice.toml").read_text()
    for name, port in ports.items():
        config = re.sub(rf"^{name} = .*$", f'{name} = ["127.0.0.1:{port}"]', config, flags=re.M)
    config, changed = re.subn(r"^(\[smtp\](?:\n(?!\[).*)*?\n)(?:# )?processes = .*$", r"\1processes = 2",
                              config, flags=re.M)
    assert changed == 1
    (data / "postoffice.toml").write_text(config)
    server = Serve(data).started()
    try:
        wait_for(lambda: "[worker 1]: serving smtp on" in server.log_text(), "the SMTP worker's start")
    except BaseException:
        server.stop()
        raise
    return server


def message(n: int) -> str:
    return (f"From: <carol@outside.test>\r\nTo: <{BOB}>\r\nSubject: worker test {n}\r\n"
            f"Message-ID: <w{n}@outside.test>\r\n\r\nbody {n}\r\n")


class Idle:
    """A raw IMAP session of BOB idling on INBOX; `exists()` is the highest EXISTS seen."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""
        self._read_until(b"* OK")
        self._command(b"a LOGIN " + BOB.encode() + b' "' + PASSWORD.encode() + b'"', b"a OK")
        self._command(b"b SELECT INBOX", b"b OK")
        self.sock.sendall(b"c IDLE\r\n")
        self._read_until(b"+ ")

    def _command(self, line: bytes, done: bytes) -> None:
        self.sock.sendall(line + b"\r\n")
        self._read_until(done)

    def _read_until(self, marker: bytes) -> None:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"IMAP closed before {marker!r}: {self.buffer!r}"
            self.buffer += chunk

    def wait_exists(self, count: int, timeout: float = 30) -> None:
        self.sock.settimeout(timeout)
        while not any(int(n) >= count for n in re.findall(rb"\* (\d+) EXISTS", self.buffer)):
            chunk = self.sock.recv(65536)
            assert chunk, f"IMAP closed while idling: {self.buffer!r}"
            self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def test_smtp_in_two_processes_delivers_from_both_and_imap_idle_and_the_runner_see_it(tmp_path: Path) -> None:
    record = Record()

    async def sink(reader, writer) -> None:  # type: ignore[no-untyped-def]
        await greet(reader, writer, b"250-PIPELINING\r\n")
        await take_mail(reader, writer, record)

    with PeerHost({SINK: sink}) as host:
        data = init_data(tmp_path / "data", (ALICE, BOB), outbound=f"""
            mx_port = {host.port}
            retry_schedule = [1]""")
        ports = {name: free_port() for name in ("smtp", "submission", "imap")}
        server = serve_with_two_smtp_processes(data, ports)
        try:
            idle = Idle(ports["imap"])
            sent = 0
            while not (IN_WORKER.search(server.log_text()) and IN_MAIN.search(server.log_text())):
                assert sent < ATTEMPTS, f"{sent} connections did not reach both processes:\n{server.log_text()}"
                with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=30) as smtp:
                    smtp.sendmail("carol@outside.test", [BOB], message(sent))
                sent += 1
                time.sleep(0.05)
            # Every 250 is a message in BOB's INBOX, whichever process took it; the IDLE session
            # in the main process hears of those a worker delivered.
            idle.wait_exists(sent)
            idle.close()
            imap = imaplib.IMAP4("127.0.0.1", ports["imap"])
            imap.login(BOB, PASSWORD)
            imap.select("INBOX", readonly=True)
            _, found = imap.search(None, "ALL")
            assert len(found[0].split()) == sent
            _, subjects = imap.fetch(b"1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert sorted(re.findall(rb"worker test (\d+)", b"".join(p[1] for p in subjects if isinstance(p, tuple)))) \
                == sorted(str(n).encode() for n in range(sent))
            imap.logout()
            # Submission to an outside address, over new connections until a worker took one: the
            # runner in the main process sends what the worker queued.
            submitted = 0
            while not re.search(r"\[worker 1\]: smtp transaction: protocol=submission ", server.log_text()):
                assert submitted < ATTEMPTS, server.log_text()
                with smtplib.SMTP("127.0.0.1", ports["submission"], timeout=30) as smtp:
                    smtp.login(ALICE, PASSWORD)
                    smtp.sendmail(ALICE, [f"dave@[{SINK}]"],
                                  f"From: <{ALICE}>\r\nTo: <dave@[{SINK}]>\r\nSubject: out {submitted}\r\n\r\nhi\r\n")
                submitted += 1
            wait_for(lambda: len(record.messages) == submitted, f"{submitted} messages at the sink")
        finally:
            log = server.stop()
        assert "Traceback" not in log, log


def test_the_watcher_wakes_the_queue_runner_when_another_process_queues(tmp_path: Path) -> None:
    """The main process's store watcher calls `on_queued` when a row appears that another
    process (here: another store object on the same files, as a worker has) queued."""
    data = init_data(tmp_path / "data", (ALICE,))

    async def run() -> int:
        main = open_store("sqlite", data / "store.sqlite3", data / "blobs")
        other = open_store("sqlite", data / "store.sqlite3", data / "blobs")
        woken = asyncio.Event()
        try:
            main.watch_external_changes(0.02, on_queued=woken.set)  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
            assert not woken.is_set()
            outbound = OutboundMessage(ALICE, (QueuedRecipient("dave@outside.test"),))
            report = await deliver_message(other, Directory(other), Envelope(ALICE, ()),
                                           b"Subject: queued\r\n\r\nhi\r\n", outbound=outbound)
            await asyncio.wait_for(woken.wait(), 10)
            assert report.queue_id is not None
            return report.queue_id
        finally:
            await other.close()
            await main.close()

    assert asyncio.run(run()) > 0


def served_certificate(port: int) -> bytes:
    """The certificate SMTP STARTTLS presents on 127.0.0.1:port (not verified: self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30) as client:
        client.starttls(context=context)
        der = client.sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_sighup_and_renewals_reach_the_worker_processes(tmp_path: Path) -> None:
    """A new certificate (ACME writes the files, then reloads; or the administrator replaces them
    and sends SIGHUP) is served by every process at once: the main process passes SIGHUP on to
    its workers, which otherwise would look at the files only on their next handshake a second
    later (a CI run saw the worker's old self-signed certificate right after an ACME issue)."""
    data = init_data(tmp_path / "data", (ALICE,))
    port = free_port()
    server = serve_with_two_smtp_processes(data, {"smtp": port})
    try:
        old = (data / "tls" / "cert.pem").read_bytes()
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        create_self_signed_certificate(fresh / "cert.pem", fresh / "key.pem", "mail.example.org")
        (data / "tls" / "key.pem").write_bytes((fresh / "key.pem").read_bytes())
        (data / "tls" / "cert.pem").write_bytes((fresh / "cert.pem").read_bytes())
        assert (data / "tls" / "cert.pem").read_bytes() != old
        server.proc.send_signal(signal.SIGHUP)
        loaded = re.compile(r"^(.*)Loaded the new TLS certificate", re.M)
        wait_for(lambda: any("[worker 1]" in m[1] for m in loaded.finditer(server.log_text())),
                 "the worker's reload")
        expected = ssl.PEM_cert_to_DER_cert((fresh / "cert.pem").read_text())
        assert {served_certificate(port) == expected for _ in range(12)} == {True}
        assert server.proc.poll() is None  # SIGHUP reloads; it does not stop the server
    finally:
        server.stop()
