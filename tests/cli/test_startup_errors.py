"""`postoffice serve` that cannot start says why in one sentence, first on stderr, without a
traceback, and exits non-zero: the listener, key or file, and the fix (issue 13)."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cli_run import _drop_read_override, po
from peers import require_peer, unavailable
from postoffice.config_schema import SCHEMA

LISTENERS = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "lmtp", "managesieve", "http", "https")


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("template") / "data"
    po("init", "--hostname", "mail.example.org", data=data)
    po("user", "list", data=data)  # creates the store
    return data


@pytest.fixture
def data(initialised: Path, tmp_path: Path) -> Iterator[Path]:
    """An initialised data directory whose listeners are all off; each test turns one on."""
    copy = tmp_path / "data"
    shutil.copytree(initialised, copy)
    for name in LISTENERS:
        listen(copy, name, [])
    yield copy
    copy.chmod(0o700)  # so pytest can clean it up


def listen(data: Path, name: str, addresses: list[str]) -> None:
    config = (data / "postoffice.toml").read_text()
    value = "[" + ", ".join(f'"{a}"' for a in addresses) + "]"
    config, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", config, count=1, flags=re.M)
    assert count == 1
    (data / "postoffice.toml").write_text(config)


def refused(data: Path, *args: str, prefix: tuple[str, ...] = (), honour_file_modes: bool = False,
            timeout: float = 60) -> str:
    """Run `postoffice serve` (or ARGS), which must refuse: a non-zero exit, no traceback;
    returns the first line of stderr. A server that starts instead fails the test, not hangs."""
    cmd = [*prefix, sys.executable, "-m", "postoffice", *(args or ("serve",)), "--data", str(data)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"},
                            preexec_fn=_drop_read_override if honour_file_modes else None)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"{args or 'serve'} started instead of refusing:\n{err}")
    assert proc.returncode != 0, err
    assert "Traceback" not in err, err
    assert err.strip(), "no message at all"
    return err.splitlines()[0]


def test_port_in_use_names_the_listener_the_address_and_the_fix(data: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen(data, "smtp", ["127.0.0.1:0"])  # opens first, and must be closed again
        listen(data, "imap", [f"127.0.0.1:{port}"])
        first = refused(data)
    assert first == (
        f"error: [listen] imap cannot listen on 127.0.0.1:{port}: another program, or another "
        f"postoffice, is already listening there (`ss -ltnp 'sport = :{port}'` shows which); stop "
        f"it, or change [listen] imap in {data}/postoffice.toml.")


@pytest.mark.parametrize("name", ["http", "https"])
def test_web_port_in_use_is_the_same_one_sentence(data: Path, name: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen(data, "imaps", ["127.0.0.1:0"])  # opens first, and must be closed again
        listen(data, name, [f"127.0.0.1:{port}"])
        first = refused(data)
    assert first == (
        f"error: [listen] {name} cannot listen on 127.0.0.1:{port}: another program, or another "
        f"postoffice, is already listening there (`ss -ltnp 'sport = :{port}'` shows which); stop "
        f"it, or change [listen] {name} in {data}/postoffice.toml.")


def test_address_of_another_machine_says_so(data: Path) -> None:
    listen(data, "pop3", ["192.0.2.7:1110"])  # TEST-NET-1 (RFC 5737): on no machine's interface
    assert refused(data) == (
        f"error: [listen] pop3 cannot listen on 192.0.2.7:1110: 192.0.2.7 is not an address of "
        f"this machine; change [listen] pop3 in {data}/postoffice.toml to one of its addresses "
        "(`ip -brief address` lists them), or to 0.0.0.0 or [::] for all of them.")


def test_host_name_that_does_not_resolve_says_so(data: Path, tmp_path: Path) -> None:
    # The server looks the name up with the system resolver; in a mount namespace of its own it
    # reads an nsswitch.conf that asks /etc/hosts only, so no DNS query leaves the machine.
    unshare = require_peer("unshare", package="util-linux")
    if os.geteuid() != 0:
        unavailable("a mount namespace for the server's own nsswitch.conf needs root")
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files\n")
    listen(data, "imap", ["no-such-host.example.org:1143"])
    script = f'mount --bind "{nsswitch}" /etc/nsswitch.conf && exec "$@"'
    probe = subprocess.run([unshare, "--mount", "sh", "-c", script, "sh", "true"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        unavailable(f"cannot bind-mount over /etc/nsswitch.conf here: {probe.stderr.strip()}")
    first = refused(data, prefix=(unshare, "--mount", "sh", "-c", script, "sh"))
    assert first == (
        "error: [listen] imap cannot listen on no-such-host.example.org:1143: the host name "
        "no-such-host.example.org has no address (DNS and /etc/hosts do not know it); change "
        f"[listen] imap in {data}/postoffice.toml to an IP address of this machine, or to 0.0.0.0 "
        "or [::] for all of them.")


def test_missing_certificate_stops_start_up_even_with_only_starttls_listeners(data: Path) -> None:
    # IMAP on 143 needs the certificate only at the first STARTTLS: that must not be where an
    # administrator learns it is missing.
    listen(data, "imap", ["127.0.0.1:0"])
    (data / "tls" / "key.pem").unlink()
    assert refused(data) == (
        f"error: The TLS key file {data}/tls/key.pem ([tls] key_file) does not exist; run postoffice "
        "init to make a new self-signed certificate and key, or set [tls] key_file to your key (with "
        "certbot: privkey.pem), or set [tls] acme = true to have postoffice get one from Let's Encrypt.")
    (data / "tls" / "cert.pem").unlink()
    assert refused(data) == (
        f"error: The TLS certificate file {data}/tls/cert.pem ([tls] cert_file) does not exist; run "
        "postoffice init to make a new self-signed certificate and key, or set [tls] cert_file to your "
        "certificate (with certbot: fullchain.pem), or set [tls] acme = true to have postoffice get one "
        "from Let's Encrypt.")


def test_the_fix_named_for_a_missing_or_expired_certificate_works(data: Path) -> None:
    listen(data, "imaps", ["127.0.0.1:0"])
    (data / "tls" / "cert.pem").unlink()  # the key is still there: init must not give up on that
    refused(data)
    out = po("init", "--hostname", "mail.example.org", data=data).stdout
    assert "only its missing TLS certificate was created again" in out
    assert started(data)
    write_expired_certificate(data)
    assert "expired on 2021-03-04" in refused(data)
    out = po("init", "--hostname", "mail.example.org", data=data).stdout
    assert "only its expired TLS certificate was created again" in out
    assert started(data)


def test_init_leaves_a_certificate_outside_the_data_directory_alone(data: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "letsencrypt"
    elsewhere.mkdir()
    config = data / "postoffice.toml"
    config.write_text(re.sub(r"^cert_file = .*$", f'cert_file = "{elsewhere}/fullchain.pem"',
                             config.read_text(), count=1, flags=re.M))
    out = po("init", "--hostname", "mail.example.org", data=data).stdout
    assert "is outside the data directory, so init leaves it alone" in out
    assert not (elsewhere / "fullchain.pem").exists()


def started(data: Path) -> bool:
    """`serve` comes up (and is stopped again at once); one that neither starts nor exits within
    a minute is killed, and has not started."""
    proc = subprocess.Popen([sys.executable, "-m", "postoffice", "serve", "--data", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        assert proc.stderr is not None
        return any("is serving" in line for line in proc.stderr)
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(30)


def write_expired_certificate(data: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.example.org")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
                   .not_valid_after(dt.datetime(2021, 3, 4, 5, 6, tzinfo=dt.UTC))
                   .sign(key, hashes.SHA256()))
    (data / "tls" / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (data / "tls" / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_expired_certificate_names_the_file_the_key_the_date_and_the_fix(data: Path) -> None:
    write_expired_certificate(data)
    listen(data, "imaps", ["127.0.0.1:0"])
    assert refused(data) == (
        f"error: The TLS certificate in {data}/tls/cert.pem ([tls] cert_file) expired on 2021-03-04 at "
        "05:06 UTC; renew it (for example with certbot renew), run postoffice init to replace it "
        "with a new self-signed one, or set [tls] acme = true to have postoffice get and renew one from "
        "Let's Encrypt.")


def test_unreadable_data_directory_says_whose_it_is(data: Path) -> None:
    data.chmod(0)
    expected = (f"error: The data directory {data} cannot be read by this user (permission denied); "
                f"run postoffice as the user that owns it (`ls -ld {data}` shows who), or give this "
                "user access with chown or chmod.")
    assert refused(data, honour_file_modes=True) == expected
    assert refused(data, "user", "list", honour_file_modes=True) == expected


def test_read_only_data_directory_names_the_file_that_cannot_be_written(data: Path) -> None:
    (data / "serve.lock").unlink(missing_ok=True)
    data.chmod(0o500)
    assert refused(data, honour_file_modes=True) == (
        f"error: {data}/serve.lock cannot be opened (permission denied); the user running "
        f"postoffice must be able to write in the data directory {data} (`ls -ld {data}` shows "
        "its owner).")
    store = data / "store.sqlite3"
    assert refused(data, "user", "list", honour_file_modes=True) == (
        f"error: The store {store} is read-only for this user: SQLite must write it and create "
        f"store.sqlite3-wal and store.sqlite3-shm beside it; make the file and {data} writable by "
        f"the user running postoffice (`ls -ld {data} {store}` shows their owner).")


def test_store_that_is_not_a_database_says_so_in_serve_and_admin_commands(data: Path) -> None:
    store = data / "store.sqlite3"
    with open(store, "r+b") as file:
        file.write(b"not an SQLite header at all")
    expected = (f"error: The store {store} is not an SQLite database (its header is damaged, or it "
                "is some other file); restore it from a backup (`postoffice restore BACKUP --data "
                "DIR`), or point [store] path in postoffice.toml at the right file.")
    assert refused(data) == expected
    assert refused(data, "user", "list") == expected


def test_config_syntax_error_gives_line_and_column(data: Path) -> None:
    with open(data / "postoffice.toml", "a") as file:
        file.write("\n[limits\n")
    first = refused(data)
    assert first.startswith(f"error: {data}/postoffice.toml is not valid TOML: "), first
    assert re.search(r"\(at line \d+, column \d+\)\.$", first), first


def test_unknown_section_and_key_keep_their_bracketed_names(data: Path) -> None:
    config = data / "postoffice.toml"
    good = config.read_text()
    config.write_text(good + "\n[imapx]\nper_user_seen = true\n")
    assert refused(data) == (
        f"error: {config}: [imapx] is not a known section (did you mean imap?); the sections are "
        f"{', '.join(f'[{section}]' for section in SCHEMA)}.")
    config.write_text(good.replace("[dkim]\n", "[dkim]\nselectr = \"x\"\n"))
    assert refused(data, "user", "list") == (
        f"error: {config}: [dkim] selectr is not a known key (did you mean selector?); [dkim] has "
        "selector.")


def test_what_commands_print_keeps_square_brackets(tmp_path: Path) -> None:
    # rich would read "[store]" as a style and drop it from every line a command prints.
    data = tmp_path / "[store]" / "data"
    first = po("init", "--hostname", "mail.example.org", data=data).stdout
    assert f"Initialised {data}." in first, first
    again = po("init", "--hostname", "mail.example.org", data=data).stdout
    assert str(data) in again, again


def test_debug_log_level_adds_the_traceback_for_bug_reports(data: Path) -> None:
    config = data / "postoffice.toml"
    config.write_text(re.sub(r"^log_level = .*$", 'log_level = "debug"', config.read_text(), count=1, flags=re.M))
    listen(data, "pop3", ["192.0.2.7:1110"])
    result = po("serve", data=data, check=False, timeout=60)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: [listen] pop3 cannot listen on 192.0.2.7:1110: ")


def test_init_where_this_user_cannot_write_says_so(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0)
    data = closed / "data"
    try:
        first = refused(data, "init", honour_file_modes=True)
        again = refused(data, "serve", "--dev", honour_file_modes=True)
    finally:
        closed.chmod(0o700)
    assert first == (f"error: {data} cannot be initialised: {data}/postoffice.toml cannot be written "
                     "(permission denied); choose a data directory this user may write, or run postoffice "
                     "as the user that owns it and the directories above it.")
    assert again.startswith(f"error: The data directory {data} cannot be read by this user"), again
