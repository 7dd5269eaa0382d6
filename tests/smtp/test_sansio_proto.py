"""The protocol core stays sans-IO: no sockets, TLS, event loop or store under smtp/proto/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import postoffice.smtp.proto
from postoffice.proto import linebuffer

FORBIDDEN = (
    "asyncio", "socket", "ssl", "selectors", "select", "threading", "subprocess", "uvloop",
    "postoffice.store",
)  # fmt: skip
ALLOWED_POSTOFFICE = ("postoffice.smtp.proto", "postoffice.proto.linebuffer")

PROTO_DIR = Path(postoffice.smtp.proto.__file__).parent
SOURCES = [*sorted(PROTO_DIR.glob("*.py")), Path(linebuffer.__file__)]


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
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            modules.append("__import__")  # dynamic imports would dodge this test
    return modules


def test_sources_found() -> None:
    names = {path.name for path in SOURCES}
    assert {"server.py", "grammar.py", "dotstuff.py", "events.py", "linebuffer.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_io_imports(path: Path) -> None:
    for module in imported_modules(path):
        assert module != "__import__", path
        assert not any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN), (
            f"{path.name} imports {module}"
        )
        if module.startswith("postoffice"):
            assert module.startswith(ALLOWED_POSTOFFICE), f"{path.name} imports {module}"


def test_all_is_honest() -> None:
    for name in postoffice.smtp.proto.__all__:
        assert hasattr(postoffice.smtp.proto, name), name
