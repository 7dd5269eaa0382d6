"""The one error a bad Sieve script raises: `SieveError`, with the line and column to blame.

RFC 5228 §2.10.6 splits errors in two: a script that does not parse or validate is refused
before it runs (`compile_script` raises `SieveError`), and an error while running is recorded
in `SieveResult.errors` and ends in the implicit keep (`run_script` never raises).
"""
from __future__ import annotations


class SieveError(Exception):
    """A script the compiler refuses. str() is "line L, column C: message" (1-based)."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


class SieveRuntimeError(Exception):
    """Raised inside the interpreter only; `run_script` turns it into an implicit keep.
    str() is "line L, column C: message", the position of the command or test that failed."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.message = message


class SieveCpuLimit(SieveRuntimeError):
    """The run used up `SieveLimits.cpu_seconds` (`SieveResult.out_of_time`)."""
