"""``vlgate gateway init``: a LiteLLM Proxy config for a fleet, from vlgate model strings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError
from ._common import echo, errors_to_exit

gateway_app = typer.Typer(
    name="gateway",
    help="A LiteLLM Proxy as the fleet's gateway: write its config from vlgate model strings.",
    no_args_is_help=True,
)


def _parse_alias(text: str) -> tuple[str, str, dict[str, str]]:
    """``NAME=MODEL[,rpm=N][,tpm=N][,api_base=URL][,fallback=ALIAS]...``"""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"--alias wants NAME=MODEL[,rpm=N,...]; got {text!r}")
    model, *opts = rest.split(",")
    options: dict[str, str] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep or key not in ("rpm", "tpm", "api_base", "fallback", "key_env"):
            raise ConfigError(
                f"--alias option {opt!r}: use rpm=N, tpm=N, api_base=URL, fallback=ALIAS, "
                "key_env=NAME"
            )
        options[key] = options[key] + "," + value if key == "fallback" and key in options else value
    return name.strip(), model.strip(), options


def init(
    alias: Annotated[
        list[str],
        typer.Option(
            "--alias",
            "-a",
            help="NAME=MODEL[,rpm=N][,tpm=N][,api_base=URL][,fallback=ALIAS][,key_env=VAR]; "
            "repeat for each alias.",
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    master_key_env: Annotated[
        str, typer.Option("--master-key-env", help="Env var holding the proxy's master key.")
    ] = "LITELLM_MASTER_KEY",
) -> None:
    """Write a LiteLLM Proxy config: aliases -> real models, keys as env references.

    Each alias's vlgate family and service go into its model_info, so robots asking
    `litellm_proxy/<alias>` get the real model's grounding, resize and image limits.

    Examples:

        vlgate gateway init -a vision=anthropic/claude-sonnet-4-6,rpm=100 \\
            -o config.yaml

        litellm --config config.yaml --port 4000
    """
    from ..gateway import Alias, proxy_config, to_yaml

    with errors_to_exit():
        aliases = []
        for text in alias:
            name, model, opts = _parse_alias(text)
            try:
                rpm = int(opts["rpm"]) if "rpm" in opts else None
                tpm = int(opts["tpm"]) if "tpm" in opts else None
            except ValueError:
                raise ConfigError(f"--alias {name}: rpm and tpm must be integers") from None
            aliases.append(
                Alias(
                    name=name,
                    model=model,
                    api_base=opts.get("api_base"),
                    rpm=rpm,
                    tpm=tpm,
                    fallbacks=tuple(f for f in opts.get("fallback", "").split(",") if f),
                    key_env=opts.get("key_env"),
                )
            )
        text = to_yaml(proxy_config(aliases, master_key_env=master_key_env))
        if output is None:
            echo(text.rstrip("\n"))
        else:
            output.write_text(text, encoding="utf-8")
            echo(f"wrote {output} ({len(aliases)} aliases); run: litellm --config {output}")


def register(app: typer.Typer, cls: type[Any], group_cls: type[Any]) -> None:
    gateway_app.command("init", cls=cls)(init)
    app.add_typer(gateway_app, cls=group_cls)
