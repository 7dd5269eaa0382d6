"""`explain bounce` on bounces that a real Debian Postfix writes in the test run: it relays one
message to a loopback peer that refuses four recipients at RCPT (550 5.1.1, 552 5.2.2, a 554
Spamhaus listing and a failed sender verification) and a fourth at the end of DATA (552 5.3.4), then mails its bounce back through
the same peer, which keeps it."""
from __future__ import annotations

import asyncio
import json
import re
import smtplib
from pathlib import Path

from outbound_kit import Postfix, eventually, shared_port
from peer_host import PeerHost, Record, greet

from cli_run import po

POSTFIX = "127.0.0.90"  # addresses no other test uses
PEER = "127.0.0.91"
SENDER = "alice@near.test"

# local part -> the peer's reply to RCPT TO
AT_RCPT = {
    "unknown": b"550 5.1.1 <unknown@far.test>: Recipient address rejected: User unknown in local recipient table",
    "full": b"552 5.2.2 <full@far.test>: Mailbox full",
    "listed": b"554 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org",
    # Postfix's reject_unverified_sender, as a receiver that called back near.test's MX words it
    "verify": b"550 5.1.7 <alice@near.test>: Sender address rejected: undeliverable address: host "
              b"mx.near.test[192.0.2.25] said: 550 5.1.1 <alice@near.test>: Recipient address rejected: "
              b"User unknown in virtual mailbox table (in reply to RCPT TO command)",
}
TOO_BIG = b"552 5.3.4 Message size exceeds fixed maximum message size"


def _refusing_peer(record: Record) -> object:
    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer)
        accepted: list[str] = []
        while command := await reader.readline():
            verb = command[:4].upper()
            if verb == b"RCPT":
                local = re.search(rb"<([^@>]*)@", command)
                refusal = AT_RCPT.get(local.group(1).decode()) if local else None
                if refusal is None and local:
                    accepted.append(local.group(1).decode())
                writer.write((refusal or b"250 2.1.5 ok") + b"\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                message = await reader.readuntil(b"\r\n.\r\n")
                if "big" in accepted:
                    writer.write(TOO_BIG + b"\r\n")
                else:
                    record.messages.append(message)
                    writer.write(b"250 2.0.0 kept\r\n")
                accepted = []
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                return
            else:
                if verb in (b"MAIL", b"RSET"):
                    accepted = []
                writer.write(b"250 ok\r\n")
    return peer


def _unstuffed(data: bytes) -> bytes:
    """The message as sent, from DATA's dot-stuffed lines up to the final dot (RFC 5321 §4.5.2)."""
    body = data[: -len(b".\r\n")]
    return b"".join(line[1:] if line.startswith(b".") else line for line in body.splitlines(keepends=True))


def test_postfix_bounce_is_explained(tmp_path: Path) -> None:
    record = Record()
    with PeerHost({PEER: _refusing_peer(record)}) as peers:  # type: ignore[dict-item]
        postfix = Postfix(POSTFIX, shared_port([POSTFIX]), "relay.test")
        with (postfix.etc / "main.cf").open("a") as config:
            config.write(f"transport_maps = inline:{{far.test=smtp:[{PEER}]:{peers.port}, "
                         f"near.test=smtp:[{PEER}]:{peers.port}}}\n")
        postfix.start()
        try:
            with smtplib.SMTP(POSTFIX, postfix.port, timeout=30) as client:
                client.sendmail(SENDER, [f"{user}@far.test" for user in ("unknown", "full", "listed", "verify", "big")],
                                f"From: {SENDER}\r\nTo: several@far.test\r\nSubject: hello\r\n\r\nHi.\r\n")
            eventually(lambda: record.messages, 90, f"Postfix's bounce to {SENDER}")
        finally:
            log = postfix.log_text()
            postfix.stop()
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(_unstuffed(record.messages[0]))
    result = po("explain", "bounce", str(bounce), "--json")
    entries = {entry["recipient"]: entry for entry in json.loads(result.stdout)}
    assert sorted(entries) == ["big@far.test", "full@far.test", "listed@far.test", "unknown@far.test",
                               "verify@far.test"], log
    expected = {  # recipient: (status, cause's words)
        "unknown@far.test": ("5.1.1", "does not exist"),
        "full@far.test": ("5.2.2", "mailbox is full"),
        "listed@far.test": ("5.7.1", "blocklist"),
        "big@far.test": ("5.3.4", "larger than"),
        "verify@far.test": ("5.1.7", "checked your sender address"),
    }
    for recipient, (status, cause) in expected.items():
        entry = entries[recipient]
        assert (entry["status"], entry["remote_mta"]) == (status, PEER), entry
        assert entry["reply"].startswith(status[0]), entry  # the peer's words: 550 / 552 / 554
        assert cause in entry["cause"], entry
    assert entries["listed@far.test"]["reply"].startswith("554 5.7.1 Service unavailable")
    text = po("explain", "bounce", str(bounce)).stdout
    assert text.count("\n\n") == 4 and f"refused by {PEER}" in text
