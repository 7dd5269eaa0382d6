"""Records (setup/records.py) as zone-file text (RFC 1035 §5) that a DNS server loads as it is.
Pure.

    zone_text(build_records(inputs))
        ; MX: Mail for example.org goes to mail.example.org.
        example.org.  3600  IN  MX  10 mail.example.org.
        ...

- Every name is absolute (a trailing dot), so the text means the same under any $ORIGIN.
- A TXT value longer than 255 bytes is split into several character-strings of at most 255
  bytes (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2 and RFC 7208 §3.3 join them again without a
  separator), never inside a UTF-8 character; quotes and backslashes are escaped.
- Records that belong in another zone (a host name outside the domain) or to the hosting
  provider (PTR) are comments saying where they go: a zone file may only hold its own names.
"""

from __future__ import annotations

from postoffice.setup.records import DnsRecord, DomainRecords

__all__ = ["TTL", "quoted_strings", "txt_strings", "zone_line", "zone_text"]

TTL = 3600
_MAX_STRING = 255


def txt_strings(text: str) -> list[str]:
    """``text`` cut into pieces of at most 255 bytes of UTF-8 each, whole characters only."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > _MAX_STRING:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current or not pieces:
        pieces.append("".join(current))
    return pieces


def quoted_strings(text: str) -> str:
    """The TXT RDATA as zone-file text: ``"first 255 bytes" "the rest"``."""
    return " ".join('"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"'
                    for piece in txt_strings(text))


def zone_line(record: DnsRecord) -> str:
    value = quoted_strings(record.value) if record.type == "TXT" else record.value
    return f"{record.name}.\t{TTL}\tIN\t{record.type}\t{value}"


def zone_text(records: DomainRecords) -> str:
    lines = [f"; DNS records for {records.domain}, from `postoffice domain records {records.domain}`.",
             f"; Add them to the zone of {records.domain}; lines starting with ; are comments (records",
             "; for other zones, and what to ask your hosting provider for, are comments too)."]
    for record in records.records:
        lines.append("")
        lines.append(f"; {record.type}: {record.reason}")
        if record.placement == "zone":
            lines.append(zone_line(record))
        elif record.placement == "elsewhere":
            lines.append(f"; not in this zone: publish in the zone that holds {record.name}:")
            lines.append("; " + zone_line(record))
        else:
            lines.append("; " + zone_line(record))
    for note in records.notes:
        lines += ["", f"; note: {note}"]
    lines += ["", f"; The MTA-STS policy, served at https://mta-sts.{records.domain}/.well-known/mta-sts.txt:"]
    lines += [f";   {line}" for line in records.mta_sts_policy.splitlines()]
    return "\n".join(lines) + "\n"
