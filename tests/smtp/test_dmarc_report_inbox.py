"""Incoming DMARC aggregate reports end to end: real report mails sent to the configured report
address over port 25, delivered as usual, then summed up by `postoffice dmarc reports`."""
from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_run import po
from live_server import LiveServer

REPORTS = "dmarc-reports@example.test"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path / "data", ["smtp", "lmtp"], dmarc={"report_address": REPORTS}).start()
    live.add_user(REPORTS)
    live.add_user("alice@example.test")
    yield live
    live.stop()


def send(server: LiveServer, recipient: str, message: bytes, port: str = "smtp") -> None:
    kind = smtplib.LMTP if port == "lmtp" else smtplib.SMTP
    with kind("127.0.0.1", server.ports[port], timeout=30) as client:
        assert client.sendmail("noreply-dmarc-support@google.com", [recipient], message) == {}


def test_a_report_mail_is_delivered_and_its_report_summed_by_the_cli(server: LiveServer, corpora: Path) -> None:
    google = (corpora / "dmarc-reports-parsedmarc" / "aggregate" / "twilight.eml").read_bytes()  # a zip attachment
    send(server, REPORTS, google)
    send(server, REPORTS, google)  # the same report twice: counted once
    outlook = corpora / "mail-auth-stalwart" / "dmarc-feedback" / "103.eml"  # a gzip attachment
    send(server, REPORTS.upper(), outlook.read_bytes())
    assert len(server.messages(REPORTS)) == 3  # every mail is in the mailbox as sent

    summary = json.loads(po("dmarc", "reports", "--json", data=server.data_dir).stdout)
    assert {(s["domain"], s["source_ip"], tuple(s["reporters"]), s["messages"], s["pass"], s["fail"])
            for s in summary} == {
        ("twlnet.com", "87.106.127.28", ("google.com",), 1, 1, 0),
        ("stalw.art", "50.223.129.194", ("Outlook.com",), 1, 0, 1),
    }
    table = po("dmarc", "reports", "--domain", "twlnet.com", data=server.data_dir).stdout
    assert "87.106.127.28" in table and "google.com" in table and "stalw.art" not in table


def test_a_mail_without_a_readable_report_is_still_delivered(server: LiveServer) -> None:
    junk = (b"From: <x@remote.example>\r\nSubject: Report domain: example.test\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sIAAAAAAAAA2JhZGRhdGE=\r\n")
    send(server, REPORTS, junk)
    assert len(server.messages(REPORTS)) == 1
    assert json.loads(po("dmarc", "reports", "--json", data=server.data_dir).stdout) == []


def test_reports_to_other_addresses_are_not_read_but_lmtp_ones_are(server: LiveServer, corpora: Path) -> None:
    google = (corpora / "dmarc-reports-parsedmarc" / "aggregate" / "twilight.eml").read_bytes()
    send(server, "alice@example.test", google)
    assert len(server.messages("alice@example.test")) == 1
    assert "No DMARC aggregate reports yet" in po("dmarc", "reports", data=server.data_dir).stdout
    send(server, REPORTS, google, port="lmtp")
    assert "87.106.127.28" in po("dmarc", "reports", data=server.data_dir).stdout
