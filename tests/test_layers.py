"""The layering DESIGN §2 promises, checked on the source: sans-IO cores and mail
authentication do no network I/O of their own and import nothing from the network layer."""

from __future__ import annotations

import ast
from pathlib import Path

import postoffice

SRC = Path(postoffice.__file__).parent
# Pure layers: bytes in, values out (or, for mailauth, DNS only through an injected resolver).
PURE = [SRC / "proto", SRC / "smtp" / "proto", SRC / "imap" / "proto", SRC / "pop3" / "proto.py", SRC / "managesieve" / "proto.py",
        SRC / "mailauth", SRC / "setup" / "autoconfig.py", SRC / "transfer" / "imap_client_proto.py"]
NETWORK = ("postoffice.net", "postoffice.app", "socket", "asyncio.streams", "ssl")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources() -> list[Path]:
    return sorted(f for p in PURE for f in ([p] if p.is_file() else p.rglob("*.py")))


def test_pure_layers_import_nothing_from_the_network_layer() -> None:
    sources = _sources()
    assert SRC / "proto" / "linebuffer.py" in sources  # the shared line splitter sits with the cores
    offending = {
        f"{path.relative_to(SRC)}: {name}"
        for path in sources
        for name in _imports(path)
        # mailauth.resolver is the one module allowed to talk to DNS servers (DESIGN §2).
        if any(name == n or name.startswith(n + ".") for n in NETWORK)
        and path.name != "resolver.py"
    }
    assert not offending, sorted(offending)


def test_sieve_does_no_io_and_no_asyncio() -> None:
    """The Sieve interpreter runs in a worker thread at delivery and in ManageSieve's CHECKSCRIPT:
    state reaches it only through SieveEnvironment's callables (issue 17 contract)."""
    forbidden = ("asyncio", "postoffice.store", "postoffice.net", "socket", "sqlite3", "os", "pathlib",
                 "subprocess", "threading.Thread")
    sieve = sorted((SRC / "filtering" / "sieve").rglob("*.py"))
    assert len(sieve) >= 10
    offending = {
        f"{path.relative_to(SRC)}: {name}"
        for path in sieve
        for name in _imports(path)
        if any(name == n or name.startswith(n + ".") for n in forbidden)
    }
    assert not offending, sorted(offending)
    assert not [p for p in sieve if "open(" in p.read_text(encoding="utf-8")]
