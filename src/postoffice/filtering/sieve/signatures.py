"""What each Sieve command and test accepts: the table the validator checks scripts against.

A `Signature` lists the capability that must be `require`d (None: RFC 5228 base language), the
positional arguments ("string", "strings" for a string list, "number"; a "?" prefix marks an
optional one, filled left to right), the tagged arguments (mutually exclusive within a group),
whether it takes tests and a block. Extensions with their RFCs:

fileinto, envelope (RFC 5228); reject, ereject (RFC 5429); vacation (RFC 5230),
vacation-seconds (RFC 6131); imap4flags (RFC 5232); copy (RFC 3894); relational (RFC 5231);
subaddress (RFC 5233); body (RFC 5173); variables (RFC 5229); date (RFC 5260); include
(RFC 6609); duplicate (RFC 7352); editheader (RFC 5293); mailbox (RFC 5490); spamtest,
spamtestplus, virustest (RFC 5235); environment (RFC 5183); encoded-character (RFC 5228 §2.4.2.4);
comparator-i;ascii-numeric (RFC 4790 §9.1).
"""
from __future__ import annotations

from dataclasses import dataclass

# Every capability `require` accepts; ManageSieve announces this list (RFC 5804 §1.7).
CAPABILITIES = (
    "fileinto", "envelope", "encoded-character", "comparator-i;octet",
    "comparator-i;ascii-casemap", "comparator-i;ascii-numeric", "reject", "ereject", "vacation",
    "vacation-seconds", "imap4flags", "copy", "relational", "subaddress", "body", "variables",
    "date", "include", "duplicate", "editheader", "mailbox", "spamtest", "spamtestplus",
    "virustest", "environment",
)
# Requiring the left one gives the right one too.
IMPLIED = {"vacation-seconds": "vacation", "spamtestplus": "spamtest"}


@dataclass(frozen=True, slots=True)
class TagSpec:
    name: str
    group: str
    arg: str | None = None  # "string", "strings", "number" or None
    capability: str | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    capability: str | None
    positional: tuple[str, ...] = ()
    tags: tuple[TagSpec, ...] = ()
    tests: str = "none"  # "none", "one" (a single test), "list" (a parenthesised list)
    block: bool = False
    is_test: bool = False


def _match_tags() -> tuple[TagSpec, ...]:
    return (
        TagSpec(":comparator", "comparator", "string"),
        TagSpec(":is", "match"),
        TagSpec(":contains", "match"),
        TagSpec(":matches", "match"),
        TagSpec(":count", "match", "string", "relational"),
        TagSpec(":value", "match", "string", "relational"),
    )


MATCH = _match_tags()
ADDRESS_PART = (
    TagSpec(":all", "address-part"),
    TagSpec(":localpart", "address-part"),
    TagSpec(":domain", "address-part"),
    TagSpec(":user", "address-part", None, "subaddress"),
    TagSpec(":detail", "address-part", None, "subaddress"),
)
FLAGS = TagSpec(":flags", "flags", "strings", "imap4flags")
COPY = TagSpec(":copy", "copy", None, "copy")

_COMMANDS = (
    Signature("require", None, ("strings",)),
    Signature("if", None, tests="one", block=True),
    Signature("elsif", None, tests="one", block=True),
    Signature("else", None, block=True),
    Signature("stop", None),
    Signature("keep", None, tags=(FLAGS,)),
    Signature("discard", None),
    Signature("redirect", None, ("string",), (COPY,)),
    Signature("fileinto", "fileinto", ("string",),
              (FLAGS, COPY, TagSpec(":create", "create", None, "mailbox"))),
    Signature("reject", "reject", ("string",)),
    Signature("ereject", "ereject", ("string",)),
    Signature("vacation", "vacation", ("string",), (
        TagSpec(":days", "period", "number"),
        TagSpec(":seconds", "period", "number", "vacation-seconds"),
        TagSpec(":subject", "subject", "string"),
        TagSpec(":from", "from", "string"),
        TagSpec(":addresses", "addresses", "strings"),
        TagSpec(":mime", "mime"),
        TagSpec(":handle", "handle", "string"),
    )),
    Signature("setflag", "imap4flags", ("?string", "strings")),
    Signature("addflag", "imap4flags", ("?string", "strings")),
    Signature("removeflag", "imap4flags", ("?string", "strings")),
    Signature("set", "variables", ("string", "string"), (
        TagSpec(":lower", "case"),
        TagSpec(":upper", "case"),
        TagSpec(":lowerfirst", "first"),
        TagSpec(":upperfirst", "first"),
        TagSpec(":quotewildcard", "quotewildcard"),
        TagSpec(":length", "length"),
    )),
    Signature("include", "include", ("string",), (
        TagSpec(":personal", "location"),
        TagSpec(":global", "location"),
        TagSpec(":once", "once"),
        TagSpec(":optional", "optional"),
    )),
    Signature("return", "include"),
    Signature("global", "include", ("strings",)),
    Signature("addheader", "editheader", ("string", "string"), (TagSpec(":last", "last"),)),
    Signature("deleteheader", "editheader", ("string", "?strings"),
              (TagSpec(":index", "index", "number"), TagSpec(":last", "last"), *MATCH)),
)

_TESTS = (
    Signature("address", None, ("strings", "strings"), (*MATCH, *ADDRESS_PART), is_test=True),
    Signature("envelope", "envelope", ("strings", "strings"), (*MATCH, *ADDRESS_PART), is_test=True),
    Signature("header", None, ("strings", "strings"), MATCH, is_test=True),
    Signature("exists", None, ("strings",), is_test=True),
    Signature("size", None, ("number",),
              (TagSpec(":over", "size"), TagSpec(":under", "size")), is_test=True),
    Signature("true", None, is_test=True),
    Signature("false", None, is_test=True),
    Signature("not", None, tests="one", is_test=True),
    Signature("allof", None, tests="list", is_test=True),
    Signature("anyof", None, tests="list", is_test=True),
    Signature("string", "variables", ("strings", "strings"), MATCH, is_test=True),
    Signature("hasflag", "imap4flags", ("?strings", "strings"), MATCH, is_test=True),
    Signature("body", "body", ("strings",), (
        *MATCH,
        TagSpec(":raw", "transform"),
        TagSpec(":content", "transform", "strings"),
        TagSpec(":text", "transform"),
    ), is_test=True),
    Signature("date", "date", ("string", "string", "strings"), (
        TagSpec(":zone", "zone", "string"), TagSpec(":originalzone", "zone"), *MATCH,
    ), is_test=True),
    Signature("currentdate", "date", ("string", "strings"),
              (TagSpec(":zone", "zone", "string"), *MATCH), is_test=True),
    Signature("environment", "environment", ("string", "strings"), MATCH, is_test=True),
    Signature("spamtest", "spamtest", ("string",),
              (TagSpec(":percent", "percent", None, "spamtestplus"), *MATCH), is_test=True),
    Signature("virustest", "virustest", ("string",), MATCH, is_test=True),
    Signature("duplicate", "duplicate", (), (
        TagSpec(":handle", "handle", "string"),
        TagSpec(":header", "id", "string"),
        TagSpec(":uniqueid", "id", "string"),
        TagSpec(":seconds", "seconds", "number"),
        TagSpec(":last", "last"),
    ), is_test=True),
    Signature("mailboxexists", "mailbox", ("strings",), is_test=True),
)

COMMANDS = {s.name: s for s in _COMMANDS}
TESTS = {s.name: s for s in _TESTS}
