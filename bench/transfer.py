"""Copying a whole IMAP account from Dovecot into postoffice: `postoffice migrate` beside mbsync,
in the same run; one result line.

The source (from the issue): an account of --messages messages (default 10,000) of about
--size-kb KB each on average (default 50: about 500 MB), in three folders (INBOX 60%, Sent 20%,
Archive 20%), with varied flags and internal dates, served by a Dovecot of this script's own on
a free 127.0.0.1 port (Debian's dovecot-core and dovecot-imapd; the layout of
../shared/reference/dovecot.conf, plaintext logins). The Maildir is generated once and cached
under --cache-dir (with Dovecot's indexes), keyed by count, size and seed.

Targets, each into a fresh postoffice data dir (one user), measured one after the other:

1. postoffice: `postoffice migrate --from imap://...?tls=none --to local:USER` (pipelined UID
   FETCH, batched durable writes into the store: how an administrator moves an account in).
2. postoffice-imap: the same migrate with `--to imap://USER@...` against `postoffice serve`
   (APPEND per message; what migrate does between two foreign servers).
3. mbsync: `mbsync` (isync) with both stores IMAP, Far = Dovecot, Near = `postoffice serve`,
   `Patterns INBOX Sent Archive` (the source's folders), `Create Near`, `Sync Pull` (one-way copy with flags).

Before each target every file of the source is read once (so all start with the same page
cache) and Dovecot has answered one untimed FETCH FLAGS of every folder (its indexes exist).
messages/s = messages / wall-clock seconds of the copying command (its start-up included, the
same for all). Each target's result is checked: the destination must hold exactly --messages
messages (counted in its store) and the command must exit 0.

stdout gets one line:

transfer: msgs=10000 MB=512 | postoffice 812 msg/s | postoffice-imap 301 msg/s | mbsync 420 msg/s
  | 1.93x mbsync | PASS

Exit status: 0 PASS (postoffice >= 1.0x mbsync), 1 FAIL, 2 no verdict (a target unavailable or
failed).

Example (a quick run): .venv/bin/python bench/transfer.py --messages 500 --size-kb 20
"""

from __future__ import annotations

import argparse
import imaplib
import json
import os
import pwd
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchkit import (
    _WORDS,
    CACHE_DIR,
    DOMAIN,
    MB,
    PASSWORD,
    BenchError,
    Cleanups,
    Unavailable,
    add_targets_argument,
    cached_template,
    copy_data_dir,
    finish_postoffice,
    free_port,
    log,
    parse_targets,
    postoffice_env,
    run_main,
    run_postoffice,
    run_targets,
    scratch_dir,
    spawn_dovecot,
    start_postoffice,
    store_counts,
)

TARGETS = ("postoffice", "postoffice-imap", "mbsync")
SOURCE_USER = "benchsrc"
SOURCE_PASSWORD = "pass"
USER = f"moved@{DOMAIN}"
FOLDERS = (("INBOX", 0.6), ("Sent", 0.2), ("Archive", 0.2))
FLAGS = ("", "S", "RS", "FS", "S", "DS", "")


@dataclass(frozen=True)
class Source:
    root: Path  # the cache entry: mail/ (the Maildir) and the Dovecot config made per run
    messages: int
    bytes: int


def _message(rng: random.Random, n: int, size: int) -> bytes:
    head = (f"From: sender{n % 97}@example.org\nTo: {SOURCE_USER}@{DOMAIN}\nSubject: message {n} "
            f"{rng.choice(_WORDS)}\nDate: Mon, 1 Mar 2021 00:00:00 +0000\nMessage-ID: <{n}.bench@example.org>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n").encode()
    words = []
    length = len(head)
    while length < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(11))
        words.append(line)
        length += len(line) + 1
    return head + "\n".join(words).encode() + b"\n"


def build_source(cache: Path, count: int, size_kb: int, seed: int) -> Source:
    """The cached source Maildir (Maildir++: INBOX in the root, .Sent, .Archive), owned by vmail."""
    root = cache / f"transfer-source-{count}-{size_kb}-{seed}"
    vmail = pwd.getpwnam("vmail")
    if (root / "complete").exists():
        log(f"reusing the source in {root}")
        total = int((root / "complete").read_text())
        return Source(root, count, total)
    shutil.rmtree(root, ignore_errors=True)
    maildir = root / "mail" / SOURCE_USER / "Maildir"
    log(f"generating {count:,} messages of about {size_kb} KB into {maildir} ...")
    rng = random.Random(seed)
    dirs = {}
    for name, _ in FOLDERS:
        path = maildir if name == "INBOX" else maildir / f".{name}"
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        dirs[name] = path
    total = 0
    stamp = 1_600_000_000
    for n in range(count):
        pick = rng.random()
        folder = "INBOX" if pick < FOLDERS[0][1] else "Sent" if pick < FOLDERS[0][1] + FOLDERS[1][1] else "Archive"
        raw = _message(rng, n, int(rng.expovariate(1 / (size_kb * 1000))) + 600)
        vsize = len(raw) + raw.count(b"\n")
        name = f"{stamp + n * 60}.M{n}P1.bench,S={len(raw)},W={vsize}:2,{FLAGS[n % len(FLAGS)]}"
        path = dirs[folder] / "cur" / name
        path.write_bytes(raw)
        os.utime(path, (stamp + n * 60, stamp + n * 60))
        total += len(raw)
    for dirpath, _, filenames in os.walk(root / "mail"):
        os.chown(dirpath, vmail.pw_uid, vmail.pw_gid)
        for f in filenames:
            os.chown(os.path.join(dirpath, f), vmail.pw_uid, vmail.pw_gid)
    root.chmod(0o755)
    (root / "complete").write_text(str(total))
    log(f"source ready: {total / MB:,.0f} MB")
    return Source(root, count, total)


def start_source(source: Source, scratch: Path, cleanups: Cleanups) -> int:
    """Dovecot serving the source on a free port; its port."""
    if not shutil.which("dovecot") or not Path("/usr/lib/dovecot/imap").exists():
        raise Unavailable("Dovecot's IMAP server is missing: install dovecot-core and dovecot-imapd", "no dovecot")
    vmail = pwd.getpwnam("vmail")
    port = free_port()
    scratch.chmod(0o755)  # Dovecot's unprivileged processes read its passwd file
    run = scratch / "dovecot"
    run.mkdir()
    run.chmod(0o755)
    (run / "passwd").write_text(f"{SOURCE_USER}:{{PLAIN}}{SOURCE_PASSWORD}\n")
    (run / "dovecot.conf").write_text(f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {run / "run"}
state_dir = {run / "state"}
log_path = {run / "dovecot.log"}
instance_name = bench-transfer-{port}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 100
mail_location = maildir:{source.root / "mail"}/%u/Maildir
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {run / "passwd"}
}}
userdb {{
  driver = static
  args = uid={vmail.pw_uid} gid={vmail.pw_gid} home={source.root / "mail"}/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
    spawn_dovecot(run / "dovecot.conf", run, [port], cleanups)
    return port


def warm_up(source: Source, port: int) -> None:
    """Every source file read once, and one FETCH FLAGS per folder (Dovecot's indexes)."""
    for dirpath, _, filenames in os.walk(source.root / "mail"):
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 20):
                    pass
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    try:
        imap.login(SOURCE_USER, SOURCE_PASSWORD)
        for name, _ in FOLDERS:
            imap.select(name, readonly=True)
            imap.fetch("1:*", "(FLAGS)")
    finally:
        imap.logout()


def destination_template(cache: Path, env: dict[str, str]) -> Path:
    def build(data: Path) -> None:
        run_postoffice(env, "init", "--data", str(data), "--domain", DOMAIN, "--hostname", f"mail.{DOMAIN}")
        run_postoffice(env, "user", "add", USER, "--password-stdin", "--data", str(data), stdin=PASSWORD + "\n")
    return cached_template(cache / "transfer-destination", build)


def copied(data: Path) -> int:
    return store_counts(data, "SELECT COUNT(*) FROM messages", timeout=30)[0]


def run_target(target: str, args: argparse.Namespace, source: Source, env: dict[str, str], cleanups: Cleanups) -> float:
    scratch = scratch_dir("bench-transfer-", target, args.keep, cleanups)
    dovecot_port = start_source(source, scratch, cleanups)
    warm_up(source, dovecot_port)
    data = scratch / "data"
    copy_data_dir(destination_template(Path(args.cache_dir), env), data)
    server = None
    if target != "postoffice":
        imap_port = free_port()
        server = start_postoffice(data, env, {"imap": imap_port}, cleanups)
    source_url = f"imap://{SOURCE_USER}@127.0.0.1:{dovecot_port}?tls=none"
    run_env = {**env, "POSTOFFICE_FROM_PASSWORD": SOURCE_PASSWORD, "POSTOFFICE_TO_PASSWORD": PASSWORD}
    if target == "mbsync":
        if not shutil.which("mbsync"):
            raise Unavailable("mbsync is missing: install isync", "no mbsync")
        config = scratch / "mbsyncrc"
        (scratch / "state").mkdir()
        config.write_text(f"""\
IMAPAccount src
Host 127.0.0.1
Port {dovecot_port}
User {SOURCE_USER}
Pass {SOURCE_PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore src
Account src

IMAPAccount dst
Host 127.0.0.1
Port {imap_port}
User {USER}
Pass "{PASSWORD}"
SSLType None
AuthMechs LOGIN

IMAPStore dst
Account dst

Channel copy
Far :src:
Near :dst:
Patterns INBOX Sent Archive
Create Near
Sync Pull
SyncState {scratch / "state"}/
""")
        argv = ["mbsync", "-q", "-c", str(config), "-a"]
    else:
        to = f"local:{USER}" if target == "postoffice" else f"imap://{USER}@127.0.0.1:{imap_port}?tls=none"
        argv = [sys.executable, "-m", "postoffice", "migrate", "--from", source_url, "--to", to, "--json",
                "--data", str(data)]
    log(f"{target}: {' '.join(argv[:4])} ...")
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=run_env)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"{target} exited with {done.returncode}: {(done.stdout + done.stderr).strip()[-400:]}")
    if target != "mbsync":
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"{target}: summary {summary['copied']} copied, {summary['failed']} failed, {summary['seconds']} s inside")
    if server is not None:
        finish_postoffice(server)
    count = copied(data)
    if count != source.messages:
        raise BenchError(f"{target}: the destination holds {count:,} messages, not {source.messages:,}")
    rate = source.messages / seconds
    log(f"{target}: {source.messages:,} messages in {seconds:.1f} s = {rate:,.0f} msg/s "
        f"({source.bytes / MB / seconds:,.1f} MB/s)")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--size-kb", type=int, default=50, help="average message size (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cache-dir", default=str(CACHE_DIR))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directories")
    add_targets_argument(parser, TARGETS)
    args = parser.parse_args()
    targets = parse_targets(parser, args.targets, TARGETS)
    if os.geteuid() != 0:
        log("needs root (Dovecot runs the source)")
        return 2
    try:
        pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"], check=True)
    env = postoffice_env()
    source = build_source(Path(args.cache_dir), args.messages, args.size_kb, args.seed)
    results = run_targets(targets, lambda t, c: run_target(t, args, source, env, c))
    parts = [f"msgs={source.messages} MB={source.bytes / MB:,.0f}"]
    for target in targets:
        value = results[target]
        parts.append(f"{target} {value:,.0f} msg/s" if isinstance(value, float) else f"{target} {value}")
    ours, theirs = results.get("postoffice"), results.get("mbsync")
    if isinstance(ours, float) and isinstance(theirs, float):
        ratio = ours / theirs
        verdict = "PASS" if ratio >= 1.0 else "FAIL"
        parts += [f"{ratio:.2f}x mbsync", verdict]
        status = 0 if verdict == "PASS" else 1
    else:
        parts.append("no verdict")
        status = 2
    print("transfer: " + " | ".join(parts), flush=True)
    return status


if __name__ == "__main__":
    run_main(main, "transfer")
