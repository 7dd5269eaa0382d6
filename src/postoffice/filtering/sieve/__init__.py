"""Sieve (RFC 5228 and extensions): a pure compiler and interpreter, no I/O, no asyncio.

    script = compile_script('require "fileinto"; if header :contains "subject" "sale" '
                            '{ fileinto "Ads"; }')               # SieveError on a bad script
    result = run_script(script, SieveMessage(raw, envelope_from="a@example.org",
                                             envelope_to="me@example.com"), SieveEnvironment())
    result.actions   # [FileInto(mailbox="Ads", ...)] or [Keep()] (the implicit keep)
    result.errors    # runtime errors: the actions are then just the implicit keep

Modules: lexer (tokens), syntax (tree), signatures (what each command accepts), validator
(checks, compiled `Call` trees), script (compile_script, includes, cache), strings (variables),
matching (comparators, match types), message (header view, editheader), interpreter (core
commands and tests), extensions (vacation, editheader, date, body, environment, spamtest,
duplicate, mailbox), actions (the results), environment (SieveEnvironment, SieveLimits).
docs/sieve.md is the user's guide.
"""
from __future__ import annotations

from postoffice.filtering.sieve import extensions as _extensions  # noqa: F401  (registers commands)
from postoffice.filtering.sieve.actions import (
    Action,
    AddHeader,
    DeleteHeader,
    Discard,
    FileInto,
    Keep,
    Redirect,
    Reject,
    Vacation,
)
from postoffice.filtering.sieve.environment import SieveEnvironment, SieveLimits
from postoffice.filtering.sieve.errors import SieveError
from postoffice.filtering.sieve.interpreter import DuplicateMark, SieveResult, run_script
from postoffice.filtering.sieve.message import SieveMessage
from postoffice.filtering.sieve.script import (
    SieveScript,
    cached_script,
    compile_cached,
    compile_script,
)
from postoffice.filtering.sieve.signatures import CAPABILITIES

__all__ = [
    "CAPABILITIES", "Action", "AddHeader", "DeleteHeader", "Discard", "DuplicateMark",
    "FileInto", "Keep", "Redirect", "Reject", "SieveEnvironment", "SieveError", "SieveLimits",
    "SieveMessage", "SieveResult", "SieveScript", "Vacation", "cached_script", "compile_cached",
    "compile_script", "run_script",
]
