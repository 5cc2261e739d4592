"""The typer application: global options and the command groups.

Two small adjustments to typer's help, applied by the command classes below:

* prose paragraphs of a docstring are joined into one line each, so the terminal wraps them at
  word boundaries (rich markup mode otherwise keeps the source's line breaks, which then break
  mid-sentence at 80 columns); indented paragraphs (examples) are kept as written;
* flags (``--json``, ``--progress/--no-progress``, ``-v``) show no value placeholder.

And the global options ``-v/--verbose`` and ``-q/--quiet`` are accepted after the subcommand too
(``vlgate query ... -v`` as well as ``vlgate -v query ...``).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from . import ask, batch, gateway, info, serve
from ._common import EXIT_CODES_HELP, echo, setup_logging

GLOBAL_PANEL = "Global options"

HELP = f"""Ask any vision-language model about images: captions, questions, boxes, points, batches.

Settings: flag > VLGATE_* env var > config file (./vlgate.toml, \\[tool.vlgate] in \
./pyproject.toml, the user config file) > default. Keys come from the provider's own env var \
(OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) and are never printed.

Start with: vlgate demo   (no key, no network). Every command takes --help.

{EXIT_CODES_HELP}
"""


def reflow(text: str | None) -> str | None:
    """Join the lines of each prose paragraph; keep indented paragraphs (examples) verbatim.

    Example:
        >>> reflow("One.\\n\\nA long\\nsentence.\\n\\n    vlgate demo\\n    vlgate models")
        'One.\\n\\nA long sentence.\\n\\n    vlgate demo\\n    vlgate models'
    """
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    out = []
    for para in paragraphs:
        lines = para.split("\n")
        if all(line.startswith((" ", "\b")) for line in lines if line.strip()):
            out.append(para)
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def _no_flag_metavar(params: list[Any]) -> list[Any]:
    for param in params:
        if (getattr(param, "is_flag", False) or getattr(param, "count", False)) and getattr(
            param, "metavar", ""
        ) is None:
            param.metavar = ""  # typer shows <bool> / <int> otherwise, as if a value followed
    return params


# --- the global options, shared by the root and every subcommand -------------------------------


def _apply(ctx: typer.Context, verbose: int | None = None, quiet: bool | None = None) -> None:
    meta = ctx.find_root().meta
    if verbose:
        meta["vlgate.verbose"] = meta.get("vlgate.verbose", 0) + verbose
    if quiet:
        meta["vlgate.quiet"] = True
    setup_logging(meta.get("vlgate.verbose", 0), bool(meta.get("vlgate.quiet", False)))


def _on_verbose(ctx: typer.Context, value: int) -> int:
    if not ctx.resilient_parsing:
        _apply(ctx, verbose=value)
    return value


def _on_quiet(ctx: typer.Context, value: bool) -> bool:
    if not ctx.resilient_parsing:
        _apply(ctx, quiet=value)
    return value


VerboseOpt = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        callback=_on_verbose,
        help="Debug log on stderr (keys masked). Before or after the command.",
        rich_help_panel=GLOBAL_PANEL,
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        callback=_on_quiet,
        help="Errors only: no progress bar, no warnings.",
        rich_help_panel=GLOBAL_PANEL,
    ),
]


def _global_params() -> list[Any]:
    """Fresh copies of the -v/-q options, not passed to the command function."""
    holder = typer.Typer(add_completion=False)

    @holder.command()
    def _holder(verbose: VerboseOpt = 0, quiet: QuietOpt = False) -> None:  # pragma: no cover
        pass

    params = list(typer.main.get_command(holder).params)
    for param in params:
        param.expose_value = False
    return params


class VlCommand(TyperCommand):
    """A subcommand: reflowed help, flags without placeholders, global options accepted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)
        self.params.extend(_global_params())

    def get_params(self, ctx: Any) -> list[Any]:
        return _no_flag_metavar(super().get_params(ctx))


class VlGroup(TyperGroup):
    """The ``vlgate`` group: reflowed help, flags without placeholders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _no_flag_metavar(super().get_params(ctx))


class VlSubGroup(VlGroup):
    """A command group under ``vlgate`` (``vlgate gateway``): global options accepted too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_params())


app = typer.Typer(
    name="vlgate",
    help=HELP,
    cls=VlGroup,
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
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    pass


for _module in (ask, batch, info, serve):
    _module.register(app, VlCommand)
gateway.register(app, VlCommand, VlSubGroup)
