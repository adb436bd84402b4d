"""Shared console helpers: one rich console, one-line errors, the services for a command."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from cwn.config import Settings
from cwn.wiring import Services, build


class _Console(Console):
    """A console that reads `COLUMNS` when it prints, not once at import: a script (or a
    test runner) that sets it per command gets tables as wide as it asked for."""

    @property
    def size(self) -> ConsoleDimensions:
        base = Console.size.fget(self)  # type: ignore[attr-defined]
        cols = os.environ.get("COLUMNS", "")
        return ConsoleDimensions(int(cols), base.height) if cols.isdigit() else base

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """A one-line error, then exit: never a traceback for a user mistake."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def services() -> Services:
    try:
        return build(Settings())
    except Exception as exc:  # configuration or database unreachable
        fail(f"cannot open the cwn store: {exc.__class__.__name__}: {exc}".splitlines()[0])
