"""How `--help` shows options: a flag (--json, --dev, --help) takes no value, so it shows none.

typer's rich help prints every option's type, `<bool>` for flags too, which reads as if the flag
wanted a value (`--json <bool>`). `install()` makes flags show no type; called once by the app.
"""
from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_original = TyperOption.display_type_rich


def _display_type_rich(self: TyperOption, ctx: Any) -> Any:
    if self.is_flag and not self.count:
        return None
    return _original(self, ctx)


def install() -> None:
    TyperOption.display_type_rich = _display_type_rich  # type: ignore[method-assign]
