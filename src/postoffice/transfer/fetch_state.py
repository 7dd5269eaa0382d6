"""What `postoffice fetch` has copied already, kept in a JSON state file beside the destination.

One file serves every source fetched into that destination: ``sources`` maps a source key
(``imap://bob@mail.example.org:993``) to its folders, each with the UIDVALIDITY the UIDs belong
to (RFC 9051 §2.3.1.1), the UIDs copied as a compact set (``1:500,502``), and for mbox files the
file's length after the last recorded message. POP3 sources keep the UIDLs copied (RFC 1939 §7).

With CONDSTORE (RFC 7162) a folder also keeps the source's HIGHESTMODSEQ up to which flag
changes have reached the copies, the UIDNEXT of the last run that left nothing behind (both
equal on the server: the folder needs no command beyond EXAMINE), the UIDs copied that the
source has since removed (``vanished``: counted once, the copies kept), and for ``local:``
the UIDs the copies have in the local mailbox (``local_uids``, runs of ``[source, local,
count]``). Files written before these fields existed load with none of them: that folder's
next run reads every message's flags once.

Durability order (what makes a rerun after SIGKILL exact): a message is written and fsynced
first, then its UID is recorded here, by writing the whole file to a temporary name, fsyncing
it, renaming it over the old one and fsyncing the folder (``durable.write_file``). A crash
between the two leaves a message that is written but not recorded; each destination recognises
those (see ``fetch_destinations``), so nothing is fetched twice and nothing is lost. The same
order holds for flags: ``highestmodseq`` moves only after the flag changes up to it are
durable at the destination, so a run killed before that carries them again (setting flags is
idempotent).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from postoffice.durable import write_file
from postoffice.transfer.source import TransferError

__all__ = [
    "FetchState",
    "FolderState",
    "SourceState",
    "format_uid_map",
    "format_uids",
    "parse_uid_map",
    "parse_uids",
]

VERSION = 1


def format_uids(uids: set[int]) -> str:
    """``1:5,8`` for {1, 2, 3, 4, 5, 8}; empty for none."""
    if not uids:
        return ""
    ordered = sorted(uids)
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid != prev + 1:
            parts.append(f"{start}:{prev}" if prev != start else str(start))
            start = uid
        prev = uid
    parts.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(parts)


def parse_uids(text: str) -> set[int]:
    uids: set[int] = set()
    for part in filter(None, text.split(",")):
        first, _, last = part.partition(":")
        uids.update(range(int(first), int(last or first) + 1))
    return uids


def format_uid_map(mapping: dict[int, int]) -> list[list[int]]:
    """{1: 10, 2: 11, 3: 12, 7: 20} as [[1, 10, 3], [7, 20, 1]]: runs where both sides count up."""
    runs: list[list[int]] = []
    for source, target in sorted(mapping.items()):
        if runs:
            first, start, count = runs[-1]
            if source == first + count and target == start + count:
                runs[-1][2] += 1
                continue
        runs.append([source, target, 1])
    return runs


def parse_uid_map(value: object) -> dict[int, int]:
    """The inverse of :func:`format_uid_map`; ValueError when it is not such a list."""
    if not isinstance(value, list):
        raise ValueError("local_uids is not a list")
    mapping: dict[int, int] = {}
    for run in value:
        if not (isinstance(run, list) and len(run) == 3 and all(isinstance(n, int) for n in run)):
            raise ValueError(f"local_uids holds {run!r}")
        source, target, count = run
        mapping.update((source + i, target + i) for i in range(count))
    return mapping


@dataclass
class FolderState:
    """One source folder. ``dedupe`` is set while the folder is fetched again after its
    UIDVALIDITY changed (or into a destination the state does not describe): messages are then
    compared by content with what the destination holds, and ``claimed`` counts the SHA-256 of
    every message recorded since, so a rerun after a crash in that pass compares with what is
    left unclaimed (a multiset: two equal messages in the source stay two)."""

    uidvalidity: int | None = None
    uids: set[int] = field(default_factory=set)
    mbox_length: int | None = None
    dedupe: bool = False
    claimed: Counter[str] = field(default_factory=Counter)
    highestmodseq: int | None = None  # flag changes up to this are at the destination
    uidnext: int | None = None  # of the last run that copied everything it found
    vanished: set[int] = field(default_factory=set)  # copied, then removed at the source
    local_uids: dict[int, int] = field(default_factory=dict)  # local: source UID -> local UID
    local_uidvalidity: int | None = None  # of the local mailbox ``local_uids`` points into

    def forget_source(self) -> None:
        """The source renumbered the folder (a new UIDVALIDITY): what was known by UID is void."""
        self.uids.clear()
        self.claimed.clear()
        self.vanished.clear()
        self.local_uids.clear()
        self.highestmodseq = None
        self.uidnext = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"uidvalidity": self.uidvalidity, "uids": format_uids(self.uids)}
        if self.mbox_length is not None:
            out["mbox_length"] = self.mbox_length
        if self.dedupe:
            out["dedupe"] = True
            out["claimed"] = dict(self.claimed)
        if self.highestmodseq is not None:
            out["highestmodseq"] = self.highestmodseq
        if self.uidnext is not None:
            out["uidnext"] = self.uidnext
        if self.vanished:
            out["vanished"] = format_uids(self.vanished)
        if self.local_uids:
            out["local_uids"] = format_uid_map(self.local_uids)
        if self.local_uidvalidity is not None:  # also without local_uids: copies were looked for
            out["local_uidvalidity"] = self.local_uidvalidity
        return out

    @classmethod
    def from_json(cls, value: dict[str, object]) -> FolderState:
        validity = value.get("uidvalidity")
        length = value.get("mbox_length")
        claimed = value.get("claimed")
        return cls(
            uidvalidity=validity if isinstance(validity, int) else None,
            uids=parse_uids(str(value.get("uids", ""))),
            mbox_length=length if isinstance(length, int) else None,
            dedupe=value.get("dedupe") is True,
            claimed=Counter({str(k): int(v) for k, v in claimed.items()}) if isinstance(claimed, dict) else Counter(),
            highestmodseq=_int_or_none(value.get("highestmodseq")),
            uidnext=_int_or_none(value.get("uidnext")),
            vanished=parse_uids(str(value.get("vanished", ""))),
            local_uids=parse_uid_map(value.get("local_uids", [])),
            local_uidvalidity=_int_or_none(value.get("local_uidvalidity")),
        )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class SourceState:
    folders: dict[str, FolderState] = field(default_factory=dict)
    uidls: set[str] = field(default_factory=set)  # POP3 sources
    gmail_ids: set[int] = field(default_factory=set)  # X-GM-MSGID of every message copied

    def folder(self, name: str) -> FolderState:
        return self.folders.setdefault(name, FolderState())


class FetchState:
    """The state file at ``path``; :meth:`save` writes it atomically and durably."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sources: dict[str, SourceState] = {}

    @classmethod
    def load(cls, path: Path) -> FetchState:
        state = cls(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return state
        except OSError as exc:
            raise TransferError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
        try:
            data = json.loads(text)
            for key, source in data.get("sources", {}).items():
                state.sources[key] = SourceState(
                    folders={n: FolderState.from_json(f) for n, f in source.get("folders", {}).items()},
                    uidls=set(source.get("uidls", [])),
                    gmail_ids={int(i) for i in source.get("gmail_ids", [])},
                )
        except (ValueError, TypeError, AttributeError) as exc:
            raise TransferError(
                f"{path} is not a fetch state file postoffice can read ({exc}); move it away to"
                " fetch everything again (messages already there are recognised)."
            ) from exc
        return state

    def source(self, key: str) -> SourceState:
        return self.sources.setdefault(key, SourceState())

    def save(self) -> None:
        self.write(self.snapshot())

    def snapshot(self) -> bytes:
        """The file's content now (taken on the event loop; :meth:`write` may run in a thread
        while fetching goes on)."""
        data = {
            "version": VERSION,
            "sources": {
                key: {
                    "folders": {name: f.to_json() for name, f in sorted(s.folders.items())},
                    "uidls": sorted(s.uidls),
                    "gmail_ids": sorted(s.gmail_ids),
                }
                for key, s in sorted(self.sources.items())
            },
        }
        return json.dumps(data, indent=1).encode() + b"\n"

    def write(self, content: bytes) -> None:
        try:
            write_file(self.path, content, mode=0o600)
        except OSError as exc:
            raise TransferError(f"{self.path} cannot be written: {exc.strerror or exc}.") from exc
