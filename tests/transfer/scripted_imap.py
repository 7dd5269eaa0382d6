"""A small scripted IMAP server on loopback for the fetch tests: just enough IMAP4rev1 for a
fetch (LOGIN, CAPABILITY, LIST, EXAMINE/SELECT, UID SEARCH, UID FETCH, LOGOUT), misbehaving on
purpose where a test says: dropping the connection in the middle of a literal, answering NO to
a FETCH of one message, sending a FETCH response that does not parse, listing a folder whose
name is not valid modified UTF-7, or playing Gmail (X-GM-EXT-1, X-GM-MSGID, X-GM-LABELS)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from loopback_server import LoopbackServer


@dataclass
class Message:
    uid: int
    raw: bytes
    flags: tuple[str, ...] = ()
    date: datetime = datetime(2022, 2, 2, 2, 2, 2, tzinfo=UTC)
    gm_msgid: int | None = None
    labels: tuple[str, ...] = ()


@dataclass
class Folder:
    wire_name: str
    messages: list[Message]
    uidvalidity: int = 1000
    attributes: tuple[str, ...] = ()


@dataclass
class Faults:
    drop_mid_literal: set[tuple[str, int]] = field(default_factory=set)  # once each
    refuse: set[tuple[str, int]] = field(default_factory=set)  # NO while set
    malformed: set[tuple[str, int]] = field(default_factory=set)  # while set


class ScriptedImap(LoopbackServer):
    def __init__(self, folders: list[Folder], *, gmail: bool = False, password: str = "pw",
                 token: str | None = None, admin: tuple[str, str] | None = None) -> None:
        self.folders = {f.wire_name: f for f in folders}
        self.gmail = gmail
        self.password = password
        self.token = token  # AUTHENTICATE XOAUTH2 accepts "Bearer <token>"
        self.admin = admin  # AUTHENTICATE PLAIN as (admin, password) for any user
        self.logins: list[str] = []
        self.faults = Faults()
        super().__init__()

    def capabilities(self) -> str:
        sasl = " SASL-IR AUTH=XOAUTH2 AUTH=PLAIN" if self.token or self.admin else ""
        return "IMAP4rev1 LITERAL+ UIDPLUS" + sasl + (" X-GM-EXT-1" if self.gmail else "")

    async def _authenticate(self, tag: str, args: str, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        mechanism, _, initial = args.partition(" ")
        message = base64.b64decode(initial)
        ok = False
        who = ""
        if mechanism.upper() == "XOAUTH2" and self.token is not None:
            ok = f"auth=Bearer {self.token}".encode() in message.split(b"\x01")
            if not ok:  # RFC 7628 §3.2.2: an error challenge, then the client's empty answer
                writer.write(b"+ " + base64.b64encode(b'{"status":"401"}') + b"\r\n")
                await writer.drain()
                await reader.readline()
        elif mechanism.upper() == "PLAIN" and self.admin is not None:
            authzid, authcid, password = message.split(b"\0")
            ok = (authcid.decode(), password.decode()) == self.admin
            who = f" as {authzid.decode()}"
        self.logins.append(f"{mechanism.upper()} {'ok' if ok else 'refused'}{who}")
        writer.write(f"{tag} {'OK' if ok else 'NO [AUTHENTICATIONFAILED]'} authenticate\r\n".encode())

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        selected: Folder | None = None
        writer.write(f"* OK [CAPABILITY {self.capabilities()}] scripted\r\n".encode())
        try:
            while line := await reader.readline():
                tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
                command, _, args = rest.partition(" ")
                command = command.upper()
                if command == "UID":
                    sub, _, args = args.partition(" ")
                    command = "UID " + sub.upper()
                if command == "CAPABILITY":
                    writer.write(f"* CAPABILITY {self.capabilities()}\r\n{tag} OK done\r\n".encode())
                elif command == "LOGIN":
                    ok = args.split(" ", 1)[-1].strip('"') == self.password
                    writer.write(f"{tag} {'OK' if ok else 'NO [AUTHENTICATIONFAILED]'} login\r\n".encode())
                elif command == "AUTHENTICATE":
                    await self._authenticate(tag, args, reader, writer)
                elif command == "LIST":
                    for f in self.folders.values():
                        attrs = " ".join(("\\HasNoChildren", *f.attributes))
                        writer.write(f'* LIST ({attrs}) "/" "{f.wire_name}"\r\n'.encode())
                    writer.write(f"{tag} OK listed\r\n".encode())
                elif command in ("EXAMINE", "SELECT"):
                    name = args.split(" (")[0].strip('"')
                    selected = self.folders.get(name)
                    if selected is None:
                        writer.write(f"{tag} NO no such folder\r\n".encode())
                        continue
                    uidnext = max((m.uid for m in selected.messages), default=0) + 1
                    writer.write(
                        f"* {len(selected.messages)} EXISTS\r\n* FLAGS (\\Seen \\Flagged)\r\n"
                        f"* OK [UIDVALIDITY {selected.uidvalidity}] v\r\n* OK [UIDNEXT {uidnext}] n\r\n"
                        f"{tag} OK [READ-ONLY] examined\r\n".encode()
                    )
                elif command == "UID SEARCH":
                    assert selected is not None
                    uids = " ".join(str(m.uid) for m in selected.messages)
                    writer.write(f"* SEARCH {uids}\r\n{tag} OK searched\r\n".encode())
                elif command == "UID FETCH":
                    assert selected is not None
                    if not await self._fetch(tag, args, selected, writer):
                        return
                elif command == "LOGOUT":
                    writer.write(f"* BYE bye\r\n{tag} OK out\r\n".encode())
                    await writer.drain()
                    return
                else:
                    writer.write(f"{tag} BAD unknown command\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _fetch(self, tag: str, args: str, folder: Folder, writer: asyncio.StreamWriter) -> bool:
        uid_set, _, items = args.partition(" ")
        wanted = _parse_set(uid_set)
        body = "BODY.PEEK[]" in items.upper()
        refused = False
        for seq, m in enumerate(folder.messages, 1):
            if m.uid not in wanted:
                continue
            key = (folder.wire_name, m.uid)
            if body and key in self.faults.refuse:
                refused = True
                continue
            parts = [f"UID {m.uid}", f"RFC822.SIZE {len(m.raw)}"]
            if "FLAGS" in items.upper():
                parts.append(f"FLAGS ({' '.join(m.flags)})")
            if "INTERNALDATE" in items.upper():
                parts.append(f'INTERNALDATE "{_imap_date(m.date)}"')
            if self.gmail and m.gm_msgid is not None and "X-GM-MSGID" in items.upper():
                parts.append(f"X-GM-MSGID {m.gm_msgid}")
            if self.gmail and "X-GM-LABELS" in items.upper():
                # Gmail sends its system labels as atoms (\\Important), the user's as strings.
                labels = (label if label.startswith("\\") else f'"{label}"' for label in m.labels)
                parts.append("X-GM-LABELS (" + " ".join(labels) + ")")
            head = f"* {seq} FETCH (" + " ".join(parts)
            if not body:
                writer.write((head + ")\r\n").encode())
                continue
            if key in self.faults.malformed:
                writer.write((head + ' BODY[] "unterminated)\r\n').encode())
                continue
            literal = head.encode() + b" BODY[] {%d}\r\n" % len(m.raw)
            if key in self.faults.drop_mid_literal:
                self.faults.drop_mid_literal.discard(key)
                writer.write(literal + m.raw[: len(m.raw) // 2])
                await writer.drain()
                writer.transport.abort()
                return False
            writer.write(literal + m.raw + b")\r\n")
        writer.write(f"{tag} {'NO [SERVERBUG] cannot read that message' if refused else 'OK fetched'}\r\n".encode())
        await writer.drain()
        return True


def _parse_set(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition(":")
        high = 2**32 if last == "*" else int(last or first)
        out.update(range(int(first), min(high, 100_000) + 1))
    return out


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _imap_date(when: datetime) -> str:
    return f"{when.day:02d}-{_MONTHS[when.month - 1]}-{when.year} {when:%H:%M:%S} +0000"


def messages(prefix: str, count: int, *, start_uid: int = 1) -> list[Message]:
    out = []
    for i in range(count):
        raw = f"From: x@example.org\r\nSubject: {prefix} {i}\r\nMessage-ID: <{prefix}.{i}@example.org>\r\n\r\n{'body ' * (i + 1)}\r\n"
        out.append(Message(start_uid + i, raw.encode(), ("\\Seen",) if i % 2 else (),
                           datetime(2022, 1, 1, tzinfo=UTC) + timedelta(days=i)))
    return out

