"""Message-IDs as THREAD=REFERENCES reads them (RFC 5256 §3 step 1, RFC 5322 §3.6.4): the ids
of References and In-Reply-To, normalised so that equal ids compare equal. Pure functions."""

from __future__ import annotations

import re

__all__ = ["own_message_id", "parse_message_ids"]

_BRACKETED = re.compile(r'<((?:"(?:[^"\\]|\\.)*"|[^<>"])*)>')
_PLAIN_ID = r'[^<>\s"()@\[\]\\,;:]+@[^<>\s"()@\\,;:]+'
_PLAIN_IDS = re.compile(rf"<({_PLAIN_ID})>")
_PLAIN_ID_ONLY = re.compile(_PLAIN_ID)


def _normalize_id(inner: str) -> str | None:
    """The msg-id between the brackets without quoting, comments or folding; None if invalid."""
    parts: list[str] = []  # an atom's characters, a quoted string's contents, or " "
    kinds: list[str] = []  # "c" (character), "q" (quoted string), "s" (folding or comment)

    def space() -> None:
        if not kinds or kinds[-1] != "s":
            parts.append(" ")
            kinds.append("s")

    i, n = 0, len(inner)
    while i < n:
        ch = inner[i]
        if ch == '"':
            j, buf = i + 1, []
            while j < n and inner[j] != '"':
                if inner[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(inner[j])
                j += 1
            if j >= n:
                return None
            parts.append("".join(buf))
            kinds.append("q")
            i = j + 1
        elif ch == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                if inner[j] == "\\":
                    j += 1
                elif inner[j] == "(":
                    depth += 1
                elif inner[j] == ")":
                    depth -= 1
                j += 1
            if depth:
                return None
            space()
            i = j
        elif ch in " \t\r\n":
            space()
            i += 1
        elif ch in "<>)\\\0":
            return None
        else:
            parts.append(ch)
            kinds.append("c")
            i += 1
    # folding is allowed at the ends and around "." and "@" only (RFC 5322 obs-id-left); after
    # space() no two spaces are neighbours
    text: list[str] = []
    ats = 0
    last = len(parts) - 1

    def separator(k: int) -> bool:
        return kinds[k] == "c" and parts[k] in (".", "@")

    for k, kind in enumerate(kinds):
        part = parts[k]
        if kind == "s":
            if k in (0, last) or separator(k - 1) or separator(k + 1):
                continue
            return None
        if kind == "c" and part == "@":
            ats += 1
            part = "\0"  # the separator; an "@" inside quotes stays
        text.append(part)
    if ats != 1:
        return None
    local, _, domain = "".join(text).partition("\0")
    if not local or not domain:
        return None
    return f"{local}@{domain}"


def parse_message_ids(text: str) -> list[str]:
    """The valid msg-ids in a References or In-Reply-To value, in order, normalized without
    brackets: ``'<a@b> John <"c"@d>'`` -> ``["a@b", "c@d"]``."""
    ids: list[str] = _PLAIN_IDS.findall(text)
    if len(ids) == text.count("<") == text.count(">"):
        return ids  # the usual case: nothing quoted, nothing malformed
    ids = []
    for inner in _BRACKETED.findall(text):
        if _PLAIN_ID_ONLY.fullmatch(inner):
            ids.append(inner)
        else:
            normalized = _normalize_id(inner)
            if normalized is not None:
                ids.append(normalized)
    return ids


def own_message_id(value: str | None) -> str | None:
    """A message's own Message-ID for threading: the first msg-id in the field, or the bare
    field when it is an id without angle brackets; None when there is none."""
    if value is None:
        return None
    ids = parse_message_ids(value)
    if ids:
        return ids[0]
    bare = value.strip()
    return bare if _PLAIN_ID_ONLY.fullmatch(bare) else None
