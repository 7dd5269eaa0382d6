"""`[pop3] processes`: POP3 served by `postoffice serve` and its worker processes together.

A real `postoffice serve` in a subprocess, real sockets, poplib and imaplib. Which process takes
a connection is the kernel's choice, so each test repeats until the log shows the case it needs
(a session in a worker, a refusal in another process than the lock holder) and asserts that it
came within a bound.
"""
from __future__ import annotations

import imaplib
import os
import poplib
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "worker test password"
USERS = [f"user{n}@example.test" for n in range(1, 5)]
ATTEMPTS = 150  # connections tried before a test gives up waiting for the kernel to pick a worker
# The login lines of docs/logging.md: "login ok", or "login refused" with reason "maildrop in use".
LOGIN = re.compile(r"(?:\[worker (\d+)\])?: login (?:ok|(refused)): protocol=pop3s? ip=\S+ user=(\S+) ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(n: int, user: str) -> bytes:
    """Different for each user: blobs are stored once per content, and a blob another mailbox
    still references would stay whatever the locks did."""
    return (f"From: a@example.test\r\nTo: {user}\r\nSubject: message {n}\r\n"
            f"Message-ID: <w{n}.{user}>\r\n\r\nbody {n}\r\n" + "x" * 200 * n + "\r\n").encode()


class Served:
    """`postoffice serve` with [pop3] processes = 3, its log in a file."""

    def __init__(self, tmp: Path, processes: int = 3, settings: dict[str, object] | None = None) -> None:
        """`settings`: other keys of the generated config to change, e.g. {"failed_login_delay": 4}."""
        self.data = tmp / "data"
        self.log_path = tmp / "serve.log"
        po = [sys.executable, "-m", "postoffice"]
        subprocess.run([*po, "init", "--data", str(self.data), "--domain", "example.test",
                        "--hostname", "mail.example.test"], check=True, capture_output=True)
        for user in USERS:
            subprocess.run([*po, "user", "add", user, "--password-stdin", "--data", str(self.data)],
                           input=f"{PASSWORD}\n".encode(), check=True, capture_output=True)
        self.ports = {name: free_port() for name in ("pop3", "pop3s", "imap")}
        config = (self.data / "postoffice.toml").read_text()
        config = re.sub(r"^(smtp|submission|submissions|imaps|lmtp|http|https|managesieve) = .*$", r"\1 = []", config, flags=re.M)
        for name, port in self.ports.items():
            config = re.sub(rf"^{name} = .*$", f'{name} = ["127.0.0.1:{port}"]', config, flags=re.M)
        config = re.sub(r"^processes = .*$", f"processes = {processes}", config, flags=re.M)
        assert f"processes = {processes}" in config
        for key, value in (settings or {}).items():
            config, changed = re.subn(rf"^{key} = .*$", f"{key} = {value}", config, flags=re.M)
            assert changed == 1, key
        (self.data / "postoffice.toml").write_text(config)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([*po, "serve", "--data", str(self.data)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_for_log(lambda text: all(f"[worker {n}]: serving" in text for n in range(1, processes)))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, ready: object, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if ready(text):  # type: ignore[operator]
                return text
            assert self.proc.poll() is None, f"serve exited with {self.proc.returncode}:\n{text}"
            assert time.monotonic() < deadline, f"not in the log in time:\n{text}"
            time.sleep(0.05)

    def worker_pids(self) -> dict[int, int]:
        """Worker number -> pid of its latest start."""
        return {int(n): int(pid) for n, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", self.log())}

    def logins(self) -> list[tuple[int, str, bool]]:
        """(process: 0 = main, else the worker number; user; refused as in use) per login."""
        return [(int(worker or 0), user, bool(refused)) for worker, refused, user in LOGIN.findall(self.log())]

    def next_login(self, before: int) -> tuple[int, str, bool]:
        text = self.wait_for_log(lambda _: len(self.logins()) > before, timeout=10)
        assert text
        return self.logins()[before]

    def pop3(self, user: str) -> tuple[poplib.POP3, int]:
        """A logged-in session and the process that serves it."""
        before = len(self.logins())
        client = poplib.POP3("127.0.0.1", self.ports["pop3"], timeout=10)
        client.user(user)
        client.pass_(PASSWORD)
        process, logged_user, refused = self.next_login(before)
        assert (logged_user, refused) == (user, False)
        return client, process

    def serving_process(self, client_port: int) -> int:
        """Which process (0: the main one, else the worker number) holds the server side of
        the POP3 connection from `client_port`: its socket's inode, found in /proc."""
        server_end = f"0100007F:{self.ports['pop3']:04X} 0100007F:{client_port:04X}"
        inodes = [line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()
                  if " ".join(line.split()[1:3]) == server_end]
        assert inodes, f"no server socket for client port {client_port}"
        for process, pid in [(0, self.proc.pid), *self.worker_pids().items()]:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == f"socket:[{inodes[0]}]":
                        return process
                except FileNotFoundError:
                    continue
        raise AssertionError(f"no process holds the connection from port {client_port}")

    def imap(self, user: str) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=10)
        client.login(user, PASSWORD)
        return client

    def fill(self, user: str, count: int) -> None:
        imap = self.imap(user)
        for n in range(1, count + 1):
            assert imap.append("INBOX", None, None, message(n, user))[0] == "OK"
        imap.logout()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for pid in self.worker_pids().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not reaped yet) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("workers"))
    for user in USERS:
        server.fill(user, 5)
    yield server
    server.stop()
    errors = [line for line in server.log().splitlines() if " ERROR " in line or "Traceback" in line]
    assert not errors, errors


def in_worker(served: Served, user: str) -> poplib.POP3:
    """A session of `user` that a worker process serves (others are closed again)."""
    for _ in range(ATTEMPTS):
        client, process = served.pop3(user)
        if process:
            return client
        client.quit()
    pytest.fail(f"no POP3 session of {ATTEMPTS} was served by a worker:\n{served.log()[-3000:]}")


def test_workers_and_the_main_process_all_serve_pop3(served: Served) -> None:
    seen = set()
    for attempt in range(ATTEMPTS):
        user = USERS[attempt % len(USERS)]
        client, process = served.pop3(user)
        assert client.stat() == (5, sum(len(message(n, user)) for n in range(1, 6)))
        assert client.retr(3)[1][-1] == b"x" * 600
        client.quit()
        seen.add(process)
        if seen == {0, 1, 2}:
            break
    assert seen == {0, 1, 2}, "every process takes connections"
    assert len(served.worker_pids()) == 2


def test_implicit_tls_port_is_served_by_workers_too(served: Served) -> None:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    for _ in range(ATTEMPTS):
        before = len(served.logins())
        client = poplib.POP3_SSL("127.0.0.1", served.ports["pop3s"], timeout=10, context=context)
        client.user(USERS[0])
        client.pass_(PASSWORD)
        process = served.next_login(before)[0]
        assert client.stat()[0] == 5
        client.quit()
        if process:
            return
    pytest.fail("no POP3S session was served by a worker")


def test_one_session_per_maildrop_across_processes(served: Served) -> None:
    holder, holder_process = served.pop3(USERS[1])
    other_processes = set()
    for _ in range(ATTEMPTS):
        before = len(served.logins())
        client = poplib.POP3("127.0.0.1", served.ports["pop3"], timeout=10)
        client.user(USERS[1])
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            client.pass_(PASSWORD)
        client.quit()
        process, user, refused = served.next_login(before)
        assert (user, refused) == (USERS[1], True)
        if process != holder_process:
            other_processes.add(process)
        if len(other_processes) == 2:
            break
    assert len(other_processes) == 2, "both other processes refused the second session"
    assert holder.stat()[0] == 5  # the holder was not disturbed
    holder.quit()
    # Released at QUIT, in every process.
    client, _ = served.pop3(USERS[1])
    client.quit()


def test_imap_idle_sees_what_a_worker_session_deleted(served: Served) -> None:
    user = USERS[2]
    pop3 = in_worker(served, user)
    imap = served.imap(user)
    assert imap.select("INBOX") == ("OK", [b"5"])
    tag = imap._new_tag().decode()
    imap.send(f"{tag} IDLE\r\n".encode())
    assert imap.readline().startswith(b"+ ")
    pop3.dele(1)
    pop3.dele(2)
    assert pop3.quit().startswith(b"+OK")
    assert [imap.readline(), imap.readline()] == [b"* 1 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"]
    imap.send(b"DONE\r\n")
    assert imap.readline() == f"{tag} OK IDLE terminated\r\n".encode()
    assert imap.select("INBOX") == ("OK", [b"3"])
    imap.logout()


def test_message_expunged_by_imap_stays_readable_for_a_worker_session(served: Served) -> None:
    user = USERS[3]
    pop3 = in_worker(served, user)
    first = pop3.retr(1)[1]
    imap = served.imap(user)
    imap.select("INBOX")
    imap.store("1:2", "+FLAGS", "\\Deleted")
    assert imap.expunge()[0] == "OK"
    imap.logout()
    time.sleep(0.3)  # the main process removes unreferenced blobs right after an expunge
    assert pop3.retr(1)[1] == first  # RFC 1939 §8: the maildrop is as it was at login
    assert pop3.retr(2)[1][-1] == b"x" * 400
    pop3.quit()
    client, _ = served.pop3(user)
    assert client.stat()[0] == 3
    client.quit()


def test_imap_session_still_reads_what_a_worker_session_deleted(served: Served) -> None:
    """RFC 9051 §7.5.1: until the IMAP session is told of the expunge (not during FETCH), it may
    still FETCH the message, though a POP3 session in another process removed it."""
    user = USERS[0]
    imap = served.imap(user)
    assert imap.select("INBOX")[0] == "OK"
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK"
    body = data[0][1]  # type: ignore[index]
    pop3 = in_worker(served, user)
    pop3.dele(1)
    assert pop3.quit().startswith(b"+OK")
    time.sleep(0.3)  # the change reaches the main process; a blob sweep would run now
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK" and data[0][1] == body  # type: ignore[index]
    assert imap.noop()[0] == "OK"  # now it is told
    imap.logout()


def test_a_dead_worker_is_replaced_and_workers_end_with_the_server(tmp_path: Path) -> None:
    server = Served(tmp_path, processes=2)
    try:
        server.fill(USERS[0], 1)
        first = server.worker_pids()[1]
        os.kill(first, signal.SIGKILL)
        server.wait_for_log(lambda _: server.worker_pids()[1] != first)
        server.wait_for_log(lambda text: text.count("[worker 1]: serving") == 2)
        in_worker(server, USERS[0]).quit()
        second = server.worker_pids()[1]
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while alive(second):
            assert time.monotonic() < deadline, "the worker outlived the server"
            time.sleep(0.05)
        assert "exited with status -9; starting it again" in server.log()
    finally:
        server.stop()


def test_workers_stop_when_the_server_is_killed(tmp_path: Path) -> None:
    server = Served(tmp_path, processes=3)
    try:
        workers = list(server.worker_pids().values())
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "a worker outlived the killed server"
            time.sleep(0.05)
    finally:
        server.stop()


# --- limits that hold for every process together (issue 13) -------------------------------------

PER_IP = 4  # connections not logged in that one address may hold
DELAY = 4  # seconds: the failed-login delay


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("limited"), settings={
        "max_connections_per_ip": PER_IP, "failed_login_delay": float(DELAY)})
    yield server
    server.stop()


def greeting(sock: socket.socket) -> bytes:
    return sock.makefile("rb").readline()


@pytest.mark.timeout(120)
def test_connections_per_address_are_counted_over_every_process(limited: Served) -> None:
    socks = [socket.create_connection(("127.0.0.1", limited.ports["pop3"]), timeout=10)
             for _ in range(3 * PER_IP)]
    try:
        greetings = [greeting(sock) for sock in socks]
        accepted = [sock for sock, line in zip(socks, greetings, strict=True) if line.startswith(b"+OK")]
        refused = [line for line in greetings if not line.startswith(b"+OK")]
        assert len(accepted) == PER_IP, greetings
        assert set(refused) == {b"-ERR [SYS/TEMP] Too many connections from your address\r\n"}
        # They were spread over the processes, each of which alone would have taken PER_IP.
        processes = {limited.serving_process(sock.getsockname()[1]) for sock in accepted}
        assert len(processes) > 1, processes
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.timeout(120)
def test_a_failed_login_slows_down_the_address_in_every_process(limited: Served) -> None:
    """A wrong password in one process: a login from the same address in another process,
    arriving before the delay is over, is not checked but told to try again once it is."""
    socks: list[socket.socket] = []
    try:
        by_process: dict[int, socket.socket] = {}
        for _ in range(30):  # the accept board spreads connections: two processes come soon
            sock = socket.create_connection(("127.0.0.1", limited.ports["pop3"]), timeout=3 * DELAY)
            socks.append(sock)
            assert greeting(sock).startswith(b"+OK")
            by_process.setdefault(limited.serving_process(sock.getsockname()[1]), sock)
            if len(by_process) == 2:
                break
            if len(socks) >= PER_IP:  # keep within the per-address limit
                socks.pop(0).close()
        assert len(by_process) == 2, "two processes took connections"
        failing, other = (sock.makefile("rwb", buffering=0) for sock in by_process.values())
        # A password that is not UTF-8 fails at once, without the slow password check.
        for session, user in ((failing, USERS[2]), (other, USERS[3])):
            session.write(f"USER {user}\r\n".encode())
            assert session.readline().startswith(b"+OK")
        failing.write(b"PASS wrong\xff\r\n")
        time.sleep(0.5)  # the failure is recorded; its answer waits for the delay
        started = time.monotonic()
        other.write(f"PASS {PASSWORD}\r\n".encode())
        answer = other.readline()
        assert answer.startswith(b"-ERR [SYS/TEMP]"), answer
        assert time.monotonic() - started > DELAY / 2  # held back until the delay was over
        assert failing.readline().startswith(b"-ERR [AUTH]")
    finally:
        for sock in socks:
            sock.close()


def test_shutdown_with_pop3_connections_open_logs_no_error(tmp_path: Path) -> None:
    """The accept board outlives the listeners: a connection still open at SIGTERM gives its
    board slot back as it closes (it used to meet a released board: an ERROR traceback)."""
    server = Served(tmp_path, processes=2)
    clients: list[poplib.POP3] = []
    try:
        for _ in range(6):  # the board spreads them: some are the main process's
            clients.append(poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10))
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        log = server.log()
        assert "Traceback" not in log and " ERROR " not in log and "ERROR:" not in log, log
    finally:
        for client in clients:
            client.sock.close()
        server.stop()
