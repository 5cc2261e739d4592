"""The ``vlgate`` command line: a thin shell over the library (parse, call, print).

Needs the ``cli`` extra (typer, rich). Without it, ``main()`` says how to install it.

Example:
    $ vlgate demo
    $ vlgate query photo.jpg "How many people are there?" -m openai/gpt-4o-mini
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

__all__ = ["app", "main"]


def _has_cli_extra() -> bool:
    return (
        importlib.util.find_spec("typer") is not None
        and importlib.util.find_spec("rich") is not None
    )


def __getattr__(name: str) -> Any:
    # Lazy: importing a submodule (vlgate.cli.batchjob) must not import typer.
    if name == "app":
        if not _has_cli_extra():  # pragma: no cover - only without the cli extra
            return None
        from ._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``vlgate`` console script and ``python -m vlgate``."""
    if not _has_cli_extra():  # pragma: no cover - only without the cli extra
        sys.stderr.write("the vlgate command needs its extra: pip install 'vlgate[cli]'\n")
        raise SystemExit(2)
    from ._app import app

    app()
