"""DKIM costs: signing, verifying and canonicalising, ours against dkimpy (when installed).

    .venv/bin/python bench/dkim_costs.py [--repeat 200] [--body-mb 1]

Prints one line: milliseconds per signature (RSA-2048, Ed25519), per verification of a small
message (key lookup from memory, so crypto and parsing only), the relaxed body canonicalisation
rate in MB/s, and the verification of a --body-mb message, each against dkimpy on the same
input. Ratios, not times, are the target, since this machine is shared: exit status 0 when we
sign RSA-2048 at least 5x and verify a 1 MB message at least 3x faster than dkimpy, 1 when not,
2 without dkimpy (no verdict).
"""
from __future__ import annotations

import asyncio
import statistics
import sys
import time
from argparse import ArgumentParser
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "mailauth"))

from benchkit import log, run_main
from memory_resolver import MemoryResolver

from postoffice.mailauth.dkim import sign_message, verify_dkim
from postoffice.mailauth.dkim_canon import canonicalize_body
from postoffice.mailauth.dkim_crypto import SigningKey
from postoffice.mailauth.dkimkeys import dkim_public_record, generate_dkim_key

HEAD = (b"From: Alice <alice@bench.test>\r\nTo: bob@example.net\r\nSubject: Quarterly numbers\r\n"
        b"Date: Sun, 06 Dec 2026 11:00:00 +0000\r\nMessage-ID: <q@bench.test>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
LINE = b"The numbers for this quarter  are in the attached sheet; see  the totals.\t \r\n"


def per_call(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds per call over `repeat` calls (in 5 batches)."""
    batch = max(1, repeat // 5)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - start) / batch)
    return statistics.median(times)


def per_verify(resolver: MemoryResolver, message: bytes, repeat: int) -> float:
    """Median seconds per verify_dkim() of `message`, all on one event loop (5 batches)."""
    async def batches() -> list[float]:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(max(1, repeat // 5)):
                [result] = await verify_dkim(resolver, message)
                assert result.result == "pass", result
            times.append((time.perf_counter() - start) / max(1, repeat // 5))
        return times
    return statistics.median(asyncio.run(batches()))


def main() -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--body-mb", type=float, default=1.0)
    args = parser.parse_args()
    try:
        import dkim as dkimpy
    except ImportError:
        dkimpy = None
        log("dkimpy is not installed (pip install dkimpy pynacl): no reference numbers")

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        records = {}
        keys: dict[str, SigningKey] = {}
        for kind in ("rsa", "ed25519"):
            path = Path(tmp) / f"{kind}.pem"
            generate_dkim_key(path, kind=kind)  # type: ignore[arg-type]
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey)
            keys[kind] = key
            records[f"{kind}._domainkey.bench.test"] = dkim_public_record(path)
    resolver = MemoryResolver({name: {"TXT": [value]} for name, value in records.items()})
    small = HEAD + LINE * 40
    big = HEAD + LINE * int(args.body_mb * 1_000_000 / len(LINE))

    sign = {kind: per_call(lambda k=kind: sign_message(small, "bench.test", k, keys[k]), args.repeat)
            for kind in keys}
    signed = {kind: sign_message(small, "bench.test", kind, keys[kind]) + small for kind in keys}
    verify = {kind: per_verify(resolver, signed[kind], args.repeat) for kind in keys}
    canon = per_call(lambda: canonicalize_body("relaxed", big), 20)
    big_signed = sign_message(big, "bench.test", "rsa", keys["rsa"]) + big
    big_verify = per_verify(resolver, big_signed, 20)
    line = (f"dkim: sign rsa-2048 {sign['rsa'] * 1e3:.2f} ms ed25519 {sign['ed25519'] * 1e3:.2f} ms"
            f" | verify rsa {verify['rsa'] * 1e3:.2f} ms ed25519 {verify['ed25519'] * 1e3:.2f} ms"
            f" | relaxed body {len(big) / canon / 1e6:.0f} MB/s"
            f" | verify {len(big) / 1e6:.1f} MB {big_verify * 1e3:.1f} ms")
    if dkimpy is None:
        print(line.replace("dkim:", "dkim_costs:", 1) + " | dkimpy not installed: no verdict")
        return 2
    pem = keys["rsa"].private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return records.get(name.decode().rstrip("."), "").encode()

    ref_sign = per_call(lambda: dkimpy.sign(small, b"rsa", b"bench.test", pem,
                                            canonicalize=(b"relaxed", b"relaxed")), 20)
    ref_big = per_call(lambda: dkimpy.verify(big_signed, dnsfunc=dns), 5)
    assert dkimpy.verify(big_signed, dnsfunc=dns)
    sign_ratio, verify_ratio = ref_sign / sign["rsa"], ref_big / big_verify
    line += (f" | dkimpy: sign rsa-2048 {ref_sign * 1e3:.2f} ms, verify {len(big) / 1e6:.1f} MB "
             f"{ref_big * 1e3:.1f} ms | vs dkimpy: sign {sign_ratio:.1f}x, big verify "
             f"{verify_ratio:.1f}x")
    ok = sign_ratio >= 5.0 and verify_ratio >= 3.0
    print(line.replace("dkim:", "dkim_costs:", 1)
          + f" | target sign >=5x, big verify >=3x dkimpy: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    run_main(main, "dkim_costs")
