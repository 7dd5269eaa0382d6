"""Real DNS servers on loopback for tests: NSD serves the zone files of tests/zones/, Unbound in
front of it is the recursive resolver postoffice points at (DESIGN §6).

    def test_x(dns_server: DnsServers) -> None:         # session-scoped fixture (conftest.py)
        LiveServer(data, ["smtp"], dns={"nameservers": (dns_server.address,)})  # 127.0.0.1:<port>
        DnsResolver((dns_server.address,), timeout=1.0)  # or "127.0.0.1:<port>" in postoffice.toml:
        dns_server.nameserver                             #   [dns] nameservers = [that]
        dns_server.add_zone("mine.test", "@ TXT ...")   # a zone of the test's own (restarts NSD)
        dns_server.queries("host.example.test", "A")    # questions Unbound received so far

Conventions for zones (other parts add theirs):
- Every ``tests/zones/<origin>.zone`` is loaded, served as zone <origin> (``example.test.zone``
  serves example.test, ``127.in-addr.arpa.zone`` the loopback reverse names). Use the .test TLD
  (RFC 6761) or names under a reverse zone; give the zone an SOA (its minimum is the negative TTL)
  and an NS. One zone per area is fine (``dkim.example.test.zone`` may sit beside
  ``example.test.zone``: the more specific zone wins, as on the Internet).
- NSD serves every zone and a root zone, and Unbound asks NSD for everything, so a CNAME from one
  zone into another (a DKIM key published as a CNAME into a provider's zone) resolves the way it
  does on the Internet, through the recursive resolver, and any other name is NXDOMAIN.
- Failing names: a question about anything under ``timeout.test`` is never answered (Unbound
  drops it, every time: the client times out after its configured timeout; a real upstream that
  never answers would be marked down by Unbound after a dozen timeouts and then SERVFAIL at once);
  anything under ``servfail.test`` gets SERVFAIL (NSD serves that zone from a file that is
  missing, as a broken provider would).
- Addresses tests connect from are 127.0.0.x: their PTR records are in 127.in-addr.arpa.zone.
- Each zone is a stub zone of Unbound (NSD's address), so Unbound never follows the zone's own NS
  records (ns.<zone> at 127.0.0.1 port 53, where nothing listens). `check domain` asks those
  servers directly, on NSD's port: `[dns] authoritative_port = dns_server.nsd_port`.

`BrokenDnsServer` is a tiny DNS server in a thread answering whatever bytes a test gives it
(malformed answers, silence, a 100 KB reply over TCP): a test peer for the resolver, pointed at
directly (Unbound would clean the answers up).

Without NSD or Unbound installed (Debian packages nsd, unbound) the tests using the fixture skip
naming the package, or fail under POSTOFFICE_REQUIRE_PEERS=1 (tests/peers.py).
"""
from __future__ import annotations

import contextlib
import ctypes
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from peers import require_peer
from postoffice.config import ListenAddress

ZONES = Path(__file__).resolve().parent / "zones"
TIMEOUT_ZONE = "timeout.test"
SERVFAIL_ZONE = "servfail.test"
START_SECONDS = 15.0
_ROOT_ZONE = """$TTL 300
@ SOA ns.root-servers.test. hostmaster.root-servers.test. 1 3600 600 86400 60
@ NS ns.root-servers.test.
"""
# Unbound answers these from built-in local zones (RFC 6761, RFC 6303) unless told not to.
_UNBOUND_DEFAULT_ZONES = ("test.", "127.in-addr.arpa.", "8.b.d.0.1.0.0.2.ip6.arpa.", "localhost.")


def _program(name: str, package: str) -> str:
    """Daemons live in /usr/sbin, which a non-root PATH may lack."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return path or require_peer(name, package)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so no daemon outlives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A loopback port free for both UDP and TCP now (a DNS server needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port for UDP and TCP")


def _wait_for_answer(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server answers a question for the root (any answer will do)."""
    query = _query_bytes(".", 6)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}: {text[-2000:]}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.2)
            try:
                sock.sendto(query, ("127.0.0.1", port))
                sock.recv(4096)
                return
            except OSError:
                pass
    raise RuntimeError(f"{process.args[0]} did not answer on port {port} in {START_SECONDS:.0f} s")


def _query_bytes(name: str, rrtype: int, ident: int = 0x5050) -> bytes:
    labels = [label.encode() for label in name.strip(".").split(".") if label]
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", rrtype, 1)


class DnsServers:
    """NSD (authoritative for every test zone) behind Unbound (recursive), both on loopback."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.zones_dir = workdir / "zones"
        self.zones_dir.mkdir(parents=True)
        self.nsd_port = 0
        self.unbound_port = 0
        self._nsd: subprocess.Popen[bytes] | None = None
        self._unbound: subprocess.Popen[bytes] | None = None
        self._zones: dict[str, Path] = {}

    @property
    def address(self) -> ListenAddress:
        """What `[dns] nameservers` names: the recursive resolver."""
        return ListenAddress("127.0.0.1", self.unbound_port)

    @property
    def nameserver(self) -> str:
        """The same, as written in postoffice.toml: "127.0.0.1:<port>"."""
        return str(self.address)

    def start(self) -> DnsServers:
        for path in sorted(ZONES.glob("*.zone")):
            self._zones[path.name.removesuffix(".zone").lower().rstrip(".")] = path
        (self.dir / "root.zone").write_text(_ROOT_ZONE)
        for attempt in range(3):
            self.nsd_port, self.unbound_port = free_port(), free_port()
            try:
                self._start_nsd()
                self._start_unbound()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
        return self

    def add_zone(self, origin: str, text: str) -> None:
        """Serve (or replace) zone `origin` with `text` (zone-file syntax, names relative to the
        origin; an SOA and NS are added when missing). NSD restarts and Unbound forgets what it
        cached, about a tenth of a second."""
        origin = origin.lower().rstrip(".")
        if not re.search(r"\sSOA\s", text):
            text = f"@ SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 60\n@ NS ns.{origin}.\n" + text
        path = self.zones_dir / f"{origin}.zone"
        path.write_text(f"$ORIGIN {origin}.\n$TTL 300\n{text}")
        new = origin not in self._zones
        self._zones[origin] = path
        self._stop_process(self._nsd)
        self._start_nsd()
        if new:  # its own delegation point, like the zones loaded at start (see _start_unbound)
            self._control("stub_add", origin, f"127.0.0.1@{self.nsd_port}")
        self.flush()

    def flush(self) -> None:
        """Make Unbound forget every answer and every server it judged down."""
        for command in (["flush_zone", "."], ["flush_infra", "all"], ["flush_negative"]):
            self._control(*command)

    def _control(self, *command: str) -> None:
        subprocess.run([_program("unbound-control", "unbound"), "-c", str(self.dir / "unbound.conf"),
                        *command], check=True, capture_output=True, timeout=10)

    def queries(self, name: str | None = None, rrtype: str | None = None) -> int:
        """How many questions Unbound received (for `name` and `rrtype` when given)."""
        count = 0
        log = self.dir / "unbound.log"
        for line in log.read_text(errors="replace").splitlines():
            fields = line.split()
            # "[time] unbound[pid:0] info: 127.0.0.1 host.example.test. A IN"
            if len(fields) != 7 or fields[2] != "info:" or fields[6] != "IN":
                continue
            if name is not None and fields[4].lower().rstrip(".") != name.lower().rstrip("."):
                continue
            if rrtype is not None and fields[5] != rrtype.upper():
                continue
            count += 1
        return count

    def stop(self) -> None:
        for process in (self._unbound, self._nsd):
            self._stop_process(process)
        self._unbound = self._nsd = None

    def close(self) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------

    def _start_nsd(self) -> None:
        zones = [("", self.dir / "root.zone"), *sorted(self._zones.items())]
        # A zone whose file is missing: NSD answers SERVFAIL for it, as for a zone it failed to load.
        zones.append((SERVFAIL_ZONE, self.dir / "missing.zone"))
        conf = self.dir / "nsd.conf"
        conf.write_text(
            "server:\n"
            f"  ip-address: 127.0.0.1@{self.nsd_port}\n"
            '  username: ""\n  chroot: ""\n  database: ""\n'
            f'  zonelistfile: "{self.dir}/zone.list"\n  xfrdfile: "{self.dir}/xfrd.state"\n'
            f'  pidfile: "{self.dir}/nsd.pid"\n  logfile: "{self.dir}/nsd.log"\n'
            "  server-count: 1\n  verbosity: 1\n  hide-version: yes\n"
            "  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n"  # no response rate limiting: tests ask fast
            "remote-control:\n  control-enable: no\n"
            + "".join(f'zone:\n  name: "{origin or "."}"\n  zonefile: "{path}"\n' for origin, path in zones)
        )
        log = self.dir / "nsd.log"
        self._nsd = subprocess.Popen([_program("nsd", "nsd"), "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=log.open("ab"), preexec_fn=_die_with_parent)
        _wait_for_answer(self.nsd_port, self._nsd, log)

    def _start_unbound(self) -> None:
        conf = self.dir / "unbound.conf"
        conf.write_text(
            "server:\n"
            f"  interface: 127.0.0.1@{self.unbound_port}\n  port: {self.unbound_port}\n"
            f'  username: ""\n  chroot: ""\n  directory: "{self.dir}"\n  pidfile: "{self.dir}/unbound.pid"\n'
            f'  logfile: "{self.dir}/unbound.log"\n  use-syslog: no\n  do-daemonize: no\n'
            "  log-queries: yes\n  verbosity: 1\n  num-threads: 1\n  so-reuseport: no\n"
            "  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  do-ip6: no\n"
            # Every question goes to NSD whole: it is authoritative for all of them.
            "  qname-minimisation: no\n  module-config: \"iterator\"\n"
            + "".join(f'  local-zone: "{zone}" nodefault\n' for zone in _UNBOUND_DEFAULT_ZONES)
            + f'  local-zone: "{TIMEOUT_ZONE}." deny\n'  # deny: drop the question, say nothing
            + "remote-control:\n  control-enable: yes\n"
            f"  control-interface: {self.dir}/unbound.ctl\n"
            f'stub-zone:\n  name: "."\n  stub-addr: 127.0.0.1@{self.nsd_port}\n'
            # Its own delegation point, so whatever Unbound concludes about NSD's SERVFAILs stays there.
            f'stub-zone:\n  name: "{SERVFAIL_ZONE}"\n  stub-addr: 127.0.0.1@{self.nsd_port}\n'
            # Every zone its own delegation point too: a zone's NS records name 127.0.0.x, port 53,
            # where no server listens; once Unbound has cached them (`check domain` asks for NS) it
            # would send that zone's questions there instead of to NSD.
            + "".join(f'stub-zone:\n  name: "{origin}"\n  stub-addr: 127.0.0.1@{self.nsd_port}\n'
                      for origin in sorted(self._zones))
        )
        log = self.dir / "unbound.log"
        self._unbound = subprocess.Popen([_program("unbound", "unbound"), "-d", "-c", str(conf)],
                                         stdout=subprocess.DEVNULL, stderr=log.open("ab"),
                                         preexec_fn=_die_with_parent)
        _wait_for_answer(self.unbound_port, self._unbound, log)

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServers]:
    """NSD + Unbound on loopback for the whole test session (about half a second to start)."""
    _program("nsd", "nsd")
    _program("unbound", "unbound")
    workdir = Path(tempfile.mkdtemp(prefix="postoffice-dns-"))
    servers = DnsServers(workdir)
    try:
        yield servers.start()
    finally:
        servers.close()
        shutil.rmtree(workdir, ignore_errors=True)


# -- a broken server, for malformed answers -----------------------------------------------------

Responder = Callable[[bytes, str], bytes | None]  # (query, "udp" | "tcp") -> reply bytes, or silence


class BrokenDnsServer:
    """A DNS server on loopback (UDP and TCP, one port) whose replies a test writes byte by byte.

        with BrokenDnsServer(lambda query, transport: query[:2] + b"garbage") as server:
            resolver = DnsResolver(nameservers=(server.address,), timeout=1)

    Over TCP the reply is sent as given (a test adds the two-byte length, or lies in it).
    `received` counts the questions per transport."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.received = {"udp": 0, "tcp": 0}
        self.port = free_port()
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._tcp.bind(("127.0.0.1", self.port))
        self._tcp.listen(16)
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True),
                         threading.Thread(target=self._serve_tcp, daemon=True)]

    @property
    def address(self) -> ListenAddress:
        return ListenAddress("127.0.0.1", self.port)

    def __enter__(self) -> BrokenDnsServer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._closed.set()
        for sock in (self._udp, self._tcp):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def _serve_udp(self) -> None:
        while not self._closed.is_set():
            try:
                query, peer = self._udp.recvfrom(65535)
            except OSError:
                return
            if self._closed.is_set():  # shutdown() wakes recvfrom with nothing
                return
            self.received["udp"] += 1
            reply = self.respond(query, "udp")
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._answer_tcp, args=(conn,), daemon=True).start()

    def _answer_tcp(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while not self._closed.is_set():
                    head = _recv_exactly(conn, 2)
                    query = _recv_exactly(conn, struct.unpack("!H", head)[0])
                    self.received["tcp"] += 1
                    reply = self.respond(query, "tcp")
                    if reply is None:
                        self._closed.wait(30)  # hold the connection, say nothing
                        return
                    conn.sendall(reply)
            except (OSError, EOFError):
                return


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
