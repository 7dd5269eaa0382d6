"""The IMAP protocol core stays sans-IO: no sockets, TLS, event loop or store under imap/proto/."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import postoffice.imap.proto

FORBIDDEN = (
    "asyncio", "socket", "ssl", "selectors", "select", "threading", "subprocess", "uvloop",
    "postoffice.store", "postoffice.imap.commands", "postoffice.imap.snapshot",
)  # fmt: skip
PROTO_DIR = Path(postoffice.imap.proto.__file__).parent
SOURCES = sorted(PROTO_DIR.glob("*.py"))
MINE = (
    "parser", "commands", "events", "grammar", "tokens", "responses", "sequence_set",
    "search_keys", "fetch_items", "utf7",
)  # fmt: skip


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the package
                continue
            assert node.module is not None
            modules.append(node.module)
            modules += [f"{node.module}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__") or (
            isinstance(node, ast.Attribute) and node.attr == "import_module"
        ):
            modules.append("__import__")  # dynamic imports would dodge this test
    return modules


def test_sources_found() -> None:
    assert {f"{name}.py" for name in MINE} <= {path.name for path in SOURCES}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    for module in imported_modules(path):
        assert module != "__import__", f"{path.name} imports dynamically"
        assert not any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN), (
            f"{path.name} imports {module}"
        )


@pytest.mark.parametrize("name", MINE)
def test_all_is_honest(name: str) -> None:
    module = importlib.import_module(f"postoffice.imap.proto.{name}")
    for exported in getattr(module, "__all__", []):
        assert hasattr(module, exported), f"{name}.{exported}"
