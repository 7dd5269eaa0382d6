"""The base subject of RFC 5256 §2.1 and the i;unicode-casemap collation (RFC 5051) that SORT
and THREAD compare it with. Pure functions of their text."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["base_subject", "base_subject_info", "subject_key", "unicode_casemap"]

# --- collation (RFC 5051 i;unicode-casemap) -------------------------------------------------


class _TitlecaseTable(dict[int, str]):
    """A ``str.translate`` table that fills itself: code point -> its simple titlecase."""

    def __missing__(self, code: int) -> str:
        # RFC 5051 §2 uses the simple titlecase mapping (UnicodeData.txt); Python's title() is
        # the full one, which differs only where it yields several characters (ß -> Ss, ligatures):
        # those have no simple titlecase, so they stay as they are.
        ch = chr(code)
        title = ch.title()
        self[code] = mapped = title if len(title) == 1 else ch
        return mapped


_TITLECASE = _TitlecaseTable()


def unicode_casemap(text: str) -> str:
    """The i;unicode-casemap key of ``text`` (RFC 5051): titlecase, then NFKD.

    ASCII text is simply upper-cased, which is also i;ascii-casemap (RFC 4790 §9.2).
    """
    if text.isascii():
        return text.upper()
    return unicodedata.normalize("NFKD", text.translate(_TITLECASE))


# --- base subject (RFC 5256 §2.1) -----------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\r\n]+")
_BLOB = r"\[[^\[\]]*\] *"  # subj-blob = "[" *BLOBCHAR "]" *WSP
# *subj-leader, subj-leader = (*subj-blob subj-refwd) / WSP,
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_LEADERS = re.compile(rf"(?: |(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:)*", re.IGNORECASE | re.ASCII)
_BLOB_PREFIX = re.compile(_BLOB)
_LEADS = ("re", "fw")


def base_subject_info(subject: str) -> tuple[str, bool]:
    """The base subject and whether the subject marks a reply or forward.

    Steps (1)-(6) of RFC 5256 §2.1, on a subject whose encoded words are already decoded. The
    flag is RFC 5256 §3's "reply or forward": extraction removed a subj-refwd (``Re:``,
    ``Fwd:``, ``[list] Re[2]:``), a ``(fwd)`` trailer, or a ``[fwd: ...]`` wrapper.
    """
    # (1) tabs and continuations to space, runs of spaces to one
    text = subject
    if "  " in text or "\t" in text or "\n" in text or "\r" in text:
        text = _WHITESPACE.sub(" ", text)
    if text and text[0] not in " [" and text[-1] not in " )" and text[:2].lower() not in _LEADS:
        return text, False  # nothing for steps (2) to (6) to remove: most subjects
    refwd = False
    while True:
        # (2) trailing subj-trailer ("(fwd)" / WSP), as long as there is one
        while text:
            if text[-1] == " ":
                text = text[:-1]
            elif text[-5:].lower() == "(fwd)":
                text = text[:-5]
                refwd = True
            else:
                break
        while True:
            # (3) every leading subj-leader ((*subj-blob subj-refwd) / WSP); a subj-refwd
            # ends with ":", a WSP leader has none
            leaders = _LEADERS.match(text)
            if leaders is not None and leaders.end():
                refwd = refwd or ":" in leaders.group()
                text = text[leaders.end() :]
            # (4) a leading subj-blob, if what follows is not empty
            blob = _BLOB_PREFIX.match(text)
            if blob is None or blob.end() == len(text):
                break
            text = text[blob.end() :]
            # (5) and again (3) and (4)
        # (6) "[fwd:" subject "]": unwrap and start over from (2)
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            refwd = True
            continue
        return text, refwd


def base_subject(subject: str) -> str:
    """The base subject of RFC 5256 §2.1: ``"Re: [list] Fwd: Hello (fwd)"`` -> ``"Hello"``.

    Case is kept; compare with :func:`unicode_casemap` applied.
    """
    return base_subject_info(subject)[0]


def subject_key(subject: str) -> str:
    """What SORT SUBJECT and THREAD compare: the base subject under i;unicode-casemap."""
    return unicode_casemap(base_subject_info(subject)[0])
