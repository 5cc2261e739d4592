"""The typer application: global options and the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from . import ask, batch, gateway, info, serve
from ._common import EXIT_CODES_HELP, echo, setup_logging

HELP = f"""Ask any vision-language model about images: captions, questions, boxes, points, batches.

Settings: flag > VLGATE_* env var > config file (./vlgate.toml, \\[tool.vlgate] in \
./pyproject.toml, the user config file) > default. Keys come from the provider's own env var \
(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) and are never printed.

Start with: vlgate demo   (no key, no network)

{EXIT_CODES_HELP}
"""

app = typer.Typer(
    name="vlgate",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        echo(f"vlgate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Debug log on stderr (keys masked).")
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors only: no progress bar, no warnings.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    setup_logging(verbose, quiet)


for _module in (ask, batch, gateway, info, serve):
    _module.register(app)
