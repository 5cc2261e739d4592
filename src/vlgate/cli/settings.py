"""Settings for the command line: a config file, environment variables and flags.

Precedence, highest first: **flag > environment > config file > default**.

Each setting is a :class:`~vlgate.ModelConfig` field: its default and its bounds are read from
that field, so the CLI and the library cannot drift apart.

Config files (all optional, merged; a later one in this list overrides an earlier one):

1. the user config file: ``<user config dir>/vlgate/vlgate.toml`` (platformdirs when installed,
   else ``~/.config/vlgate/vlgate.toml``),
2. ``[tool.vlgate]`` in ``./pyproject.toml``,
3. ``./vlgate.toml`` (top-level keys, or a ``[vlgate]`` table),

or exactly one file named by ``VLGATE_CONFIG`` (then the three above are not read).

Environment variables: ``VLGATE_MODEL``, ``VLGATE_API_BASE``, ``VLGATE_MAX_CONCURRENCY``,
``VLGATE_MAX_RETRIES``, ``VLGATE_TIMEOUT``, ``VLGATE_FAMILY``, ``VLGATE_ALLOW_PRIVATE_URLS``,
``VLGATE_CONFIG``.

API keys are never read from ``VLGATE_*`` variables: the provider's own variable
(``OPENAI_API_KEY``, ...) applies. A config file may hold ``api_key`` only when written there
explicitly; vlgate warns when such a file is readable by other users.

Example:
    >>> s = load_settings({"model": "openai/gpt-4o"}, env={}, files=[])
    >>> s["model"], s["max_retries"], s["max_concurrency"]  # None: the provider's default
    ('openai/gpt-4o', 3, None)
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULTS",
    "ENV_VARS",
    "SPECS",
    "SettingSpec",
    "config_files",
    "load_settings",
    "model_options",
    "setting_sources",
]

log = logging.getLogger("vlgate")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _private_urls(value: Any) -> bool | list[str]:
    """``true``/``false`` (also 1/0, yes/no), or allowed networks: a list or a comma list."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        value = value.split(",")
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        nets = [v.strip() for v in value if v.strip()]
        if nets:
            return nets
    raise ValueError("expected true/false or a list of networks such as 192.168.1.0/24")


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its default, how a raw value is checked, and where it may come from."""

    name: str
    default: Any
    parse: Callable[[Any], Any]
    env: str | None
    help: str
    in_model: bool = True
    """Passed to :func:`vlgate.create` as a config option."""


def _bounds(metadata: Iterable[Any]) -> list[tuple[str, float]]:
    """(kind, limit) pairs from a pydantic field's constraints (``ge``, ``gt``, ``le``, ``lt``)."""
    found = []
    for item in metadata:
        for kind in ("ge", "gt", "le", "lt"):
            limit = getattr(item, kind, None)
            if isinstance(limit, int | float):
                found.append((kind, float(limit)))
    return found


_MESSAGES = {
    "ge": lambda n: "must be 0 or more" if n == 0 else f"must be at least {n:g}",
    "gt": lambda n: f"must be greater than {n:g}",
    "le": lambda n: f"must be at most {n:g}",
    "lt": lambda n: f"must be less than {n:g}",
}
_HOLDS = {
    "ge": lambda v, n: v >= n,
    "gt": lambda v, n: v > n,
    "le": lambda v, n: v <= n,
    "lt": lambda v, n: v < n,
}


def _parser(name: str) -> Callable[[Any], Any]:
    """The check of one :class:`~vlgate.ModelConfig` field, for values from files, env, flags:
    the field's type (int, float or a non-empty string) and its bounds, with short messages."""
    info = ModelConfig.model_fields[name]
    types = set(typing.get_args(info.annotation)) or {info.annotation}
    bounds = _bounds(info.metadata)

    def parse(value: Any) -> Any:
        if int in types or float in types:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            number: float = int(value) if int in types else float(value)
            for kind, limit in bounds:
                if not _HOLDS[kind](number, limit):
                    raise ValueError(_MESSAGES[kind](limit))
            return number
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a non-empty string")
        return value.strip()

    return parse


def _spec(name: str, env: str | None, help: str, default: Any = None) -> SettingSpec:
    """A setting backed by the :class:`~vlgate.ModelConfig` field of the same name: its default
    (unless the CLI needs one where the library has none) and its validation come from there."""
    field = ModelConfig.model_fields[name]
    if default is None and not field.is_required():
        default = field.get_default(call_default_factory=True)
    return SettingSpec(name, default, _parser(name), env, help)


_SPECS: tuple[SettingSpec, ...] = (
    # The library needs a model; the CLI has a default one.
    _spec("model", "VLGATE_MODEL", "model string", default="openai/gpt-4o-mini"),
    _spec("api_base", "VLGATE_API_BASE", "endpoint override"),
    _spec("max_concurrency", "VLGATE_MAX_CONCURRENCY", "requests in flight"),
    _spec("max_retries", "VLGATE_MAX_RETRIES", "retries per request"),
    _spec("timeout", "VLGATE_TIMEOUT", "seconds per attempt"),
    _spec("family", "VLGATE_FAMILY", "model family override"),
    # A bool or a list of networks in ModelConfig: its own parser (true/false, or networks).
    SettingSpec(
        "allow_private_urls",
        ModelConfig.model_fields["allow_private_urls"].default,
        _private_urls,
        "VLGATE_ALLOW_PRIVATE_URLS",
        "fetch image URLs on private/loopback addresses (true, or allowed networks)",
    ),
    # No env var on purpose: keys live in the provider's own variable (OPENAI_API_KEY, ...).
    _spec("api_key", None, "API key (file or flag only)"),
)
SPECS: dict[str, SettingSpec] = {s.name: s for s in _SPECS}

DEFAULTS: dict[str, Any] = {s.name: s.default for s in _SPECS}
"""The value of every setting when nothing sets it (``ModelConfig``'s own defaults)."""

ENV_VARS: dict[str, str] = {s.name: s.env for s in _SPECS if s.env}
"""Setting name -> the environment variable that sets it."""

CONFIG_ENV = "VLGATE_CONFIG"


def _user_config_file() -> Path:
    try:
        from platformdirs import user_config_dir
    except ImportError:
        return Path.home() / ".config" / "vlgate" / "vlgate.toml"
    return Path(user_config_dir("vlgate", appauthor=False)) / "vlgate.toml"


def config_files(
    cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> list[tuple[Path, str | None]]:
    """The config files that would be read, lowest precedence first, as ``(path, table)``.

    ``table`` is the TOML table holding vlgate's keys (``"tool.vlgate"`` for pyproject.toml) or
    ``None`` for a vlgate.toml. Only files that exist are listed.

    Example:
        >>> config_files(Path("/nonexistent"), env={})  # doctest: +SKIP
        []
    """
    env = os.environ if env is None else env
    explicit = env.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV} names {path}, which is not a file")
        table = "tool.vlgate" if path.name == "pyproject.toml" else None
        return [(path, table)]
    cwd = Path.cwd() if cwd is None else cwd
    candidates: list[tuple[Path, str | None]] = [
        (_user_config_file(), None),
        (cwd / "pyproject.toml", "tool.vlgate"),
        (cwd / "vlgate.toml", None),
    ]
    return [(p, t) for p, t in candidates if p.is_file()]


def _read_file(path: Path, table: str | None) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data: Any = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if table:
        for part in table.split("."):
            data = data.get(part, {}) if isinstance(data, dict) else {}
    elif isinstance(data.get("vlgate"), dict):
        data = data["vlgate"]
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings")
    unknown = sorted(set(data) - set(SPECS))
    if unknown:
        known = ", ".join(SPECS)
        raise ConfigError(f"config file {path}: unknown setting {unknown[0]!r}; known: {known}")
    if "api_key" in data and _readable_by_others(path):
        log.warning("config file %s holds an api_key and is readable by other users", path)
    return data


def _readable_by_others(path: Path) -> bool:
    if os.name != "posix":
        return False
    try:
        return bool(path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH))
    except OSError:
        return False


def _check(name: str, value: Any, origin: str) -> Any:
    try:
        return SPECS[name].parse(value)
    except (TypeError, ValueError) as exc:
        # Never echo a key's value back, even a malformed one.
        shown = "***" if name == "api_key" else repr(value)
        raise ConfigError(f"{origin}: invalid {name} {shown}: {exc}") from None


def _layers(
    cli_overrides: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
    files: Iterable[tuple[Path, str | None]] | None,
    cwd: Path | None,
) -> list[tuple[str, dict[str, Any]]]:
    """Every source with the values it sets, lowest precedence first."""
    env = os.environ if env is None else env
    file_list = config_files(cwd, env) if files is None else list(files)
    layers: list[tuple[str, dict[str, Any]]] = [("default", dict(DEFAULTS))]
    for path, table in file_list:
        data = _read_file(path, table)
        layers.append((str(path), {k: _check(k, v, str(path)) for k, v in data.items()}))
    from_env = {
        name: _check(name, env[var], f"${var}")
        for name, var in ENV_VARS.items()
        if env.get(var, "").strip()
    }
    layers.append(("env", from_env))
    overrides = dict(cli_overrides or {})
    unknown = sorted(set(overrides) - set(SPECS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")
    layers.append(
        ("flag", {k: _check(k, v, "option") for k, v in overrides.items() if v is not None})
    )
    return layers


def load_settings(
    cli_overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    files: Iterable[tuple[Path, str | None]] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Resolve every setting: flag > env > config file > default.

    ``cli_overrides`` values that are ``None`` mean "not given". ``env`` defaults to
    ``os.environ``; ``files`` to :func:`config_files`.

    Raises:
        ConfigError: an unknown key in a config file, or a value of the wrong type.

    Example:
        >>> load_settings({"timeout": 5}, env={"VLGATE_TIMEOUT": "9"}, files=[])["timeout"]
        5.0
    """
    merged: dict[str, Any] = {}
    for _, values in _layers(cli_overrides, env, files, cwd):
        merged.update(values)
    return merged


def setting_sources(
    cli_overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    files: Iterable[tuple[Path, str | None]] | None = None,
    cwd: Path | None = None,
) -> dict[str, str]:
    """Where each setting's value comes from: ``default``, ``env``, ``flag`` or a file path.

    Example:
        >>> setting_sources(env={"VLGATE_MODEL": "openai/gpt-4o"}, files=[])["model"]
        'env'
    """
    origin: dict[str, str] = {}
    for source, values in _layers(cli_overrides, env, files, cwd):
        for name in values:
            origin[name] = source
    return origin


def model_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that are :func:`vlgate.create` options, without unset ones.

    Example:
        >>> opts = model_options(load_settings(env={}, files=[]))
        >>> opts["model"], "api_base" in opts
        ('openai/gpt-4o-mini', False)
    """
    return {
        name: settings[name]
        for name, spec in SPECS.items()
        if spec.in_model and settings.get(name) is not None
    }
