"""Domains as the spam score compares them: the registrable part of a name, and free-mail
providers (anyone can get an address there, so a reply address there proves nothing).

    base_domain("mail.news.example.co.uk")   # "example.co.uk"
    "gmail.com" in DEFAULT_FREEMAIL          # True; [spam] freemail_domains replaces the list

`base_domain` is a heuristic, not the Public Suffix List (which the project does not ship): the
last two labels, or three under a two-letter country's second level (co.uk, com.au, ne.jp).
It errs towards "the same domain", so a rule that compares two domains fires less, not more.
"""

from __future__ import annotations

_SECOND_LEVELS = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "ne", "or", "go", "gv"})

DEFAULT_FREEMAIL: tuple[str, ...] = (
    "gmail.com", "googlemail.com",
    "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it", "yahoo.co.jp",
    "ymail.com", "rocketmail.com",
    "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it",
    "live.com", "live.fr", "live.co.uk", "msn.com",
    "aol.com", "aim.com", "icloud.com", "me.com", "mac.com",
    "gmx.com", "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "web.de", "t-online.de", "freenet.de",
    "mail.com", "email.com", "usa.com", "mail.ru", "inbox.ru", "list.ru", "bk.ru", "rambler.ru",
    "yandex.com", "yandex.ru", "ya.ru",
    "proton.me", "protonmail.com", "pm.me", "tutanota.com", "tuta.io", "zoho.com",
    "fastmail.com", "hushmail.com", "mailfence.com", "gmx.us",
    "qq.com", "163.com", "126.com", "sina.com", "yeah.net", "naver.com", "hanmail.net",
    "daum.net", "rediffmail.com",
    "libero.it", "virgilio.it", "laposte.net", "orange.fr", "free.fr", "sfr.fr", "wanadoo.fr",
    "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "abv.bg", "inbox.lv",
)


def base_domain(domain: str) -> str:
    """The registrable part of DOMAIN (lower case, no final dot): see the module docstring."""
    labels = domain.lower().rstrip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVELS:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def same_base(a: str, b: str) -> bool:
    return base_domain(a) == base_domain(b)
