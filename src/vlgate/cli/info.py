"""``vlgate models`` and ``vlgate doctor``: what vlgate knows, and what this machine has."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import time
from dataclasses import fields
from typing import Annotated, Any

import typer

from .. import registry
from ._common import (
    EXIT_FAILED,
    KEY_ENV_NAMES,
    JsonFlag,
    console,
    errors_to_exit,
    print_json,
    terminal_safe,
)
from .settings import config_files, load_settings, setting_sources

# --- models -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _record(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj) if f.name not in skip}


def _limits(service: str) -> dict[str, Any]:
    spec = registry.SERVICES[service]
    return {"service": service, **_record(spec.limits), "source": spec.source}


def provider_names() -> list[str]:
    """Every name ``--provider`` takes: vlgate's providers, then LiteLLM's prefixes."""
    return list(dict.fromkeys([*registry.PROVIDERS, *registry.LITELLM_SERVICES]))


def model_catalog(provider: str | None = None, family: str | None = None) -> dict[str, Any]:
    """Providers (with the image limits of their service), LiteLLM routes and model families,
    straight from :mod:`vlgate.registry`, filtered by name.

    With only ``family`` given, the provider lists are empty (a family is not tied to one
    provider), and with only ``provider``, the family list is: what is printed is what was
    asked for.

    Raises:
        ConfigError: an unknown provider or family name (the message lists the known ones).

    Example:
        >>> model_catalog(family="claude")["families"][0]["grounding"]
        'claude'
    """
    from ..errors import ConfigError

    if provider is not None and provider not in provider_names():
        known = ", ".join(provider_names())
        raise ConfigError(f"unknown provider {provider!r}; known: {known}")
    if family is not None and family not in registry.FAMILIES:
        raise ConfigError(f"unknown family {family!r}; known: {', '.join(registry.FAMILIES)}")
    show_providers = provider is not None or family is None
    show_families = family is not None or provider is None
    providers = [
        {**_record(p, skip=("target",)), "limits": _limits(p.service)}
        for p in registry.PROVIDERS.values()
        if show_providers and provider in (None, p.name)
    ]
    routes = [
        {"prefix": prefix, "key_env": list(r.key_env), "limits": _limits(r.service)}
        for prefix, r in registry.LITELLM_SERVICES.items()
        if show_providers and provider in (None, "litellm", prefix)
    ]
    families = [
        _record(f) for f in registry.FAMILIES.values() if show_families and family in (None, f.name)
    ]
    return {"providers": providers, "litellm_routes": routes, "families": families}


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024 / 1024:g} MB"


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def models(
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Only this provider / LiteLLM prefix.")
    ] = None,
    family: Annotated[str | None, typer.Option("--family", "-f", help="Only this family.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The providers, LiteLLM routes and model families vlgate knows, with their capabilities.

    --provider shows only that provider's rows (a LiteLLM prefix such as anthropic shows its
    route; litellm shows every route), --family only that family; both show both. An unknown
    name exits 2 with the known names. Piped output is never cut to the terminal's width.

    Examples:

        vlgate models

        vlgate models --family qwen2.5-vl --json

        vlgate models --provider anthropic
    """
    from rich.markup import escape
    from rich.table import Table

    with errors_to_exit():
        data = model_catalog(provider, family)
    if as_json:
        print_json(data)
        return
    con = console(wide_when_piped=True)
    if data["providers"] or data["litellm_routes"]:
        table = Table(title="Providers and services (image limits)", show_lines=False)
        for col in ("provider", "key env", "JSON schema", "images/req", "max size", "max side"):
            table.add_column(col, overflow="fold")
        for p in data["providers"]:
            lim = p["limits"]
            table.add_row(
                escape(p["name"]),
                escape(", ".join(p["key_env"]) or "-"),
                "yes" if p["native_json_schema"] else "prompted",
                _dash(lim["max_images"]),
                _fmt_bytes(lim["max_bytes"]),
                _dash(lim["max_side"]),
            )
        for r in data["litellm_routes"]:
            lim = r["limits"]
            table.add_row(
                escape(f"{r['prefix']}/ (litellm)"),
                escape(", ".join(r["key_env"]) or "credential chain"),
                "yes",
                _dash(lim["max_images"]),
                _fmt_bytes(lim["max_bytes"]),
                _dash(lim["max_side"]),
            )
        con.print(table)
    if data["families"]:
        table = Table(title="Model families")
        for col in ("family", "grounding", "resize rule", "JSON schema", "$/Mtok in/out", "notes"):
            table.add_column(col, overflow="fold")
        for f in data["families"]:
            price = f["price_per_mtok"]
            native = f["native_json_schema"]
            table.add_row(
                escape(f["name"]),
                escape(f["grounding"]),
                escape(_dash(f["resize"])),
                "provider" if native is None else ("yes" if native else "prompted"),
                f"{price[0]:g} / {price[1]:g}" if price else "-",
                escape(f["description"]),
            )
        con.print(table)


# --- doctor -----------------------------------------------------------------------------------

EXTRAS: dict[str, str] = {
    "litellm": "litellm",
    "aiohttp": "emulator",
    "typer": "cli",
    "rich": "cli",
    "platformdirs": "cache",
    "torch": "local",
    "transformers": "local",
}
"""Optional module -> the vlgate extra that installs it."""


def _installed(module: str) -> dict[str, Any]:
    # find_spec only locates the module: litellm is never imported here (it is slow and heavy).
    found = importlib.util.find_spec(module) is not None
    version = None
    if found:
        try:
            version = importlib.metadata.version(module)
        except importlib.metadata.PackageNotFoundError:
            version = None
    return {"installed": found, "version": version, "extra": EXTRAS.get(module)}


def _check_endpoint(settings: dict[str, Any], timeout: float) -> dict[str, Any]:
    """GET <api_base>/models for the configured model; status only, never the body."""
    import httpx

    from ..config import ModelConfig, resolve_api_base, resolve_api_key
    from ..errors import ConfigError

    model = settings["model"]
    try:
        route = registry.resolve(model, family=settings.get("family"))
        cfg = ModelConfig.build(
            model=model, api_base=settings.get("api_base"), api_key=settings.get("api_key")
        )
        base = resolve_api_base(cfg, route)
    except ConfigError as exc:
        return {"endpoint": None, "ok": False, "detail": str(exc)}
    if not base:
        return {"endpoint": None, "ok": None, "detail": "no single endpoint (LiteLLM route)"}
    try:
        key = resolve_api_key(cfg, route)
    except ConfigError:
        key = None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = base.rstrip("/") + "/models"
    started = time.perf_counter()
    try:
        response = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return {"endpoint": url, "ok": False, "detail": type(exc).__name__}
    seconds = round(time.perf_counter() - started, 3)
    ok = response.status_code < 400
    return {"endpoint": url, "ok": ok, "status": response.status_code, "seconds": seconds}


def diagnose(check: bool = False, timeout: float = 3.0) -> dict[str, Any]:
    """Installed extras, key env vars (set/missing, never values), config and endpoint health.

    Example:
        >>> sorted(diagnose()["keys"])[:1]                                   # doctest: +SKIP
        ['ALIBABA_API_KEY']
    """
    import sys

    from .. import __version__

    settings = load_settings()
    sources = setting_sources()
    shown = {
        k: ("set" if k == "api_key" and v else v) for k, v in settings.items() if v is not None
    }
    report: dict[str, Any] = {
        "vlgate": __version__,
        "python": sys.version.split()[0],
        "extras": {m: _installed(m) for m in EXTRAS},
        "keys": {n: ("set" if os.environ.get(n) else "missing") for n in KEY_ENV_NAMES},
        "config_files": [str(p) for p, _ in config_files()],
        "settings": shown,
        "setting_sources": sources,
    }
    if check:
        report["endpoint"] = _check_endpoint(settings, timeout)
    return report


def doctor(
    check: Annotated[
        bool, typer.Option("--check", help="Also GET <api_base>/models of the configured model.")
    ] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds for --check.")] = 3.0,
    as_json: JsonFlag = False,
) -> None:
    """Check the installation: extras, API-key variables (set/missing only), config, endpoint.

    Examples:

        vlgate doctor

        vlgate doctor --check --json
    """
    with errors_to_exit():
        report = diagnose(check, timeout)
    if as_json:
        print_json(report)
    else:
        _print_doctor(report)
    endpoint = report.get("endpoint")
    if endpoint is not None and endpoint["ok"] is False:
        raise typer.Exit(EXIT_FAILED)


def _print_doctor(report: dict[str, Any]) -> None:
    from rich.markup import escape

    con = console()
    con.print(f"vlgate {report['vlgate']} on Python {report['python']}")
    con.print("[bold]extras[/bold]")
    for module, info in report["extras"].items():
        state = f"{info['version'] or 'installed'}" if info["installed"] else "missing"
        hint = "" if info["installed"] else f"  (pip install 'vlgate[{info['extra']}]')"
        con.print(f"  {module:<13} {escape(state)}{escape(hint)}")
    con.print("[bold]API keys[/bold] (values never shown)")
    for name, state in report["keys"].items():
        con.print(f"  {name:<22} {state}")
    con.print("[bold]settings[/bold] (flag > env > file > default)")
    files = report["config_files"] or ["none found"]
    con.print(f"  config files: {escape(', '.join(files))}")
    for name, value in report["settings"].items():
        source = report["setting_sources"].get(name, "default")
        con.print(f"  {name:<16} {escape(terminal_safe(value))}  [dim]({escape(source)})[/dim]")
    endpoint = report.get("endpoint")
    if endpoint is not None:
        con.print("[bold]endpoint[/bold]")
        if endpoint.get("status") is not None:
            con.print(
                f"  {escape(str(endpoint['endpoint']))}: HTTP {endpoint['status']} "
                f"in {endpoint['seconds']} s"
            )
        else:
            con.print(
                f"  {escape(str(endpoint.get('endpoint') or '-'))}: "
                f"{escape(terminal_safe(endpoint['detail']))}"
            )


def register(app: typer.Typer, cls: type[Any]) -> None:
    app.command(cls=cls)(models)
    app.command(cls=cls)(doctor)
