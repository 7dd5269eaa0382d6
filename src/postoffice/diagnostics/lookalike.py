"""Domains made to look like others: IDN homoglyphs (pаypal.com with a Cyrillic "а"), one-letter
edits (paypa1.com, paypall.com, pyapal.com) and brand names in display names.

    lookalike_of("xn--pypal-4ve.com", ["example.org"])   # "paypal.com" (a popular domain)
    lookalike_of("paypal.com", [])                       # None: the real one
    brand_in_name("PayPal Service")                      # Brand("PayPal", ("paypal.com", ...))

A name is first reduced to a "skeleton": A-labels decoded to Unicode (RFC 5891), then each
character that is commonly confused with a Latin letter or digit replaced by it (a small map in
the spirit of Unicode TR 39's confusables, which has thousands: the ones phishing uses). Two
names with one skeleton look alike. Then the label before the top-level domain is compared with
each known domain's, allowing one substitution, insertion, deletion or swap of neighbours
(Damerau-Levenshtein distance 1), for labels of at least `MIN_EDIT_LABEL` letters: shorter ones
(ups, dhl) have too many honest neighbours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["BRANDS", "POPULAR_DOMAINS", "Brand", "brand_in_name", "is_within", "lookalike_of",
           "skeleton"]

MIN_EDIT_LABEL = 5


@dataclass(frozen=True)
class Brand:
    name: str  # as people write it in a display name
    domains: tuple[str, ...]  # the domains its mail comes from (and their subdomains)


BRANDS = (
    Brand("PayPal", ("paypal.com", "paypal.de", "paypal.co.uk")),
    Brand("Google", ("google.com", "gmail.com", "googlemail.com", "youtube.com")),
    Brand("Gmail", ("gmail.com", "google.com", "googlemail.com")),
    Brand("Microsoft", ("microsoft.com", "office.com", "outlook.com", "live.com",
                        "microsoftonline.com", "office365.com", "hotmail.com")),
    Brand("Outlook", ("outlook.com", "microsoft.com", "live.com", "hotmail.com")),
    Brand("Office 365", ("office.com", "microsoft.com", "office365.com")),
    Brand("Apple", ("apple.com", "icloud.com", "me.com")),
    Brand("iCloud", ("icloud.com", "apple.com")),
    Brand("Amazon", ("amazon.com", "amazon.de", "amazon.co.uk", "amazon.fr", "amazonses.com",
                     "aws.amazon.com")),
    Brand("Facebook", ("facebook.com", "facebookmail.com", "meta.com")),
    Brand("Instagram", ("instagram.com", "mail.instagram.com")),
    Brand("WhatsApp", ("whatsapp.com",)),
    Brand("Netflix", ("netflix.com",)),
    Brand("LinkedIn", ("linkedin.com",)),
    Brand("Dropbox", ("dropbox.com", "dropboxmail.com")),
    Brand("DocuSign", ("docusign.com", "docusign.net")),
    Brand("Yahoo", ("yahoo.com", "yahoo.co.uk", "yahoo.fr")),
    Brand("eBay", ("ebay.com", "ebay.de", "ebay.co.uk")),
    Brand("Adobe", ("adobe.com",)),
    Brand("Spotify", ("spotify.com",)),
    Brand("Coinbase", ("coinbase.com",)),
    Brand("Binance", ("binance.com",)),
    Brand("GitHub", ("github.com",)),
    Brand("DHL", ("dhl.com", "dhl.de")),
    Brand("FedEx", ("fedex.com",)),
    Brand("UPS", ("ups.com",)),
    Brand("USPS", ("usps.com",)),
    Brand("Chase", ("chase.com", "jpmorgan.com")),
    Brand("Wells Fargo", ("wellsfargo.com",)),
    Brand("Bank of America", ("bankofamerica.com", "bofa.com")),
    Brand("American Express", ("americanexpress.com", "aexp.com")),
)
POPULAR_DOMAINS = tuple(dict.fromkeys(d for b in BRANDS for d in b.domains))

# Characters phishing uses for Latin letters and digits (Cyrillic, Greek, Latin extensions,
# fullwidth forms are folded by NFKC-like lower-casing below), and multi-letter look-alikes.
_CONFUSABLES = str.maketrans({
    "а": "a", "ɑ": "a", "α": "a", "á": "a", "à": "a", "â": "a", "ä": "a", "å": "a", "ã": "a",
    "Ь": "b", "ь": "b", "Ƅ": "b",
    "с": "c", "ϲ": "c", "ç": "c",
    "ԁ": "d", "ɗ": "d",
    "е": "e", "ё": "e", "ε": "e", "é": "e", "è": "e", "ê": "e", "ë": "e", "ė": "e",
    "ɡ": "g", "ģ": "g",
    "һ": "h",
    "і": "i", "ı": "i", "ι": "i", "í": "i", "ì": "i", "î": "i", "ï": "i", "1": "l", "!": "l",
    "ј": "j",
    "κ": "k", "к": "k",
    "ӏ": "l", "ⅼ": "l", "|": "l", "ł": "l",
    "м": "m",
    "ո": "n", "ñ": "n", "п": "n",
    "о": "o", "ο": "o", "σ": "o", "ö": "o", "ó": "o", "ò": "o", "ô": "o", "õ": "o", "ø": "o",
    "0": "o",
    "р": "p", "ρ": "p",
    "ԛ": "q",
    "ѕ": "s", "ś": "s", "š": "s", "5": "s",
    "т": "t", "τ": "t",
    "υ": "u", "ս": "u", "ü": "u", "ú": "u", "ù": "u", "û": "u",
    "ν": "v", "ѵ": "v",
    "ԝ": "w", "ѡ": "w",
    "х": "x", "χ": "x",
    "у": "y", "ү": "y", "ý": "y", "ÿ": "y",
    "ᴢ": "z", "ž": "z", "ż": "z",
})
_SEQUENCES = (("rn", "m"), ("vv", "w"), ("cl", "d"))


def _unicode(domain: str) -> str:
    """DOMAIN with its A-labels ("xn--...") decoded; labels that do not decode stay as written."""
    labels = []
    for label in domain.lower().rstrip(".").split("."):
        if label.startswith("xn--"):
            try:
                label = label.encode("ascii").decode("idna")
            except UnicodeError:
                pass
        labels.append(label)
    return ".".join(labels)


def skeleton(domain: str) -> str:
    """What DOMAIN looks like: Unicode, lower case, confusable characters as their Latin twins."""
    text = _unicode(domain).casefold().translate(_CONFUSABLES)
    for pair, single in _SEQUENCES:
        text = text.replace(pair, single)
    return text


def is_within(domain: str, parent: str) -> bool:
    domain, parent = domain.lower().rstrip("."), parent.lower().rstrip(".")
    return domain == parent or domain.endswith("." + parent)


def _label(domain: str) -> str:
    """The label before the top-level domain (or before a two-letter country's "co."/"com.")."""
    labels = domain.split(".")
    if len(labels) >= 3 and labels[-2] in ("co", "com", "org", "net") and len(labels[-1]) == 2:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance exactly 1 (substitution, insertion, deletion, neighbour swap)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def lookalike_of(domain: str, local_domains: Iterable[str] = ()) -> str | None:
    """The local or popular domain that DOMAIN imitates, or None (also when it is that domain or
    below it)."""
    domain = domain.lower().rstrip(".")
    known = _known(tuple(dict.fromkeys(d.lower().rstrip(".") for d in local_domains)))
    if any(is_within(domain, real) for real, _, _ in known):
        return None
    shape = skeleton(domain)
    label = _label(shape)
    for real, real_shape, real_label in known:
        if shape == real_shape or (shape.endswith("." + real_shape) and not domain.isascii()):
            return real
        if label == real_label and shape != domain:
            return real  # the same name spelt with look-alike characters, under any TLD
        if len(real_label) >= MIN_EDIT_LABEL and _one_edit(label, real_label):
            return real
    return None


@functools.lru_cache(maxsize=64)
def _known(local_domains: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    """(domain, skeleton, label) of our domains then the popular ones, computed once per set of
    local domains: the spam score asks about every incoming message's From domain."""
    return tuple((real, shape, _label(shape))
                 for real in dict.fromkeys((*local_domains, *POPULAR_DOMAINS))
                 for shape in (skeleton(real),))


def _fold(text: str) -> str:
    """TEXT as it looks: look-alike characters as their Latin twins, and i, I, l, 1 as one
    letter (a capital I and a small l are the same stroke in most fonts: "PayPaI")."""
    return text.translate(_CONFUSABLES).casefold().translate(_CONFUSABLES).replace("i", "l")


def _brand_pattern(brand: Brand) -> re.Pattern[str]:
    words = r"\s*".join(re.escape(_fold(w)) for w in brand.name.split())
    return re.compile(rf"(?<![a-z0-9]){words}(?![a-z0-9])")


_BRAND_PATTERNS = [(brand, _brand_pattern(brand)) for brand in BRANDS]


def brand_in_name(name: str) -> Brand | None:
    """The brand a display name claims to be ("PayPal", "PayPal Service", "Apple Support",
    "PayPaI"), after folding look-alike characters; None when it names none."""
    folded = _fold(name)
    for brand, pattern in _BRAND_PATTERNS:
        if pattern.search(folded):
            return brand
    return None
