"""Where each source folder goes in a migration: pure, no I/O.

In order: `--map A=B` (A itself, and A's subfolders below B); INBOX stays INBOX; a folder with a
SPECIAL-USE attribute (RFC 6154: \\Sent, \\Drafts, \\Trash, \\Junk, \\Archive) goes to the
destination's folder with the same attribute, or to the usual name (`[Gmail]/Sent Mail` ->
`Sent`); a folder without one but with a name every client knows (`Sent Items`, `Deleted
Messages`, `Spam`...) likewise; every other folder keeps its name. Gmail's \\All and \\Flagged
are views of mail that is in other folders too: they are left out, or every message would be
copied twice (a `--map` for one of them copies it all the same).

Names here use "/" between levels, whatever the servers' delimiters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from postoffice.transfer.source import TransferError

__all__ = ["FolderInfo", "FolderPlan", "parse_maps", "plan_folders"]

STANDARD_NAMES = {
    "\\Sent": "Sent",
    "\\Drafts": "Drafts",
    "\\Trash": "Trash",
    "\\Junk": "Junk",
    "\\Archive": "Archive",
}
VIEWS = frozenset({"\\All", "\\Flagged"})
# Names clients and servers give these folders when they do not say SPECIAL-USE.
_KNOWN_NAMES = {
    "sent": "\\Sent", "sent items": "\\Sent", "sent messages": "\\Sent", "sent mail": "\\Sent",
    "drafts": "\\Drafts", "draft": "\\Drafts",
    "trash": "\\Trash", "deleted items": "\\Trash", "deleted messages": "\\Trash",
    "junk": "\\Junk", "spam": "\\Junk", "junk e-mail": "\\Junk", "junk email": "\\Junk",
    "archive": "\\Archive", "archives": "\\Archive",
}


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """A folder on either side: its name with "/" between levels, and its special use."""

    name: str
    special_use: str | None = None


@dataclass(frozen=True, slots=True)
class FolderPlan:
    source: FolderInfo
    target: str | None  # None: left out (`why` says why)
    why: str


def parse_maps(values: Iterable[str]) -> dict[str, str]:
    """`--map A=B` values; TransferError names one that is not of that form."""
    maps: dict[str, str] = {}
    for value in values:
        source, eq, target = value.partition("=")
        if not eq or not source.strip("/") or not target.strip("/"):
            raise TransferError(f"--map {value!r} is not of the form SOURCE=DESTINATION.")
        maps[source.strip("/")] = target.strip("/")
    return maps


def _known_use(name: str) -> str | None:
    last = name.rsplit("/", 1)[-1].lower()
    top = name.split("/", 1)[0].lower()
    # "INBOX/Sent" and "[Gmail]/Sent Mail" as well as "Sent", but not "Projects/Archive".
    if "/" in name and top not in ("inbox", "[gmail]", "[google mail]"):
        return None
    return _KNOWN_NAMES.get(last)


def plan_folders(
    sources: Sequence[FolderInfo], destination: Sequence[FolderInfo], maps: Mapping[str, str]
) -> list[FolderPlan]:
    """The target of every source folder (see the module text)."""
    by_use = {f.special_use: f.name for f in destination if f.special_use}
    plans: list[FolderPlan] = []
    for folder in sources:
        name = folder.name
        mapped = _mapped(name, maps)
        if mapped is not None:
            plans.append(FolderPlan(folder, mapped, "--map"))
        elif name.upper() == "INBOX":
            plans.append(FolderPlan(folder, "INBOX", "INBOX"))
        elif folder.special_use in VIEWS:
            plans.append(FolderPlan(folder, None, f"{folder.special_use} holds mail of other folders"))
        else:
            use = folder.special_use if folder.special_use in STANDARD_NAMES else _known_use(name)
            if use is not None:
                target = by_use.get(use, STANDARD_NAMES[use])
                plans.append(FolderPlan(folder, target, use))
            else:
                plans.append(FolderPlan(folder, name, "same name"))
    return plans


def _mapped(name: str, maps: Mapping[str, str]) -> str | None:
    if name in maps:
        return maps[name]
    # The longest mapped parent wins: A=B maps A/x/y to B/x/y.
    for source in sorted(maps, key=len, reverse=True):
        if name.startswith(source + "/"):
            return maps[source] + name[len(source) :]
    return None
