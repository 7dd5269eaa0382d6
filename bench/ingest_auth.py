"""bench/smtp_ingest.py's "postoffice+auth" target (issue 14): postoffice with the whole port-25 mail
authentication pipeline judging every message against real DNS records on loopback; see
smtp_ingest.py's docstring, target 5."""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit import (
    PER_SOURCE_IP,
    BenchError,
    Cleanups,
    Monitor,
    Unavailable,
    copy_data_dir,
    finish_postoffice,
    free_port,
    log,
    run_async,
    scratch_dir,
    set_toml_keys,
    source_address,
    start_postoffice,
)
from ingest_load import (
    SENDER,
    TargetResult,
    Workload,
    finish_profiler,
    make_workload,
    postoffice_template,
    run_load,
    start_profiler,
)

# --- target: postoffice with mail authentication (issue 14) ----------------------------------

AUTH_DOMAINS = 50
AUTH_ZONE = "bench-senders.test"
AUTH_BLOCKLIST = f"bl.{AUTH_ZONE}"  # lists nothing: every question is NXDOMAIN, as for most clients
AUTH_SELECTOR = "bench"
AUTH_SIGNED = 1000  # distinct signed messages, reused in turn (signing is the client's work)
AUTH_WARMUP = 500  # untimed messages first: postoffice's DNS cache and Unbound's are then warm
CHECK_SAMPLES = 200  # messages whose checks are timed in this process, per cache state


def _auth_domain(k: int) -> str:
    return f"s{k}.{AUTH_ZONE}"


@dataclass
class SignedWorkload:
    """The same load, each message From and MAIL FROM one of the sender domains and signed by it."""

    base: Workload
    signed: list[bytes]  # headers + body as sent after 354, DKIM-Signature first

    def __getattr__(self, name: str) -> object:
        return getattr(self.base, name)

    @property
    def count(self) -> int:
        return self.base.count

    def mail_from(self, i: int) -> bytes:
        return f"MAIL FROM:<bench@{_auth_domain(i % AUTH_SIGNED % AUTH_DOMAINS)}>\r\n".encode()

    def message(self, i: int) -> bytes:
        return self.signed[i % AUTH_SIGNED]


def _auth_setup(work: Workload, cleanups: Cleanups, clients: int) -> tuple[object, SignedWorkload]:
    """The loopback DNS servers with the sender domains' records, and the signed load."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from dns_server import DnsServers
        from postoffice.mailauth.dkim import sign_message
        from postoffice.mailauth.dkim_crypto import load_signing_key
    except ImportError as exc:
        raise Unavailable(f"cannot import what the checks need: {exc}", "unavailable") from None
    if not (shutil.which("nsd", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))
            and shutil.which("unbound", path="/usr/sbin:/sbin:" + os.environ.get("PATH", ""))):
        raise Unavailable("NSD and Unbound are needed for the loopback DNS (apt-get install nsd unbound)",
                          "not installed")
    log(f"postoffice+auth: making {AUTH_DOMAINS} RSA-2048 DKIM keys and the sender zone")
    keys, records = [], []
    for k in range(AUTH_DOMAINS):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = base64.b64encode(private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        chunks = " ".join(f'"{public[i:i + 200]}"' for i in range(0, len(public), 200))
        name = f"s{k}"
        records += [f'{name} TXT "v=spf1 ip4:127.0.0.0/24 -all"',
                    f'_dmarc.{name} TXT "v=DMARC1; p=reject"',
                    f'{AUTH_SELECTOR}._domainkey.{name} TXT "v=DKIM1; k=rsa; p=" {chunks}']
        keys.append(load_signing_key(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    hosts = [f"client{n} A 127.0.0.{n}" for n in range(2, 3 + clients)]
    servers = DnsServers(Path(tempfile.mkdtemp(prefix="postoffice-bench-dns-")))
    servers.start()
    cleanups.append(servers.stop)
    servers.add_zone(AUTH_ZONE, "\n".join(records + hosts) + "\n")
    servers.add_zone("127.in-addr.arpa", "\n".join(f"{n}.0.0 PTR client{n}.{AUTH_ZONE}." for n in range(2, 3 + clients)) + "\n")
    started = time.process_time()
    signed = []
    for j in range(min(AUTH_SIGNED, work.count)):
        k = j % AUTH_DOMAINS
        raw = work.message(j).replace(b"From: Bench Sender <" + SENDER + b">",
                                      f"From: Bench Sender <bench@{_auth_domain(k)}>".encode(), 1)
        head, _, body = raw.partition(b"\r\n\r\n")
        plain = head + b"\r\n\r\n" + re.sub(rb"(?m)^\.\.", b".", body[:-3])  # undo dot-stuffing, drop ".\r\n"
        signed.append(sign_message(plain, _auth_domain(k), AUTH_SELECTOR, keys[k]) + raw)
    log(f"postoffice+auth: {len(signed)} messages signed ({(time.process_time() - started) * 1000 / len(signed):.2f} ms"
        " CPU each, client side, before the load)")
    return servers, SignedWorkload(work, signed)


async def _time_checks(data: Path, nameserver: object, work: SignedWorkload, cache: bool,
                       reuse: bool = False) -> tuple[float, float]:
    """Median wall and CPU seconds of the checks of one message (connect, MAIL FROM, data), as
    the server runs them, here in this process: postoffice's DNS cache on (warmed by a first
    pass) or off (every question goes to Unbound, which has the answers cached). `reuse`: one
    connection per client address, so only MAIL FROM and the data's checks are per message, as
    in the server (the connect-time ones, iprev and the blocklist, run once per connection)."""
    from postoffice.config import load_config
    from postoffice.mailauth.resolver import DnsResolver
    from postoffice.smtp.inbound_checks import InboundChecks

    config = load_config(data)
    resolver = DnsResolver((nameserver,), timeout=config.dns.timeout, cache_entries=10_000 if cache else 0)
    services = type("BenchServices", (), {"config": config, "resolver": resolver})()
    walls, cpus = [], []
    connections: dict[str, InboundChecks] = {}
    for rnd in range(2 if cache else 1):
        for i in range(CHECK_SAMPLES):
            raw = work.message(i)
            data_bytes = re.sub(rb"(?m)^\.\.", b".", raw[:-3])
            mail_from = work.mail_from(i)[11:-3].decode()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            client = source_address(i % 50)
            checks = connections.get(client) if reuse else None
            if checks is None:
                checks = InboundChecks(services, client)  # type: ignore[arg-type]
                await checks.at_connect()
                if reuse:
                    connections[client] = checks
            mail = await checks.at_mail("client.remote.test", mail_from)
            judged = await checks.after_data("client.remote.test", mail_from, mail, data_bytes)
            if rnd == (1 if cache else 0):
                walls.append(time.perf_counter() - wall0)
                cpus.append(time.process_time() - cpu0)
            if judged.verdict.action != "deliver" or judged.results.dmarc is None or judged.results.dmarc.result != "pass":
                raise BenchError(f"postoffice+auth: the checks did not pass message {i}: "
                                 f"{judged.results.header_value()!r}")
    walls.sort()
    cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]


def bench_postoffice_auth(work: Workload, args: argparse.Namespace, env: dict[str, str],
                          cleanups: Cleanups) -> TargetResult:
    clients = 1 + (args.connections - 1) // PER_SOURCE_IP
    servers, signed = _auth_setup(work, cleanups, clients)
    template = postoffice_template(args.cache_dir, env)
    tmp = scratch_dir("smtp-ingest-postoffice-auth-", "postoffice+auth", args.keep, cleanups)
    data = tmp / "data"
    copy_data_dir(template, data)
    nameserver = servers.address  # type: ignore[attr-defined]
    set_toml_keys(data / "postoffice.toml", {"dns": {"nameservers": [str(nameserver)], "blocklists": [AUTH_BLOCKLIST]}})
    warm = run_async(lambda: _time_checks(data, nameserver, signed, cache=True))
    cold = run_async(lambda: _time_checks(data, nameserver, signed, cache=False))
    open_connection = run_async(lambda: _time_checks(data, nameserver, signed, cache=True, reuse=True))
    log(f"postoffice+auth: checks per message, median: DNS cache warm {warm[0] * 1000:.2f} ms"
        f" ({warm[1] * 1000:.2f} ms CPU), cache off {cold[0] * 1000:.2f} ms ({cold[1] * 1000:.2f} ms CPU);"
        f" on an open connection (no connect-time checks), cache warm {open_connection[0] * 1000:.2f} ms"
        f" ({open_connection[1] * 1000:.2f} ms CPU)")
    port = free_port()
    server = start_postoffice(data, env, {"smtp": port}, cleanups)
    monitor = Monitor(server.proc.pid, reaped=False)
    warmup = SignedWorkload(make_workload(min(AUTH_WARMUP, work.count), args.seed + 1), signed.signed)
    warmup_args = argparse.Namespace(**{**vars(args), "per_connection": 10})
    first = run_load(warmup, port, warmup_args, "postoffice+auth warm-up")  # type: ignore[arg-type]
    if first.accepted < warmup.count:
        raise BenchError(f"postoffice+auth: the warm-up got {first.accepted}/{warmup.count} accepted: "
                         + " | ".join(first.problems[:3]))
    profiler = start_profiler(args, server.proc.pid, cleanups) if args.py_spy else None
    cpu0 = monitor.cpu()
    res = run_load(signed, port, args, "postoffice+auth", monitor)  # type: ignore[arg-type]
    server_cpu = monitor.cpu_when_idle() - cpu0
    monitor.sample()
    if profiler is not None:
        finish_profiler(profiler)
    finish_postoffice(server)
    text = server.log_path.read_text(errors="replace")
    log(f"postoffice+auth: {text.count('action=deliver')} messages logged delivered, "
        f"{text.count('dmarc=pass')} with dmarc=pass")
    result = TargetResult(res.accepted / res.seconds if res.seconds else 0.0, res, monitor.peak, server_cpu)
    result.checks = (warm, cold, open_connection)
    return result
