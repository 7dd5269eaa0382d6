"""setup/records.py and setup/zone_text.py alone: inputs in, records and zone text out."""
from __future__ import annotations

import datetime as dt
from ipaddress import IPv4Address, IPv6Address

from postoffice.mailauth.dmarc import parse_dmarc_record
from postoffice.mailauth.spf_record import parse_record
from postoffice.queue.mta_sts_policy import parse_policy, policy_id
from postoffice.setup.records import Certificate, DkimKey, RecordInputs, build_records, mta_sts_id
from postoffice.setup.zone_text import quoted_strings, txt_strings, zone_text

PORTS = {"smtp": 25, "submissions": 465, "submission": 587, "imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110}
LONG_KEY = "v=DKIM1; k=rsa; p=" + "A" * 392
CERT = Certificate("ab" * 32, "enforce", dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "letsencrypt.org")


def inputs(**changes: object) -> RecordInputs:
    base: dict[str, object] = dict(
        domain="example.org", hostname="mail.example.org",
        addresses=(IPv4Address("203.0.113.7"), IPv6Address("2001:db8::7")), ports=PORTS,
        dkim=(DkimKey("mail", LONG_KEY, "signing"), DkimKey("202612", "v=DKIM1; k=ed25519; p=AAAA", "spare")),
        report_address="dmarc@example.org", certificate=CERT)
    base.update(changes)
    return RecordInputs(**base)  # type: ignore[arg-type]


def by(records: object, rtype: str, name: str) -> list[str]:
    return [r.value for r in records.records if r.type == rtype and r.name == name]  # type: ignore[attr-defined]


def test_every_record_kind_is_there_with_a_reason() -> None:
    out = build_records(inputs())
    assert {r.type for r in out.records} == {"MX", "A", "AAAA", "TXT", "SRV", "CNAME", "CAA", "TLSA", "PTR"}
    assert all(r.reason.strip() for r in out.records)
    assert by(out, "MX", "example.org") == ["10 mail.example.org."]
    assert by(out, "A", "mail.example.org") == ["203.0.113.7"]
    assert by(out, "AAAA", "mail.example.org") == ["2001:db8::7"]
    assert by(out, "TXT", "example.org") == ["v=spf1 mx ~all"]
    assert by(out, "TXT", "mail.example.org") == ["v=spf1 a -all"]
    for text in (by(out, "TXT", "example.org") + by(out, "TXT", "mail.example.org")):
        parse_record(text)  # our own SPF parser accepts both
    dmarc = parse_dmarc_record(by(out, "TXT", "_dmarc.example.org")[0])
    assert dmarc is not None and dmarc.p == "quarantine" and dmarc.rua == ("mailto:dmarc@example.org",)
    assert by(out, "TXT", "_smtp._tls.example.org") == ["v=TLSRPTv1; rua=mailto:dmarc@example.org"]
    assert by(out, "TXT", "mail._domainkey.example.org") == [LONG_KEY]
    assert "spare" in next(r.reason for r in out.records if r.name == "202612._domainkey.example.org")
    assert by(out, "SRV", "_imaps._tcp.example.org") == ["0 1 993 mail.example.org."]
    assert by(out, "SRV", "_submission._tcp.example.org") == ["10 1 587 mail.example.org."]
    assert by(out, "CNAME", "mta-sts.example.org") == ["mail.example.org."]
    assert by(out, "CAA", "mail.example.org") == ['0 issue "letsencrypt.org"']
    assert by(out, "TLSA", "_25._tcp.mail.example.org") == ["3 1 1 " + "ab" * 32]
    ptrs = [r for r in out.records if r.type == "PTR"]
    assert [(r.name, r.value, r.placement) for r in ptrs] == [
        ("7.113.0.203.in-addr.arpa", "mail.example.org.", "provider"),
        ("7" + ".0" * 23 + ".8.b.d.0.1.0.0.2.ip6.arpa", "mail.example.org.", "provider")]
    assert out.notes == ()


def test_mta_sts_is_testing_until_the_certificate_can_be_verified_and_its_id_follows_the_policy() -> None:
    enforce = build_records(inputs())
    testing = build_records(inputs(certificate=Certificate("ab" * 32, "testing", CERT.expires)))
    none = build_records(inputs(certificate=None))
    assert parse_policy(enforce.mta_sts_policy).mode == "enforce"
    assert parse_policy(testing.mta_sts_policy).mode == "testing"
    assert parse_policy(testing.mta_sts_policy).allows("mail.example.org")
    assert none.mta_sts_policy == testing.mta_sts_policy
    ids = [policy_id(by(r, "TXT", "_mta-sts.example.org")) for r in (enforce, testing)]
    assert ids == [mta_sts_id(enforce.mta_sts_policy), mta_sts_id(testing.mta_sts_policy)]
    assert ids[0] != ids[1]  # a changed policy gets a new id, so senders fetch it again


def test_a_listener_that_is_off_gets_the_no_service_target() -> None:
    out = build_records(inputs(ports={**PORTS, "pop3": None, "pop3s": None}))
    assert by(out, "SRV", "_pop3._tcp.example.org") == ["0 0 0 ."]
    assert by(out, "SRV", "_pop3s._tcp.example.org") == ["0 0 0 ."]
    assert by(out, "SRV", "_imap._tcp.example.org") == ["10 1 143 mail.example.org."]


def test_a_host_name_outside_the_domain_puts_its_records_in_their_own_zone() -> None:
    out = build_records(inputs(hostname="mx.provider.net"))
    elsewhere = {(r.type, r.name) for r in out.records if r.placement == "elsewhere"}
    assert elsewhere == {("A", "mx.provider.net"), ("AAAA", "mx.provider.net"), ("TXT", "mx.provider.net"),
                         ("CAA", "mx.provider.net"), ("TLSA", "_25._tcp.mx.provider.net")}
    zone = zone_text(out)
    assert "\nmx.provider.net." not in zone and "\n; mx.provider.net.\t3600\tIN\tA\t203.0.113.7" in zone
    assert "\nexample.org.\t3600\tIN\tMX\t10 mx.provider.net." in zone


def test_a_host_name_equal_to_the_domain_gets_one_spf_record() -> None:
    out = build_records(inputs(hostname="example.org"))
    assert by(out, "TXT", "example.org") == ["v=spf1 mx ~all"]  # two SPF records would be a permerror
    assert not any(r.type == "CNAME" and r.name == "example.org" for r in out.records)


def test_reports_to_another_domain_need_its_consent_and_no_address_means_postmaster() -> None:
    out = build_records(inputs(report_address="reports@example.net"))
    assert by(out, "TXT", "example.org._report._dmarc.example.net") == ["v=DMARC1"]
    default = build_records(inputs(report_address=""))
    assert by(default, "TXT", "_dmarc.example.org") == ["v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"]


def test_no_address_and_no_known_ca_are_notes_not_invented_records() -> None:
    out = build_records(inputs(addresses=(), certificate=Certificate("ab" * 32, "testing", CERT.expires)))
    assert not [r for r in out.records if r.type in ("A", "AAAA", "PTR", "CAA")]
    assert any("[server] public_addresses" in note for note in out.notes)
    assert any("CAA" in note for note in out.notes)
    acme = build_records(inputs(certificate=None, acme_caa="letsencrypt.org"))
    assert by(acme, "CAA", "mail.example.org") == ['0 issue "letsencrypt.org"']


def test_long_txt_values_split_into_255_byte_strings_never_inside_a_character() -> None:
    strings = txt_strings(LONG_KEY)
    assert [len(s) for s in strings] == [255, len(LONG_KEY) - 255] and "".join(strings) == LONG_KEY
    accented = "é" * 200  # 2 bytes each
    pieces = txt_strings(accented)
    assert [len(p.encode()) for p in pieces] == [254, 146] and "".join(pieces) == accented
    assert txt_strings("") == [""]
    assert quoted_strings('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    zone = zone_text(build_records(inputs()))
    assert f'mail._domainkey.example.org.\t3600\tIN\tTXT\t"{LONG_KEY[:255]}" "{LONG_KEY[255:]}"' in zone
