"""Benchmark parse_message on a generated mbox; prints one line, milliseconds per message.

Usage: .venv/bin/python tests/message/bench_parse.py [MBOX] [COUNT]

Without MBOX it generates COUNT (default 2000) realistic messages with the shared generator
(../shared/reference/gen_mbox.py, seed 1) into a temporary file. Messages are normalised to CRLF
first, as the store does before parsing. Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import mailbox
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postoffice.message.mime import parse_message

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO.parent / "shared" / "reference" / "gen_mbox.py"


def load(path: Path) -> list[bytes]:
    box = mailbox.mbox(path, create=False)
    try:
        return [
            box.get_bytes(key).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            for key in box.iterkeys()
        ]
    finally:
        box.close()


def measure(messages: list[bytes], rounds: int = 3) -> float:
    """Best of `rounds` passes, in milliseconds per message."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in messages:
            parse_message(raw)
        best = min(best, time.perf_counter() - start)
    return best * 1000 / len(messages)


def main(argv: list[str]) -> None:
    count = int(argv[2]) if len(argv) > 2 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        if len(argv) > 1:
            path = Path(argv[1])
        else:
            path = Path(tmp) / "bench.mbox"
            subprocess.run(
                [sys.executable, str(GENERATOR), str(path), str(count), "1"],
                check=True, stdout=subprocess.DEVNULL,
            )
        messages = load(path)
    size = sum(map(len, messages)) / len(messages)
    ms = measure(messages)
    print(f"parse_message: {ms:.3f} ms/msg ({len(messages)} messages, {size / 1024:.1f} KiB avg)")


if __name__ == "__main__":
    main(sys.argv)
