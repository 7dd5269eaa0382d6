"""CPU per DNS question of postoffice's resolver (mailauth/resolver.py), answered by Unbound on
loopback (the test suite's NSD + Unbound, tests/dns_server.py), cached and uncached.

    .venv/bin/python bench/dns_resolver.py [--queries 2000] [--hits 100000]

Uncached: a resolver with its cache off asks Unbound every time (Unbound answers from its own
cache, warmed first, so the cost measured is ours: building the query, the socket round trip,
parsing, typing the answer), one question at a time and 50 at a time. Cached: the same questions
answered from our cache. CPU is this process's (user + system) divided by the questions; Unbound's
and NSD's own CPU is not counted. Prints one line, e.g.

    dns_resolver: uncached 120 us CPU/query (0.25 ms wall, 2000 one at a time) | 50 at a time 95 us CPU/query | cached 2.1 us CPU/query (100000) | loop uvloop
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from argparse import ArgumentParser
from collections.abc import Awaitable, Callable
from pathlib import Path

from benchkit import REPO, log, new_loop_factory, run_async, run_main

sys.path.insert(0, str(REPO / "tests"))  # the loopback DNS servers the tests use

from dns_server import DnsServers
from postoffice.mailauth.resolver import DnsResolver

CONCURRENCY = 50


def cpu() -> float:
    return time.process_time()


async def measure(count: int, ask: Callable[[int], Awaitable[object]], concurrency: int = 1) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per question for `count` questions, `concurrency` at a time."""
    started_cpu, started = cpu(), time.perf_counter()
    if concurrency == 1:  # no gather: its task per question would cost more than a cache hit
        for i in range(count):
            await ask(i)
    else:
        for first in range(0, count, concurrency):
            await asyncio.gather(*(ask(i) for i in range(first, min(count, first + concurrency))))
    return (cpu() - started_cpu) / count, (time.perf_counter() - started) / count


async def run(servers: DnsServers, queries: int, hits: int) -> str:
    uncached = DnsResolver((servers.address,), timeout=5.0, cache_entries=0)
    names = [f"bench-{i}.example.test" for i in range(queries)]  # NXDOMAIN, each its own name

    async def one_name(_i: int) -> object:
        return await uncached.txt("sel._domainkey.example.test")

    async def distinct(i: int) -> object:
        return await uncached.a(names[i])

    await measure(queries, distinct, CONCURRENCY)  # Unbound learns every name first
    await measure(200, one_name)
    cpu_one, wall_one = await measure(queries, one_name)
    cpu_many, _ = await measure(queries, distinct, CONCURRENCY)
    assert uncached.stats.failures == 0 and uncached.stats.coalesced == 0, uncached.stats

    cached = DnsResolver((servers.address,), timeout=5.0, cache_entries=10_000)
    await cached.txt("sel._domainkey.example.test")

    async def hit(_i: int) -> object:
        return await cached.txt("sel._domainkey.example.test")

    cpu_hit, _ = await measure(hits, hit)
    assert cached.stats.queries == 1, cached.stats
    loop = "uvloop" if new_loop_factory() else "asyncio"
    log(f"uncached: {uncached.stats}; cached: {cached.stats}")
    return (f"dns_resolver: uncached {cpu_one * 1e6:.0f} us CPU/query ({wall_one * 1e3:.2f} ms wall,"
            f" {queries} one at a time) | {CONCURRENCY} at a time {cpu_many * 1e6:.0f} us CPU/query"
            f" | cached {cpu_hit * 1e6:.1f} us CPU/query ({hits}) | loop {loop}")


def main() -> int:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000, help="uncached questions per measurement")
    parser.add_argument("--hits", type=int, default=100_000, help="cached questions")
    args = parser.parse_args()
    missing = [p for p in ("nsd", "unbound") if not (shutil.which(p) or shutil.which(p, path="/usr/sbin"))]
    if missing:
        print(f"dns_resolver: unavailable: {', '.join(missing)} not installed (Debian packages {' '.join(missing)})")
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="postoffice-bench-dns-"))
    servers = DnsServers(workdir)
    try:
        servers.start()
        log(f"NSD on 127.0.0.1:{servers.nsd_port}, Unbound on {servers.nameserver}")
        print(run_async(lambda: run(servers, args.queries, args.hits)), flush=True)
    finally:
        servers.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main, "dns_resolver")
