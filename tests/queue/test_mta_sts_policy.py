"""MTA-STS texts (queue/mta_sts_policy.py, RFC 8461 §3.1, §3.2, §4.1): the TXT record and the policy
file, parsed; table-driven, no I/O."""
from __future__ import annotations

import pytest

from postoffice.queue.mta_sts_policy import (
    MtaStsPolicy,
    PolicyError,
    mx_matches,
    parse_policy,
    policy_id,
)


@pytest.mark.parametrize(("records", "expected"), [
    (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
    (["v=STSv1;id=abc"], "abc"),
    (["v=spf1 -all", "v=STSv1; id=1; ext=ignored"], "1"),  # other TXT records at the name are ignored
    ([], None),
    (["v=STSv1; id=1;", "v=STSv1; id=2;"], None),  # two policies: none (§3.1)
    (["v=STSv1;"], None),  # no id
    (["v=STSv1; id=not-alnum;"], None),
    (["v=STSv1; id=" + "a" * 33], None),  # over 32 characters
    (["v=STSv10; id=1"], None),
])
def test_policy_id_from_the_txt_records(records: list[str], expected: str | None) -> None:
    assert policy_id(records) == expected


def test_a_policy_with_crlf_or_lf_lines_and_unknown_keys() -> None:
    text = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\nmx: *.Example.NET.\r\nextension: x\r\nmax_age: 604800\r\n"
    assert parse_policy(text) == MtaStsPolicy("enforce", ("mail.example.com", "*.example.net"), 604800)
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 0\n") == MtaStsPolicy("none", (), 0)


@pytest.mark.parametrize(("text", "problem"), [
    ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
    ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
    ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode"),
    ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
    ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
    ("version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n", "twice"),
    ("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "mx"),
    ("<html>not a policy</html>\n", "key: value"),
])
def test_invalid_policies_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        parse_policy(text)


@pytest.mark.parametrize(("pattern", "host", "expected"), [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.example.com.", True),
    ("*.example.com", "mx1.example.com", True),
    ("*.example.com", "example.com", False),  # the wildcard stands for exactly one label (§4.1)
    ("*.example.com", "a.mx1.example.com", False),
    ("*.example.com", "mx1.example.com.evil.test", False),
    ("mail.example.com", "mail2.example.com", False),
])
def test_mx_patterns(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected
