"""`mailauth.results`: the Authentication-Results field body (RFC 8601) stays one well-formed
field whatever text the checks put in it (unit level, no I/O)."""
from __future__ import annotations

import pytest

from postoffice.mailauth.results import AuthenticationResults, DkimResult, IprevResult, SpfResult


def well_formed(value: str) -> bool:
    """Every comment and quoted string closed, no line break but the folds the renderer makes,
    no control character (RFC 5322 §3.2.2-§3.2.4)."""
    unfolded = value.replace("\r\n\t", " ")
    if any(c < " " or c == "\x7f" for c in unfolded):
        return False
    depth, quoted, i = 0, False, 0
    while i < len(unfolded):
        c = unfolded[i]
        if c == "\\" and (quoted or depth):
            i += 2
            continue
        if quoted:
            quoted = c != '"'
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                return False
            depth -= 1
        elif c == '"' and not depth:
            quoted = True
        i += 1
    return depth == 0 and not quoted


@pytest.mark.parametrize("pad", range(190, 205))
def test_a_long_problem_is_cut_without_leaving_its_comment_open(pad: int) -> None:
    # The cut used to come after escaping: a "(" at the cut left "\" before the closing ")".
    for char in "()\\":
        dkim = DkimResult("fail", "example.org", "s", problem="x" * pad + char * 20)
        value = AuthenticationResults("mx.example", dkim=(dkim,)).header_value()
        assert well_formed(value), value
        assert value.endswith("header.d=example.org header.s=s")


@pytest.mark.parametrize("text", ["a\r\nX-Injected: yes@example.org", "nul\x00@example.org",
                                  "del\x7f@example.org", "bad\udcff@example.org", 'q"uo\\te@x.org'])
def test_control_characters_in_values_and_comments_cannot_break_the_field(text: str) -> None:
    found = AuthenticationResults(
        "mx.example",
        spf=SpfResult("fail", "mailfrom", text, "example.org", problem=text),
        dkim=(DkimResult("pass", "example.org", "s", identity=text, problem=text),),
        iprev=IprevResult("pass", "192.0.2.1", name=text))
    value = found.header_value()
    assert well_formed(value), value
    value.encode("utf-8")  # no lone surrogate: the field can be written out
