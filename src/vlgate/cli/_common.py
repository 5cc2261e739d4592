"""Shared pieces of the commands: options, error -> exit code mapping, logging, output."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer

from ..errors import ConfigError, ImageError, VlgateError, redact
from ..registry import LITELLM_SERVICES, PROVIDERS
from .settings import load_settings, model_options, setting_sources

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from ..model import VlModel

# --- exit codes -------------------------------------------------------------------------------

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# First match wins: caller mistakes are usage errors (2), anything the provider did is 1.
_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ConfigError, EXIT_USAGE),
    (ImageError, EXIT_USAGE),
    (VlgateError, EXIT_FAILED),
)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 a provider or an item failed; 2 usage, config or image error; "
    "130 interrupted."
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ends a command."""
    for kind, code in _EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return EXIT_FAILED


# C0 controls but tab and newline, DEL, C1 controls (an 8-bit CSI is one), and the bidi
# overrides that make text display in another order than it reads.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# The same for JSON text, where C0 is already escaped: what json.dumps(ensure_ascii=False) keeps.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def terminal_safe(text: object) -> str:
    """``text`` fit for a terminal: control characters (escape sequences, carriage returns,
    C1 codes, bidi overrides) removed, newlines and tabs kept, lone surrogates shown as
    ``\\udXXX`` escapes instead of failing to encode.

    Model answers and labels are attacker-controlled text (prompt injection through what the
    camera sees); printed raw they could retitle the terminal or rewrite earlier lines.

    Example:
        >>> terminal_safe("A cat.\\x1b]0;pwned\\x07\\nOn a mat.\\ud800")
        'A cat.]0;pwned\\nOn a mat.\\\\ud800'
    """
    cleaned = _UNSAFE.sub("", str(text))
    return cleaned.encode("utf-8", "backslashreplace").decode("utf-8")


def echo(text: object = "", *, err: bool = False) -> None:
    """Print one line through :func:`terminal_safe`: the CLI's only way to print text."""
    typer.echo(terminal_safe(text), err=err)


def one_line(text: str) -> str:
    """``text`` on one line, with anything shaped like a key masked."""
    return redact(" ".join(str(text).split()), *known_secrets())


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a vlgate error into one line on stderr and its exit code; no traceback."""
    try:
        yield
    except VlgateError as exc:
        message = str(exc) or type(exc).__name__
        if "allow_private_urls" in message:  # the library's wording; name the CLI's switches
            message += "; on the command line: --allow-private-urls or VLGATE_ALLOW_PRIVATE_URLS=1"
        fail(message, exit_code_for(exc))
    except OSError as exc:  # a file the command was told to read or write
        where = f" ({exc.filename})" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", EXIT_USAGE)
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


# --- secrets and logging ----------------------------------------------------------------------


def _key_env_names() -> list[str]:
    names: set[str] = set()
    for spec in PROVIDERS.values():
        names.update(spec.key_env)
    for route in LITELLM_SERVICES.values():
        names.update(route.key_env)
    names.update({"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
    return sorted(names)


KEY_ENV_NAMES: list[str] = _key_env_names()
"""Every env var vlgate may read a key from (names only)."""

_extra_secrets: set[str] = set()


def known_secrets() -> list[str]:
    """Key values this process knows of, to mask wherever text is printed."""
    values = {os.environ.get(n, "") for n in KEY_ENV_NAMES} | _extra_secrets
    return [v for v in values if len(v) >= 4]


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, *known_secrets())
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_handler: logging.Handler | None = None


_verbosity = 0


def setup_logging(verbose: int, quiet: bool) -> None:
    """``-v``: vlgate's debug log on stderr; ``-q``: errors only. Keys are masked."""
    global _handler
    logger = logging.getLogger("vlgate")
    if _handler is not None:
        logger.removeHandler(_handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    logger.addHandler(handler)
    _handler = handler
    # -v: a line per request, retry, fallback and answer (the LogHook build_model adds);
    # -vv: with each request's shape, and vlgate's debug log.
    global _verbosity
    _verbosity = 0 if quiet else verbose
    level = (
        logging.ERROR
        if quiet
        else logging.DEBUG
        if verbose >= 2
        else logging.INFO
        if verbose
        else logging.WARNING
    )
    logger.setLevel(level)
    logger.propagate = False


# --- options shared by the commands -----------------------------------------------------------

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help="Model string, e.g. openai/gpt-4o-mini. \\[env: VLGATE_MODEL]"
    ),
]
ApiBaseOpt = Annotated[
    str | None,
    typer.Option(
        "--api-base", help="Endpoint override (proxy, local server). \\[env: VLGATE_API_BASE]"
    ),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds per attempt. \\[env: VLGATE_TIMEOUT]")
]
RetriesOpt = Annotated[
    int | None,
    typer.Option("--max-retries", help="Retries on 429/5xx/timeouts. \\[env: VLGATE_MAX_RETRIES]"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
AllowPrivateFlag = Annotated[
    bool,
    typer.Option(
        "--allow-private-urls",
        help="Fetch image URLs on private or loopback addresses (a camera on the LAN). "
        "\\[env: VLGATE_ALLOW_PRIVATE_URLS]",
    ),
]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
]


@dataclass(frozen=True)
class ModelFlags:
    """The model options every one-image command takes, as one value (see :func:`model_flags`).

    Example:
        >>> ModelFlags(model="openai/gpt-4o-mini").overrides()["allow_private_urls"] is None
        True
    """

    model: str | None = None
    api_base: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    allow_private_urls: bool = False

    def overrides(self) -> dict[str, Any]:
        """The settings these flags set (``None``: not given, a lower layer decides)."""
        # --allow-private-urls not given: the env var or config file decides.
        return {**asdict(self), "allow_private_urls": True if self.allow_private_urls else None}


def _model_flags_holder(
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    timeout: TimeoutOpt = None,
    max_retries: RetriesOpt = None,
    allow_private_urls: AllowPrivateFlag = False,
) -> None:  # pragma: no cover - only its signature is read
    """The options :func:`model_flags` puts in a command's signature, in this order."""


_MODEL_FLAG_PARAMS = tuple(
    inspect.signature(_model_flags_holder, eval_str=True).parameters.values()
)


def model_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the model options (``-m``, ``--api-base``, ``--timeout``,
    ``--max-retries``, ``--allow-private-urls``) where it declares ``flags: ModelFlags``; it
    receives them as one :class:`ModelFlags`. One declaration instead of a copy per command.

    Example:
        >>> @model_flags
        ... def cmd(image: str, flags: ModelFlags) -> None: ...
        >>> list(inspect.signature(cmd).parameters)[:3]
        ['image', 'model', 'api_base']
    """
    signature = inspect.signature(command, eval_str=True)
    names = [p.name for p in _MODEL_FLAG_PARAMS]
    params: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        params.extend(_MODEL_FLAG_PARAMS if param.name == "flags" else (param,))

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        flags = ModelFlags(**{name: kwargs.pop(name) for name in names})
        command(**kwargs, flags=flags)

    # inspect.signature (and so typer) stops at __signature__ instead of following __wrapped__.
    cast(Any, wrapper).__signature__ = signature.replace(parameters=params)
    return wrapper


def build_model(overrides: Mapping[str, Any]) -> VlModel:
    """Settings (flag > env > file > default) -> a model. Raises ConfigError on bad setup."""
    from ..model import create

    settings = load_settings(overrides)
    if settings.get("api_key"):
        _extra_secrets.add(str(settings["api_key"]))
    log = logging.getLogger("vlgate")
    if log.isEnabledFor(logging.DEBUG):
        origin = setting_sources(overrides)
        shown = ", ".join(
            f"{k}={'***' if k == 'api_key' else v} ({origin.get(k, 'default')})"
            for k, v in settings.items()
            if v is not None
        )
        log.debug("settings: %s", shown)
    from ..runtime.hooks import LogHook

    hooks = [LogHook(detail=_verbosity >= 2)] if _verbosity else []
    return create(**model_options(settings), hooks=hooks)


def json_safe(text: str) -> str:
    """JSON text with what could steer a terminal (DEL, C1, bidi overrides) and lone surrogates
    written as ``\\uXXXX`` escapes: the same JSON value, safe to print and to encode.

    Example:
        >>> json_safe('"a\\x9bb"')
        '"a\\\\u009bb"'
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def dropped_note(dropped: int) -> str:
    """``"2 unreadable entries dropped"`` (empty for 0): what a grounding result could not read.

    Example:
        >>> dropped_note(1)
        '1 unreadable entry dropped'
    """
    if not dropped:
        return ""
    return f"{dropped} unreadable entr{'y' if dropped == 1 else 'ies'} dropped"


def print_json(data: Any) -> None:
    """JSON on stdout, one document."""
    typer.echo(json_safe(json.dumps(data, ensure_ascii=False, indent=2, default=str)))


PIPED_WIDTH = 1000
"""Console width when output is not a terminal: tables are never cut to 80 columns."""


def stderr_bar(
    enabled: bool, force: bool, columns: Callable[[Any], Sequence[Any]], *, refresh: float
) -> tuple[Progress | None, bool]:
    """``(bar, plain)``: a rich progress bar on stderr when it is a terminal (spinner, the task's
    description, the bar, done/total, then ``columns(rich.progress)``); otherwise no bar, and
    ``plain`` is ``force`` (``--progress`` into a file or a pipe: the caller prints a plain line
    now and then). ``(None, False)`` when not ``enabled``.

    Example:
        >>> stderr_bar(False, False, lambda rp: [rp.BarColumn()], refresh=4)
        (None, False)
    """
    if not enabled:
        return None, False
    con = console(stderr=True)
    if not con.is_terminal:
        return None, force
    import rich.progress

    rp = rich.progress
    bar = rp.Progress(
        rp.SpinnerColumn(),
        rp.TextColumn("[bold]{task.description}"),
        rp.BarColumn(),
        rp.MofNCompleteColumn(),
        *columns(rp),
        console=con,
        refresh_per_second=refresh,
    )
    return bar, False


def console(
    *, stderr: bool = False, force: bool | None = None, wide_when_piped: bool = False
) -> Console:
    """A rich console; colour is off when not a terminal or when NO_COLOR is set.

    ``wide_when_piped``: when not a terminal (a pipe, a file), lay out as wide as the content
    needs instead of rich's 80-column default, so nothing is truncated.
    """
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR"))
    con = Console(stderr=stderr, force_terminal=force, no_color=no_color, highlight=False)
    if wide_when_piped and not con.is_terminal:
        con.width = PIPED_WIDTH
    return con
