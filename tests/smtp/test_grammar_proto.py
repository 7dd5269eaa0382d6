"""MAIL FROM / RCPT TO arguments: paths, source routes, SMTPUTF8, ESMTP and DSN parameters."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postoffice.smtp.proto.events import MailParams, RcptParams
from postoffice.smtp.proto.grammar import (
    ParseError,
    decode_xtext,
    parse_mail_from,
    parse_rcpt_to,
)

MAIL_OK = [
    # args, address, params
    ("FROM:<user@example.org>", "user@example.org", MailParams()),
    ("from:<user@example.org>", "user@example.org", MailParams()),
    ("FROM: <user@example.org>", "user@example.org", MailParams()),  # tolerated space
    ("FROM:<>", "", MailParams()),  # null reverse-path (bounces)
    ("FROM:<> SIZE=0", "", MailParams(size=0)),
    ("FROM:<@relay.example:user@example.org>", "user@example.org", MailParams()),
    ('FROM:<"john"@example.org>', "john@example.org", MailParams()),  # needless quotes dropped
    ('FROM:<"john doe"@example.org>', '"john doe"@example.org', MailParams()),
    ('FROM:<"a\\"b"@example.org>', '"a\\"b"@example.org', MailParams()),
    ('FROM:<"\\j"@example.org>', "j@example.org", MailParams()),
    ("FROM:<a%b@example.org>", "a%b@example.org", MailParams()),  # policy decides about %
    ("FROM:<a!b@example.org>", "a!b@example.org", MailParams()),
    ("FROM:<user@[192.0.2.1]>", "user@[192.0.2.1]", MailParams()),
    ("FROM:<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]", MailParams()),
    ("FROM:<user@[x-tag:opaque]>", "user@[x-tag:opaque]", MailParams()),
    ("FROM:<u@x> SIZE=1000", "u@x", MailParams(size=1000)),
    ("FROM:<u@x>  size=1000  body=8bitmime ", "u@x", MailParams(size=1000, body="8BITMIME")),
    ("FROM:<u@x> BODY=7BIT", "u@x", MailParams(body="7BIT")),
    ("FROM:<u@x> BODY=BINARYMIME", "u@x", MailParams(body="BINARYMIME")),
    ("FROM:<u@x> SMTPUTF8", "u@x", MailParams(smtputf8=True)),
    ("FROM:<u@x> AUTH=<>", "u@x", MailParams(auth="<>")),
    ("FROM:<u@x> AUTH=me+2Bt@x", "u@x", MailParams(auth="me+t@x")),
    ("FROM:<u@x> RET=hdrs ENVID=QQ314159", "u@x", MailParams(ret="HDRS", envid="QQ314159")),
    ("FROM:<u@x> ENVID=a+2Bb+3Dc", "u@x", MailParams(envid="a+b=c")),
    ("FROM:<jöran@exämple.org> SMTPUTF8", "jöran@exämple.org", MailParams(smtputf8=True)),
]


@pytest.mark.parametrize(("args", "address", "params"), MAIL_OK)
def test_mail_from_table(args: str, address: str, params: MailParams) -> None:
    assert parse_mail_from(args) == (address, params)


MAIL_ERRORS = [
    # args, code, enhanced
    ("", 501, "5.5.4"),
    ("TO:<u@x>", 501, "5.5.4"),
    ("FROM:u@x", 501, "5.5.4"),  # no angle brackets
    ("FROM:<u@x", 553, "5.1.7"),
    ("FROM:<u>", 553, "5.1.7"),
    ("FROM:<Postmaster>", 553, "5.1.7"),  # only RCPT may omit the domain
    ("FROM:<u@-x.org>", 553, "5.1.7"),
    ("FROM:<u@x-.org>", 553, "5.1.7"),
    ("FROM:<u@x..org>", 553, "5.1.7"),
    ("FROM:<.u@x>", 553, "5.1.7"),
    ("FROM:<u.@x>", 553, "5.1.7"),
    ("FROM:<u v@x>", 553, "5.1.7"),
    ("FROM:<u@[300.1.1.1]>", 553, "5.1.7"),
    ("FROM:<u@[IPv6:xyz]>", 553, "5.1.7"),
    ("FROM:<u@x>junk", 501, "5.5.4"),
    ("FROM:<" + "a" * 65 + "@x>", 553, "5.1.7"),
    ("FROM:<a@" + "b" * 64 + ".org>", 553, "5.1.7"),  # label over 63
    ("FROM:<a@" + ".".join(["b" * 60] * 5) + ">", 553, "5.1.7"),  # path over 256
    ("FROM:<u@x> SIZE", 501, "5.5.4"),
    ("FROM:<u@x> SIZE=abc", 501, "5.5.4"),
    ("FROM:<u@x> SIZE=1 SIZE=2", 501, "5.5.4"),
    ("FROM:<u@x> size=1 SIZE=2", 501, "5.5.4"),  # keywords are case-insensitive
    ("FROM:<u@x> BODY=9BIT", 501, "5.5.4"),
    ("FROM:<u@x> SMTPUTF8=yes", 501, "5.5.4"),
    ("FROM:<u@x> RET=ALL", 501, "5.5.4"),
    ("FROM:<u@x> ENVID=" + "a" * 101, 501, "5.5.4"),
    ("FROM:<u@x> ENVID=a+zz", 501, "5.5.4"),
    ("FROM:<u@x> ENVID=a+2", 501, "5.5.4"),
    ("FROM:<u@x> =x", 501, "5.5.4"),
    ("FROM:<u@x> X=a=b", 501, "5.5.4"),
    ("FROM:<u@x> XFOO=1", 555, "5.5.4"),
    ("FROM:<u@x> NOTIFY=NEVER", 555, "5.5.4"),  # an RCPT parameter
    ("FROM:<jöran@example.org>", 553, "5.6.7"),  # UTF-8 needs SMTPUTF8 (RFC 6531)
    ("FROM:<u@exämple.org>", 553, "5.6.7"),
    ("FROM:<u@x> AUTH=jöran@x", 501, "5.5.4"),
]


@pytest.mark.parametrize(("args", "code", "enhanced"), MAIL_ERRORS)
def test_mail_from_errors(args: str, code: int, enhanced: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_mail_from(args)
    assert (info.value.reply.code, info.value.reply.enhanced) == (code, enhanced)


def test_smtputf8_param_refused_when_not_offered() -> None:
    with pytest.raises(ParseError) as info:
        parse_mail_from("FROM:<u@x> SMTPUTF8", smtputf8_allowed=False)
    assert info.value.reply.code == 555


RCPT_OK = [
    # args, address, params, source route
    ("TO:<user@example.org>", "user@example.org", RcptParams(), False),
    ("to: <user@example.org>", "user@example.org", RcptParams(), False),
    ("TO:<Postmaster>", "postmaster", RcptParams(), False),  # RFC 5321 §4.5.1
    ("TO:<POSTMASTER>", "postmaster", RcptParams(), False),
    ("TO:<postmaster@example.org>", "postmaster@example.org", RcptParams(), False),
    ("TO:<@a.example,@b.example:user@d.example>", "user@d.example", RcptParams(), True),
    ("TO:<@a.example:user@d.example>", "user@d.example", RcptParams(), True),
    ("TO:<a%b@example.org>", "a%b@example.org", RcptParams(), False),
    ("TO:<b!a@example.org>", "b!a@example.org", RcptParams(), False),
    ("TO:<u@x> NOTIFY=NEVER", "u@x", RcptParams(notify=("NEVER",)), False),
    (
        "TO:<u@x> notify=success,Failure,DELAY",
        "u@x",
        RcptParams(notify=("SUCCESS", "FAILURE", "DELAY")),
        False,
    ),
    (
        "TO:<u@x> ORCPT=rfc822;user+2Btag@example.org",
        "u@x",
        RcptParams(orcpt="rfc822;user+tag@example.org"),
        False,
    ),
    (
        "TO:<u@x> ORCPT=rfc822;a+20b@x NOTIFY=FAILURE",
        "u@x",
        RcptParams(notify=("FAILURE",), orcpt="rfc822;a b@x"),
        False,
    ),
]


@pytest.mark.parametrize(("args", "address", "params", "route"), RCPT_OK)
def test_rcpt_to_table(args: str, address: str, params: RcptParams, route: bool) -> None:
    assert parse_rcpt_to(args) == (address, params, route)


RCPT_ERRORS = [
    ("", 501, "5.5.4"),
    ("FROM:<u@x>", 501, "5.5.4"),
    ("TO:<>", 553, "5.1.3"),
    ("TO:<u>", 553, "5.1.3"),
    ("TO:<@a.example:>", 553, "5.1.3"),
    ("TO:<@a.example,u@x>", 553, "5.1.3"),
    ("TO:<@-a:u@x>", 553, "5.1.3"),
    ("TO:<Postmaster>junk", 501, "5.5.4"),
    ("TO:<Postmaster> junk", 555, "5.5.4"),  # a well-formed unknown parameter
    ("TO:<u@x> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),  # NEVER must stand alone (RFC 3461 §4.1)
    ("TO:<u@x> NOTIFY=SUCCESS,SUCCESS", 501, "5.5.4"),
    ("TO:<u@x> NOTIFY=SOMETIMES", 501, "5.5.4"),
    ("TO:<u@x> NOTIFY=", 501, "5.5.4"),
    ("TO:<u@x> NOTIFY", 501, "5.5.4"),
    ("TO:<u@x> ORCPT=user@x", 501, "5.5.4"),  # no addr-type
    ("TO:<u@x> ORCPT=rfc822;", 501, "5.5.4"),
    ("TO:<u@x> ORCPT=rfc822;a+GG", 501, "5.5.4"),
    ("TO:<u@x> ORCPT=rfc822;a+FF", 501, "5.5.4"),  # decodes to a lone non-UTF-8 octet
    ("TO:<u@x> SIZE=1", 555, "5.5.4"),  # a MAIL parameter
    ("TO:<jöran@example.org>", 553, "5.6.7"),
]


@pytest.mark.parametrize(("args", "code", "enhanced"), RCPT_ERRORS)
def test_rcpt_to_errors(args: str, code: int, enhanced: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_rcpt_to(args)
    assert (info.value.reply.code, info.value.reply.enhanced) == (code, enhanced)


def test_utf8_recipient_allowed_when_mail_had_smtputf8() -> None:
    assert parse_rcpt_to("TO:<jöran@exämple.org>", smtputf8=True)[0] == "jöran@exämple.org"


XTEXT = [
    ("", ""),
    ("plain", "plain"),
    ("a+2Bb", "a+b"),
    ("a+3db", "a=b"),  # lower-case hex tolerated
    ("+2B+2B", "++"),
    ("+C3+A9", "é"),
]


@pytest.mark.parametrize(("text", "decoded"), XTEXT)
def test_decode_xtext(text: str, decoded: str) -> None:
    assert decode_xtext(text) == decoded


@pytest.mark.parametrize("text", ["a+b", "a=b", "a b", "+", "+2", "é"])
def test_decode_xtext_rejects(text: str) -> None:
    with pytest.raises(ParseError):
        decode_xtext(text)


@pytest.mark.parametrize(
    "args",
    [
        "FROM:<" + "a" * 4000 + "@",
        "FROM:<" + "a." * 2000,
        "FROM:<u@" + "a-" * 2000,
        "FROM:<u@" + "a" * 4000 + "-",
        'FROM:<"' + "\\a" * 2000,
        "FROM:<@" + "a," * 2000,
        "FROM:<u@x>" + " A=b" * 800,
    ],
)
def test_hostile_long_arguments_are_cheap(args: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ParseError):
        parse_mail_from(args)
    assert time.perf_counter() - start < 0.05


@given(st.text(max_size=120))
def test_mail_from_never_raises_anything_but_parse_error(args: str) -> None:
    try:
        address, params = parse_mail_from(args)
    except ParseError as exc:
        assert exc.reply.code in (501, 553, 555)
    else:
        assert isinstance(address, str) and isinstance(params, MailParams)


@given(st.text(alphabet='<>@.:,"\\ =+;aZ0-é[]', max_size=60))
def test_rcpt_to_never_raises_anything_but_parse_error(text: str) -> None:
    try:
        parse_rcpt_to("TO:" + text, smtputf8=True)
    except ParseError as exc:
        assert exc.reply.code in (501, 553, 555)
