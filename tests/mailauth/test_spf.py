"""SPF (RFC 7208): macros and parsing (pure), check_host on in-memory DNS, hostile records,
and the Received-SPF field. The openspf and Stalwart suites are in tests/conformance/."""

from __future__ import annotations

import asyncio
import time
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.mailauth.memory_resolver import MemoryResolver

from postoffice.mailauth.dns_types import DnsAnswer
from postoffice.mailauth.results import SpfResult
from postoffice.mailauth.spf import check_helo, check_host, check_mail_from, received_spf_header
from postoffice.mailauth.spf_macro import (
    MAX_EXPANSION,
    MacroTooLong,
    MacroValues,
    SpfSyntaxError,
    expand,
    parse_macro_string,
)
from postoffice.mailauth.spf_record import MAX_RECORD_LENGTH, is_spf_record, parse_record

CODES = {"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}
BOUND = 10.0  # seconds: generous on a loaded 2-core machine; a hang fails instead of blocking


def run(coro: object) -> SpfResult:
    return asyncio.run(asyncio.wait_for(coro, BOUND))  # type: ignore[arg-type]


# --- macros (§7) ------------------------------------------------------------------------------

RFC_SENDER = "strong-bad@email.example.com"


def macro(text: str, ip: str = "192.0.2.3", *, explanation: bool = False, **extra: object) -> str:
    values = MacroValues(sender=RFC_SENDER, domain="email.example.com", ip=ip_address(ip),
                         helo="mx.example.org", **extra)  # type: ignore[arg-type]
    return expand(parse_macro_string(text, explanation=explanation), values)


@pytest.mark.parametrize(("text", "expanded"), [
    # RFC 7208 §7.4, every example
    ("%{s}", "strong-bad@email.example.com"),
    ("%{o}", "email.example.com"),
    ("%{d}", "email.example.com"),
    ("%{d4}", "email.example.com"),
    ("%{d3}", "email.example.com"),
    ("%{d2}", "example.com"),
    ("%{d1}", "com"),
    ("%{dr}", "com.example.email"),
    ("%{d2r}", "example.email"),
    ("%{l}", "strong-bad"),
    ("%{l-}", "strong.bad"),
    ("%{lr}", "strong-bad"),
    ("%{lr-}", "bad.strong"),
    ("%{l1r-}", "strong"),
    ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
    ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
    ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
    ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
    ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ("%{h}", "mx.example.org"),
    ("%{p}", "unknown"),
    ("%%%_%-", "% %20"),
    ("%{l+-}", "strong.bad"),  # several delimiters
    ("%{d999999999}", "email.example.com"),  # more parts than there are: all of them
])
def test_macro_expansion_follows_the_rfc_examples(text: str, expanded: str) -> None:
    assert macro(text) == expanded


def test_macro_ipv6_is_dotted_nibbles_and_c_is_the_readable_form() -> None:
    assert macro("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01") == (
        "1.0.B.C.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.ip6._spf.example.com")
    assert macro("%{c}", "2001:DB8::CB01", explanation=True) == "2001:db8::cb01"


def test_upper_case_macros_are_url_escaped() -> None:
    values = MacroValues(sender="~jack&jill=up a/b@example.com", domain="example.com",
                         ip=IPv4Address("192.0.2.3"), helo="h")
    assert expand(parse_macro_string("%{L}"), values) == "~jack%26jill%3Dup%20a%2Fb"
    assert expand(parse_macro_string("%{l}"), values) == "~jack&jill=up a/b"


def test_explanation_only_letters_c_r_t() -> None:
    assert macro("%{c} %{r} %{t}", explanation=True, receiver="mx.example.net", now=1234) == (
        "192.0.2.3 mx.example.net 1234")
    for letter in "crt":
        with pytest.raises(SpfSyntaxError):
            parse_macro_string(f"%{{{letter}}}.example.com")


@pytest.mark.parametrize("text", [
    "%", "50%", "%x", "%{", "%{d", "%{}", "%{a}", "%{d0}", "%{d2x}", "%{dr2}", "a b",
    "caf\u00e9", "tab\there", "%{d}%(ir)",
])
def test_malformed_macro_strings_are_syntax_errors(text: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_macro_string(text)


def test_macro_explosion_is_refused_not_built() -> None:
    tokens = parse_macro_string("%{s}" * 2000)
    values = MacroValues(sender="x" * 200 + "@example.com", domain="example.com",
                         ip=IPv4Address("192.0.2.3"), helo="h")
    with pytest.raises(MacroTooLong):
        expand(tokens, values)
    assert len(expand(parse_macro_string("%{s}" * 10), values)) < MAX_EXPANSION


# --- record parsing (§4.5, §4.6, §5, §6) -------------------------------------------------------


@pytest.mark.parametrize(("text", "is_spf"), [
    ("v=spf1", True), ("v=spf1 -all", True), ("V=SpF1 ~all", True),
    ("v=spf10", False), ("v=spf1-all", False), ("spf1 -all", False), (" v=spf1", False),
    ("", False), ("v=DKIM1; k=rsa", False),
])
def test_record_selection_needs_version_then_space_or_end(text: str, is_spf: bool) -> None:
    assert is_spf_record(text) is is_spf


def test_record_terms_are_parsed_with_their_arguments() -> None:
    record = parse_record("v=spf1 ip4:192.0.2.0/24 -ip6:2001:db8::/32  a/28//64 "
                          "mx:mail.%{d2} ~include:_spf.example.net ?exists:%{i}.x.example "
                          "ptr:example.org +all redirect=_spf.example.com exp=why.%{d} foo=bar")
    names = [(d.qualifier, d.name) for d in record.directives]
    assert names == [("+", "ip4"), ("-", "ip6"), ("+", "a"), ("+", "mx"), ("~", "include"),
                     ("?", "exists"), ("+", "ptr"), ("+", "all")]
    ip4, ip6, a = record.directives[:3]
    assert str(ip4.network) == "192.0.2.0/24" and str(ip6.network) == "2001:db8::/32"
    assert (a.domain, a.cidr4, a.cidr6) == (None, 28, 64)
    assert record.directives[3].domain is not None
    assert record.directives[3].domain.text == "mail.%{d2}"
    assert ip6.text == "ip6:2001:db8::/32"  # as written, without the qualifier
    assert record.redirect is not None and record.redirect.text == "_spf.example.com"
    assert record.explanation is not None and record.explanation.text == "why.%{d}"


@pytest.mark.parametrize("text", [
    "v=spf1 -all moo",                      # unknown mechanism, even after all
    "v=spf1 redirect:example.com",          # redirect is a modifier
    "v=spf1 a:foo-bar -all",                # domain-spec without a top label
    "v=spf1 a:example.123",                 # all-numeric top label
    "v=spf1 a:example.-com",                # top label starting with a dash
    "v=spf1 a: -all",                       # empty domain
    "v=spf1 ip4:192.0.2.1/33", "v=spf1 ip4:192.0.2.1/032", "v=spf1 ip4:192.0.2",
    "v=spf1 ip4:192.0.2.1:25", "v=spf1 ip4:192.0.2.1//32", "v=spf1 ip6:::1/129",
    "v=spf1 ip6:::1//64", "v=spf1 ip6", "v=spf1 a/33", "v=spf1 a//129", "v=spf1 ptr/24",
    "v=spf1 include:example.com/24", "v=spf1 exists", "v=spf1 all:foo", "v=spf1 -all.",
    "v=spf1 redirect=a.example.com redirect=b.example.com", "v=spf1 exp=a.com exp=b.com",
    "v=spf1 =foo", "v=spf1 foo=%x", "v=spf1 exp=%{r}.example.com",
    "v=spf1 a:example.com\rptr", "v=spf1 ip4:192.0.2.5\n", "v=spf1 caf\u00e9",
])
def test_syntax_errors_anywhere_in_the_record(text: str) -> None:
    with pytest.raises(SpfSyntaxError):
        parse_record(text)


def test_unknown_modifiers_are_ignored_when_well_formed() -> None:
    record = parse_record("v=spf1 moo.cow-far_out=man:dog/cat default=- -all")
    assert [d.name for d in record.directives] == ["all"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=200))
def test_parser_raises_only_syntax_errors(text: str) -> None:
    try:
        parse_record("v=spf1 " + text)
    except SpfSyntaxError:
        pass


# --- check_host on in-memory DNS -----------------------------------------------------------------

ZONE = {
    "example.org": {"TXT": ["v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:_spf.example.net "
                            "-all exp=why.example.org"]},
    "why.example.org": {"TXT": ["%{i} may not send as %{s} (checked by %{r})"]},
    "_spf.example.net": {"TXT": ["v=spf1 a:out.example.net mx -all"]},
    "out.example.net": {"A": ["198.51.100.7"]},
    "example.net": {"TXT": ["unrelated", "v=spf1 mx ~all"], "MX": [(10, "mx.example.net")]},
    "mx.example.net": {"A": ["203.0.113.5"], "AAAA": ["2001:db8:ffff::5"]},
    "helo.example.com": {"TXT": ["v=spf1 a -all"], "A": ["192.0.2.200"]},
    "timeout.example": {"TIMEOUT": [True]},
}


def zone(**extra: dict[str, list[object]]) -> MemoryResolver:
    return MemoryResolver({**ZONE, **extra})


@pytest.mark.parametrize(("ip", "result", "mechanism"), [
    ("192.0.2.9", "pass", "ip4:192.0.2.0/24"),
    ("::ffff:192.0.2.9", "pass", "ip4:192.0.2.0/24"),  # IPv4-mapped is IPv4 (§5.6)
    ("2001:db8::1", "pass", "ip6:2001:db8::/32"),
    ("198.51.100.7", "pass", "include:_spf.example.net"),
    ("203.0.113.9", "fail", "all"),
])
def test_mail_from_results_and_the_mechanism_that_decided(ip: str, result: str,
                                                          mechanism: str) -> None:
    spf = run(check_mail_from(zone(), ip, "alice@example.org", "helo.example.com"))
    assert (spf.result, spf.mechanism, spf.identity) == (result, mechanism, "mailfrom")
    assert (spf.sender, spf.domain) == ("alice@example.org", "example.org")


@pytest.mark.parametrize(("domain", "ip", "result", "decided_by"), [
    ("example.org", "192.0.2.9", "pass", "ip4:192.0.2.0/24"),
    ("example.org", "198.51.100.7", "pass", "include:_spf.example.net > a:out.example.net"),
    ("example.org", "203.0.113.9", "fail", "-all"),
    ("nest.example", "198.51.100.7", "pass",
     "include:example.org > include:_spf.example.net > a:out.example.net"),
    ("nest.example", "203.0.113.9", "softfail", "~all"),  # the include's -all does not decide
    ("redir.example", "203.0.113.5", "pass", "redirect=example.net > mx"),
    ("redir.example", "192.0.2.1", "softfail", "redirect=example.net > ~all"),
    ("open.example", "192.0.2.1", "neutral", "default"),
])
def test_the_term_that_decided_through_includes_and_redirects(domain: str, ip: str, result: str,
                                                              decided_by: str) -> None:
    resolver = zone(**{"nest.example": {"TXT": ["v=spf1 include:example.org ~all"]},
                       "redir.example": {"TXT": ["v=spf1 redirect=example.net"]},
                       "open.example": {"TXT": ["v=spf1 ip4:10.0.0.1"]}})
    spf = run(check_host(resolver, ip, domain, f"a@{domain}", "h.example"))
    assert (spf.result, spf.decided_by) == (result, decided_by)


def test_fail_carries_the_expanded_explanation() -> None:
    spf = run(check_mail_from(zone(), "203.0.113.9", "<alice@example.org>", "h.example",
                              receiver="mx.example.com"))
    assert spf.result == "fail"
    assert spf.explanation == "203.0.113.9 may not send as alice@example.org (checked by " \
                              "mx.example.com)"
    assert "203.0.113.9" in spf.problem


def test_null_sender_is_checked_as_postmaster_at_the_helo_name() -> None:
    spf = run(check_mail_from(zone(), "192.0.2.200", "<>", "helo.example.com"))
    assert (spf.result, spf.sender, spf.domain) == ("pass", "postmaster@helo.example.com",
                                                    "helo.example.com")
    assert spf.identity == "mailfrom"
    helo = run(check_helo(zone(), "192.0.2.201", "helo.example.com"))
    assert (helo.result, helo.identity, helo.sender) == ("fail", "helo",
                                                         "postmaster@helo.example.com")


def test_mx_matches_the_exchanges_addresses_by_family() -> None:
    assert run(check_mail_from(zone(), "203.0.113.5", "b@example.net", "h")).result == "pass"
    assert run(check_mail_from(zone(), "2001:db8:ffff::5", "b@example.net", "h")).result == "pass"
    assert run(check_mail_from(zone(), "203.0.113.6", "b@example.net", "h")).result == "softfail"


@pytest.mark.parametrize(("domain", "result"), [
    ("nowhere.example", "none"),            # NXDOMAIN
    ("mx.example.net", "none"),             # no TXT record
    ("timeout.example", "temperror"),
    ("a" * 64 + ".example", "none"),        # §4.3: malformed domains have no policy
    ("empty..example", "none"),
    ("localhost", "none"),                  # not a multi-label name
    ("[192.0.2.1]", "none"),
])
def test_domains_without_a_policy(domain: str, result: str) -> None:
    spf = run(check_host(zone(), "192.0.2.1", domain, f"x@{domain}", "h"))
    assert spf.result == result
    assert spf.problem


def test_two_spf_records_are_a_permerror() -> None:
    resolver = zone(**{"two.example": {"TXT": ["v=spf1 -all", "V=SPF1 +all"]}})
    spf = run(check_mail_from(resolver, "192.0.2.1", "a@two.example", "h"))
    assert spf.result == "permerror" and "2 SPF records" in spf.problem


def test_temporary_dns_errors_in_mechanisms_are_temperror() -> None:
    resolver = zone(**{"t.example": {"TXT": ["v=spf1 a:timeout.example -all"]}})
    assert run(check_mail_from(resolver, "192.0.2.1", "a@t.example", "h")).result == "temperror"


# --- hostile input: bounded time, never an exception -----------------------------------------------


def chain(length: int, *, loop: bool = False) -> MemoryResolver:
    records: dict[str, dict[str, list[object]]] = {}
    for i in range(length):
        target = 0 if loop and i == length - 1 else i + 1
        records[f"i{i}.example"] = {"TXT": [f"v=spf1 include:i{target}.example -all"]}
    records[f"i{length}.example"] = {"TXT": ["v=spf1 +all"]}
    return MemoryResolver(records)


@pytest.mark.parametrize(("resolver", "what"), [
    (chain(50), "50-include chain"),
    (chain(2, loop=True), "include loop"),
    (MemoryResolver({"r.example": {"TXT": ["v=spf1 redirect=r.example"]}}), "redirect loop"),
])
def test_include_chains_and_loops_stop_at_the_lookup_limit(resolver: MemoryResolver,
                                                           what: str) -> None:
    domain = "r.example" if "redirect" in what else "i0.example"
    started = time.monotonic()
    spf = run(check_mail_from(resolver, "192.0.2.1", f"a@{domain}", "h"))
    assert spf.result == "permerror", what
    assert "more than 10" in spf.problem
    assert sum(resolver.queries.values()) <= 11  # the first record + 10 terms
    assert time.monotonic() - started < BOUND


def test_at_most_two_void_lookups() -> None:
    names = " ".join(f"a:void{i}.example" for i in range(3))
    resolver = MemoryResolver({"v.example": {"TXT": [f"v=spf1 {names} -all"]}})
    spf = run(check_mail_from(resolver, "192.0.2.1", "a@v.example", "h"))
    assert spf.result == "permerror" and "nothing" in spf.problem


def test_a_100_kb_txt_record_is_handled_in_bounded_time() -> None:
    huge_valid = "v=spf1 " + " ".join(f"ip4:10.{i // 256 % 256}.{i % 256}.0/24"
                                      for i in range(6000)) + " -all"
    largest = "v=spf1 " + " ".join(f"ip4:10.0.{i}.0/24" for i in range(256)) + " -all"
    resolver = MemoryResolver({"g.example": {"TXT": ["v=spf1 " + "x" * 100_000]},
                               "big.example": {"TXT": [huge_valid]},
                               "max.example": {"TXT": [largest]},
                               "n.example": {"TXT": ["y" * 100_000]}})
    assert len(huge_valid) > 100_000 and len(largest) < MAX_RECORD_LENGTH
    started = time.monotonic()
    for domain in ("g.example", "big.example"):
        spf = run(check_mail_from(resolver, "10.0.5.1", f"a@{domain}", "h"))
        assert spf.result == "permerror" and "characters long" in spf.problem
    assert run(check_mail_from(resolver, "10.0.255.1", "a@max.example", "h")).result == "pass"
    assert run(check_mail_from(resolver, "10.1.0.1", "a@max.example", "h")).result == "fail"
    assert run(check_mail_from(resolver, "192.0.2.1", "a@n.example", "h")).result == "none"
    assert time.monotonic() - started < BOUND


def test_macro_explosion_in_a_record_is_a_permerror() -> None:
    record = "v=spf1 exists:" + "%{s}" * 2000 + ".example -all"  # under MAX_RECORD_LENGTH
    resolver = MemoryResolver({"m.example": {"TXT": [record]}})
    spf = run(check_mail_from(resolver, "192.0.2.1", "x" * 64 + "@m.example", "h"))
    assert spf.result == "permerror" and "longer than" in spf.problem


def test_long_expanded_names_lose_labels_on_the_left() -> None:
    # §7.3: %{s} repeated makes a name over 253 characters; the right-hand labels are kept.
    resolver = MemoryResolver({"l.example": {"TXT": ["v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.x.l."
                                                     "example -all"]}})
    local = "a" * 60
    kept = ".".join([local] * 3) + ".x.l.example"
    resolver.records[kept] = {"A": ["127.0.0.2"]}
    assert run(check_mail_from(resolver, "192.0.2.1", f"{local}@l.example", "h")).result == "pass"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([
    "a", "mx", "ptr", "all", "-all", "~all", "?all", "include:x.example", "include:%{d}",
    "exists:%{i}.%{d}", "a:%{l}.x.example", "ip4:192.0.2.0/24", "ip6:::/0", "redirect=x.example",
    "exp=%{d}", "mx/24//64", "ptr:%{o}", "%{", "a:", "v=spf1", "x=%{p}", "exists:%{p}.example",
]), max_size=12), st.sampled_from(["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"]))
def test_any_record_gives_a_result_and_never_an_exception(terms: list[str], ip: str) -> None:
    resolver = MemoryResolver({
        "x.example": {"TXT": ["v=spf1 " + " ".join(terms)], "A": ["192.0.2.1"],
                      "AAAA": ["2001:db8::1"], "MX": [(0, "x.example")]},
        ip_address("192.0.2.1").reverse_pointer: {"PTR": ["x.example"]},
    })
    spf = run(check_mail_from(resolver, ip, "a@x.example", "x.example"))
    assert spf.result in CODES


# --- Received-SPF (§9.1) ---------------------------------------------------------------------------


def test_received_spf_for_a_pass() -> None:
    spf = run(check_mail_from(zone(), "192.0.2.9", "alice@example.org", "helo.example.com"))
    header = received_spf_header(spf, "192.0.2.9", "helo.example.com", "mx.example.com")
    assert header == (
        "pass (mx.example.com: domain of alice@example.org designates 192.0.2.9 as permitted "
        "sender) client-ip=192.0.2.9; envelope-from=\"alice@example.org\"; helo=helo.example.com; "
        "receiver=mx.example.com; mechanism=\"ip4:192.0.2.0/24\"; identity=mailfrom")


def test_received_spf_for_an_error_names_the_problem_and_quotes_odd_values() -> None:
    resolver = MemoryResolver({"bad.example": {"TXT": ["v=spf1 moo"]}})
    spf = run(check_mail_from(resolver, IPv6Address("2001:db8::1"), 'we"ird@bad.example',
                              "[192.0.2.1]"))
    header = received_spf_header(spf, IPv6Address("2001:db8::1"), "[192.0.2.1]", "mx.example")
    assert header.startswith("permerror (mx.example: permanent error in processing domain of "
                             "bad.example: bad SPF record at bad.example: unknown mechanism")
    assert 'envelope-from="we\\"ird@bad.example"; helo="[192.0.2.1]"' in header
    assert 'problem="bad SPF record at bad.example' in header
    assert "\r" not in header and "\n" not in header


def test_address_literals_and_addresses_are_not_looked_up() -> None:
    resolver = zone()
    for helo in ("[192.0.2.1]", "192.0.2.1", "[IPv6:2001:db8::1]"):
        assert run(check_helo(resolver, "192.0.2.1", helo)).result == "none"
    assert not resolver.queries


def test_internationalised_domains_are_looked_up_as_a_labels() -> None:
    resolver = MemoryResolver({"xn--bcher-kva.example": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]}})
    spf = run(check_mail_from(resolver, "192.0.2.1", "b\u00fccher@b\u00fccher.example", "h"))
    assert (spf.result, spf.domain) == ("pass", "xn--bcher-kva.example")


def test_names_the_resolver_cannot_take_do_not_match() -> None:
    # A backslash is an escape in a DNS name's text form; such a name is not asked at all.
    resolver = MemoryResolver({"e.example": {"TXT": ["v=spf1 exists:%{l}.e.example -all"]}})
    spf = run(check_mail_from(resolver, "192.0.2.1", "a\\1@e.example", "h"))
    assert spf.result == "fail"
    assert not any("\\" in name for name, _ in resolver.queries)


def test_ptr_names_are_confirmed_once_per_check() -> None:
    reverse = ip_address("192.0.2.1").reverse_pointer
    resolver = MemoryResolver({
        "p.example": {"TXT": ["v=spf1 ptr:other.example exists:%{p}.ok.p.example ptr -all"]},
        reverse: {"PTR": ["mail.p.example"]},
        "mail.p.example": {"A": ["192.0.2.1"]},
        "mail.p.example.ok.p.example": {"A": ["127.0.0.2"]},
    })
    spf = run(check_mail_from(resolver, "192.0.2.1", "a@p.example", "h"))
    assert (spf.result, spf.mechanism) == ("pass", "exists:%{p}.ok.p.example")
    assert resolver.queries[(reverse, "PTR")] == 1
    assert resolver.queries[("mail.p.example", "A")] == 1


@pytest.mark.parametrize("pad", range(200, 245))
def test_received_spf_comment_cut_at_a_parenthesis_stays_closed(pad: int) -> None:
    # The 300-character cut used to come after escaping: "\(" cut to "\" escaped the ")".
    spf = SpfResult("permerror", "mailfrom", "a@x.example", "x.example", problem="p" * pad + "(" * 60)
    header = received_spf_header(spf, "192.0.2.1", "x.example", "mx.example")
    comment = header[header.index("(") + 1:header.index(") client-ip=")]
    assert not comment.replace("\\\\", "").endswith("\\"), comment
    assert comment.replace("\\\\", "").replace("\\(", "").count("(") == 0


class SlowResolver(MemoryResolver):
    """Every TXT answer takes `delay` seconds, as from a distant, slow name server."""

    def __init__(self, records: dict[str, dict[str, list[object]]], delay: float) -> None:
        super().__init__(records)
        self.delay = delay

    async def txt(self, name: str) -> DnsAnswer[str]:
        await asyncio.sleep(self.delay)
        return await super().txt(name)


def test_a_check_that_takes_too_long_is_a_temperror() -> None:
    # §4.6.4: limit the whole evaluation ("at least 20 seconds"), then temperror. Ten includes
    # each answered just inside the resolver's timeout used to hold the session ~10 timeouts.
    chain = {f"s{i}.example": {"TXT": [f"v=spf1 include:s{i + 1}.example -all"]} for i in range(9)}
    chain["s9.example"] = {"TXT": ["v=spf1 +all"]}
    slow = SlowResolver(chain, 0.3)
    started = time.monotonic()
    spf = run(check_host(slow, "192.0.2.1", "s0.example", "a@s0.example", "h.example", time_limit=1.0))
    assert spf.result == "temperror" and "took more than 1 s" in spf.problem
    assert time.monotonic() - started < BOUND
    assert run(check_host(slow, "192.0.2.1", "s0.example", "a@s0.example", "h.example")).result == "pass"


@pytest.mark.parametrize("local", ["a\x01b\x7fc", "j\u00fcrgen", "x" * 64])
def test_the_explanation_is_one_printable_ascii_line_a_reply_can_carry(local: str) -> None:
    # exp= text expands the sender's local-part and HELO name, and ends up in an SMTP reply:
    # controls and non-ASCII used to come through, and "%{s}" x 50 made an 8 KB "line".
    resolver = zone(**{"why.example.org": {"TXT": ["%{l} " + "%{s}" * 50]}})
    spf = run(check_mail_from(resolver, "203.0.113.1", f"{local}@example.org", "h\x02.example"))
    shown = "".join(c if " " <= c <= "~" else "?" for c in local)
    assert spf.result == "fail" and spf.explanation.startswith(shown + " " + shown + "@example.org")
    assert all(" " <= c <= "~" for c in spf.explanation) and len(spf.explanation) <= 400


@given(st.text(max_size=60))
def test_received_spf_comment_text_is_cleaned_like_the_character_by_character_reference(text: str) -> None:
    from postoffice.mailauth.spf import _printable_ascii
    assert _printable_ascii(text) == "".join(c if c.isprintable() and c.isascii() else "?" for c in text)
