"""Shared console helpers: one rich console, one-line errors, the services for a command."""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from cwn.config import Settings
from cwn.wiring import Services, build

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """A one-line error, then exit: never a traceback for a user mistake."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    sys.exit(code)


def services() -> Services:
    try:
        return build(Settings())
    except Exception as exc:  # configuration or database unreachable
        fail(f"cannot open the cwn store: {exc.__class__.__name__}: {exc}".splitlines()[0])
