"""The ACL right that setting or clearing a flag needs (RFC 4314 §4): \\Seen needs "s",
\\Deleted "t", every other flag and keyword "w". Apart from access.py so that the session can
use it (access.py imports the session)."""

from __future__ import annotations

_FLAG_RIGHTS = {"\\seen": "s", "\\deleted": "t"}


def right_for(flag: str) -> str:
    return _FLAG_RIGHTS.get(flag.lower(), "w")
