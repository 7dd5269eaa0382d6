"""`postoffice check tls HOST[:PORT]` and `postoffice smtp-test`: look at a live server's TLS, and
send it a test message with the whole dialogue shown (diagnostics/tls_probe.py, smtp_test.py).
(`postoffice tls renew`, about this server's own certificate, is in tls_cmds.py.)"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import Annotated, Literal

import typer

from postoffice.cli.common import JsonFlag, console, err_console, fail, print_json, read_password
from postoffice.diagnostics.checks import Finding
from postoffice.diagnostics.starttls import StartTls

# A well-known port says how TLS starts there (RFC 8314 §7 for the implicit-TLS ones).
_PORT_STARTTLS: dict[int, StartTls | None] = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3",
                                              465: None, 993: None, 995: None, 443: None}
_DEFAULT_PORT = {"smtp": 25, "imap": 143, "pop3": 110, "none": 465}


def split_host_port(text: str, default: int | None) -> tuple[str, int | None]:
    """'host', 'host:25', '192.0.2.1:25', '[2001:db8::1]:25' or '2001:db8::1' -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a bare name, or an IPv6 address without brackets
        host, port_text = text, ""
    if not host:
        raise typer.BadParameter(f"{text!r} names no host; write HOST or HOST:PORT.")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise typer.BadParameter(f"{port_text!r} is not a port number (1-65535).")
    return host, int(port_text)


def _quiet_asyncio() -> None:
    # asyncio warns about an EOF after a failed STARTTLS handshake on 3.11; that failure is
    # already reported in plain words.
    logging.getLogger("asyncio").setLevel(logging.ERROR)


def check_tls_command(
    target: Annotated[str, typer.Argument(
        metavar="HOST[:PORT]", help="The server, e.g. mail.example.org:993 (default port 25).")],
    starttls: Annotated[str | None, typer.Option(
        "--starttls", metavar="smtp|imap|pop3|none",
        help="How TLS starts: STARTTLS of that protocol, or none (TLS from the first byte). "
             "Default: from the port (25 and 587 smtp, 143 imap, 110 pop3, 465/993/995 none).")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The name the certificate must be valid for (default: HOST); also sent as SNI.")] = None,
    ca_file: Annotated[Path | None, typer.Option(
        "--ca-file", help="More trusted CA certificates (PEM) besides the system's; intermediates "
                          "in it let an incomplete chain be told from an untrusted one.")] = None,
    no_versions: Annotated[bool, typer.Option(
        "--no-versions", help="Do not try each TLS version (one connection instead of five).")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per connection.")] = 30.0,
    json: JsonFlag = False,
) -> None:
    """Show a server's TLS: versions offered, the certificate chain as sent, its names and expiry,
    and findings (tls-expired, tls-expiring, tls-name-mismatch, tls-chain-incomplete, ...).

    Exit status 1 when anything is an error.

    Example: postoffice check tls mx.example.org:25 --starttls smtp
    """
    from postoffice.cli.check_cmds import show_findings
    from postoffice.cli.common import run_async
    from postoffice.diagnostics.tls_probe import (
        ProbeError,
        connection_finding,
        probe_tls,
        tls_findings,
    )

    host, port = split_host_port(target, None)
    mode = _starttls_mode(starttls, port)
    port = port or _DEFAULT_PORT[mode or "none"]
    if ca_file is not None and not ca_file.is_file():
        fail(f"The CA file {ca_file} does not exist; give a PEM file of CA certificates.")
    _quiet_asyncio()
    if not json:
        how = f"STARTTLS ({mode})" if mode else "TLS from the first byte"
        console.print(f"Checking TLS on {host}:{port}, {how}, for the name {name or host}...",
                      soft_wrap=True)
    try:
        probe = run_async(probe_tls(host, port, mode, name=name, ca_file=ca_file,
                                    versions=not no_versions, timeout=timeout))
    except ProbeError as error:
        findings: list[Finding] = [connection_finding(error, host, port, mode)]
        show_findings(findings, json=json, host=host, port=port, starttls=mode)
        return
    if not json:
        _print_probe(probe)
    show_findings(tls_findings(probe), json=json, **probe.as_json())


def _starttls_mode(option: str | None, port: int | None) -> StartTls | None:
    if option is None:  # no port: SMTP's 25; a port not listed: TLS from the first byte
        return "smtp" if port is None else _PORT_STARTTLS.get(port)
    value = option.lower()
    if value == "none":
        return None
    if value not in ("smtp", "imap", "pop3"):
        raise typer.BadParameter(f"--starttls takes smtp, imap, pop3 or none, not {option!r}.")
    return value  # type: ignore[return-value]


def _print_probe(probe: object) -> None:
    from postoffice.diagnostics.tls_probe import TlsProbe

    assert isinstance(probe, TlsProbe)
    if probe.banner:
        console.print(f"Banner:     {probe.banner}", soft_wrap=True)
    console.print(f"Negotiated: {probe.version}, {probe.cipher}", soft_wrap=True)
    if probe.versions:
        shown = []
        for v in probe.versions:
            state = {True: "offered", False: "refused", None: "not tested"}[v.offered]
            shown.append(f"{v.version} {state}")
        console.print("Versions:   " + ", ".join(shown), soft_wrap=True)
    console.print("Chain as sent:", soft_wrap=True)
    for index, cert in enumerate(probe.chain):
        console.print(f"  {index}. {cert.subject}  (issued by {cert.issuer})", soft_wrap=True)
        if cert.names:
            console.print(f"     names: {', '.join(cert.names)}", soft_wrap=True)
        console.print(f"     valid {cert.not_before:%Y-%m-%d} to {cert.not_after:%Y-%m-%d %H:%M} UTC",
                      soft_wrap=True)
    verdict = {"trusted": "verifies against the trusted CAs",
               "incomplete": "incomplete: verifies only with the intermediate from --ca-file",
               "untrusted": f"does not verify ({probe.verify_error})"}[probe.chain_status]
    console.print(f"Chain:      {verdict}", soft_wrap=True)
    console.print(f"Name:       {probe.name} is {'' if probe.name_matches else 'NOT '}covered",
                  soft_wrap=True)


def smtp_test_command(
    server: Annotated[str, typer.Option(
        "--server", metavar="HOST[:PORT]",
        help="The SMTP server (default port 25; 465 with --tls).")],
    sender: Annotated[str, typer.Option("--from", help="Envelope sender (MAIL FROM); <> for none.")],
    to: Annotated[list[str], typer.Option("--to", metavar="ADDRESS", help="Recipient (RCPT TO); repeat for more.")],
    starttls: Annotated[bool, typer.Option("--starttls", help="STARTTLS after EHLO (port 587, 25).")] = False,
    tls: Annotated[bool, typer.Option("--tls", help="TLS from the first byte (port 465).")] = False,
    auth: Annotated[str | None, typer.Option(
        "--auth", metavar="USER",
        help="Log in as USER (AUTH PLAIN or LOGIN); the password comes from POSTOFFICE_PASSWORD or "
             "--password-stdin, never the command line.")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input.")] = False,
    ca_file: Annotated[Path | None, typer.Option(
        "--ca-file", help="More trusted CA certificates (PEM), e.g. a private CA's.")] = None,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Do not verify the server's certificate (a self-signed test server).")] = False,
    helo: Annotated[str | None, typer.Option("--helo", help="Name to give in EHLO (default: this host's).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each reply.")] = 30.0,
    json: JsonFlag = False,
) -> None:
    """Send a test message and show the whole SMTP dialogue, like swaks: connect, EHLO,
    STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT, each with the server's reply. On failure the last
    line says why and what to try (nothing listening, wrong password, relay denied, ...).

    Exit status 1 when the message was not accepted.

    Example: POSTOFFICE_PASSWORD=... postoffice smtp-test --server mail.example.org:587 --starttls --auth alice@example.org --from alice@example.org --to bob@example.net
    """
    from postoffice.cli.common import run_async
    from postoffice.diagnostics.smtp_test import TranscriptLine, smtp_test

    if starttls and tls:
        fail("Choose one of --starttls (port 587) and --tls (port 465), not both.")
    host, port = split_host_port(server, 465 if tls else 25)
    assert port is not None
    if ca_file is not None and not ca_file.is_file():
        fail(f"The CA file {ca_file} does not exist; give a PEM file of CA certificates.")
    password = read_password(password_stdin, confirm=False) if auth is not None else None
    _quiet_asyncio()

    def show(line: TranscriptLine) -> None:
        target = err_console if line.kind == "error" else console
        target.print(line.render(), soft_wrap=True, highlight=False)

    mode: Literal["plain", "starttls", "tls"] = "tls" if tls else "starttls" if starttls else "plain"
    sender_address = "" if sender.strip() in ("<>", "") else sender.strip().strip("<>")
    report = run_async(smtp_test(
        _bare(host), port, sender=sender_address, recipients=tuple(r.strip().strip("<>") for r in to),
        mode=mode, user=auth, password=password, ca_file=ca_file, insecure=insecure,
        helo_name=helo, timeout=timeout, on_line=None if json else show))
    if json:
        print_json(report.as_json())
    raise typer.Exit(0 if report.ok else 1)


def _bare(host: str) -> str:
    """An IPv6 literal without brackets, as sockets want it."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return host
