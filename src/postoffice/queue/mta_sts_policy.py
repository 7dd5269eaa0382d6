"""MTA-STS (RFC 8461) texts, parsed: the ``_mta-sts`` TXT record and the policy file. Pure, no I/O.

    policy_id(["v=STSv1; id=20240101T000000;"])     -> "20240101T000000"  (None: no policy published)
    policy = parse_policy("version: STSv1\\nmode: enforce\\nmx: *.example.org\\nmax_age: 86400\\n")
    policy.allows("mx1.example.org")                  -> True

Rules, and why:
- TXT (§3.1): only records starting with ``v=STSv1`` count; anything else at the name is ignored.
  More than one such record, or one without a valid ``id`` (1 to 32 letters and digits), means
  no policy is published (§3.1: "senders ... MUST assume ... no policy").
- Policy (§3.2): ``key: value`` lines ending in CRLF or LF; ``version: STSv1``, ``mode``
  (enforce, testing or none) and ``max_age`` (0 to 31557600 s) are required; ``mx`` is required
  unless the mode is none and may repeat. Unknown keys are ignored, a repeated known key other
  than ``mx`` is an error (what the first said would be a guess).
- An ``mx`` pattern ``*.example.org`` stands for exactly one more left-most label (§4.1):
  ``mx1.example.org`` matches, ``example.org`` and ``a.mx.example.org`` do not. Names compare
  case-insensitively, without a trailing dot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = ["MAX_AGE", "Mode", "MtaStsPolicy", "PolicyError", "mx_matches", "parse_policy", "policy_id"]

Mode = Literal["enforce", "testing", "none"]
MAX_AGE = 31_557_600  # §3.2: about a year
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_KEY = re.compile(r"[A-Za-z0-9_]+")


class PolicyError(ValueError):
    """The policy file is not a valid MTA-STS policy; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class MtaStsPolicy:
    mode: Mode
    mx: tuple[str, ...]  # patterns, lower-case: "mx1.example.org", "*.example.org"
    max_age: int

    def allows(self, host: str) -> bool:
        """Whether MX host ``host`` is one the policy names (§4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def policy_id(records: Iterable[str]) -> str | None:
    """The ``id`` of the one STSv1 TXT record among ``records``; None when none is valid."""
    found = [r for r in records if r.strip().startswith("v=STSv1")]
    if len(found) != 1:
        return None
    fields: dict[str, str] = {}
    for part in found[0].split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    if fields.get("v") != "STSv1":  # "v=STSv10" starts the same way and is not ours
        return None
    identity = fields.get("id", "")
    return identity if _ID.fullmatch(identity) else None


def parse_policy(text: str) -> MtaStsPolicy:
    """The policy in ``text`` (the body of mta-sts.txt); `PolicyError` when it is not one."""
    values: dict[str, str] = {}
    mx: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.fullmatch(key):
            raise PolicyError(f"the line {line[:60]!r} is not 'key: value'")
        if key == "mx":
            if not _mx_pattern_ok(value):
                raise PolicyError(f"mx {value[:60]!r} is not a host name or *.domain pattern")
            mx.append(value.lower().rstrip("."))
        elif key in ("version", "mode", "max_age"):
            if key in values:
                raise PolicyError(f"{key} is given twice")
            values[key] = value
    if values.get("version") != "STSv1":
        raise PolicyError("the version is not STSv1")
    mode = values.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"the mode {mode!r} is not enforce, testing or none")
    age = values.get("max_age", "")
    if not age.isdigit() or len(age) > 10 or int(age) > MAX_AGE:
        raise PolicyError(f"max_age {age[:20]!r} is not a number of seconds up to {MAX_AGE}")
    if not mx and mode != "none":
        raise PolicyError("no mx line")
    return MtaStsPolicy(mode, tuple(mx), int(age))  # type: ignore[arg-type]  # checked above


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: an exact name, or ``*.`` standing for exactly one left-most label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return host == pattern


def _mx_pattern_ok(value: str) -> bool:
    name = value[2:] if value.startswith("*.") else value
    labels = name.rstrip(".").split(".")
    return 0 < len(name) <= 253 and all(re.fullmatch(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?",
                                                     label) for label in labels)
