"""A LiteLLM Proxy as the fleet's gateway: its config from vlgate model strings, and what an
alias behind it really is.

Ten robots should not each hold provider keys and their own rate limits. The LiteLLM Proxy holds
them in one place; robots ask it by alias (``litellm_proxy/<alias>``). An alias alone tells a
client nothing about the model behind it, so :func:`proxy_config` writes each alias's vlgate
family and service into the proxy's ``model_info``, and :func:`alias_info` reads them back once
per process, so grounding prompts, coordinate conventions, pre-resize and image limits are those
of the real model.

Example:
    >>> cfg = proxy_config([Alias("robot-vision", "anthropic/claude-sonnet-4-6", rpm=60)])
    >>> entry = cfg["model_list"][0]
    >>> entry["litellm_params"]["model"], entry["litellm_params"]["api_key"]
    ('anthropic/claude-sonnet-4-6', 'os.environ/ANTHROPIC_API_KEY')
    >>> entry["model_info"]["vlgate_family"], entry["model_info"]["vlgate_service"]
    ('claude', 'anthropic')
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, ConnectionError
from .providers._errors import error_for_status
from .registry import gateway_route, resolve

__all__ = ["Alias", "alias_info", "proxy_config", "to_yaml"]


@dataclass(frozen=True)
class Alias:
    """One model the gateway serves under a name of the fleet's choosing.

    Attributes:
        name: the alias robots ask for (``litellm_proxy/<name>``).
        model: the real model, as a vlgate model string (``openai/gpt-4o``, ``qwen/...``).
        api_base: the upstream endpoint, when not the provider's default (vLLM, a proxy).
        rpm, tpm: the gateway's limits for this alias (shared by every robot).
        fallbacks: other aliases the gateway tries when this one fails.
        key_env: the env var holding the upstream key on the gateway's machine (default: the
            provider's own, e.g. ``ANTHROPIC_API_KEY``). Keys are never written literally.
    """

    name: str
    model: str
    api_base: str | None = None
    rpm: int | None = None
    tpm: int | None = None
    fallbacks: tuple[str, ...] = ()
    key_env: str | None = None


def _litellm_params(alias: Alias) -> tuple[dict[str, Any], dict[str, Any]]:
    route = resolve(alias.model)
    prefix = route.provider.litellm_prefix
    if route.provider.name == "litellm":
        model = route.model
        envs = tuple(e for e in route.key_env if e != "LITELLM_API_KEY")
    elif prefix is None:
        raise ConfigError(
            f"{alias.model!r}: the LiteLLM Proxy cannot serve {route.provider.name}/ models"
        )
    else:
        model = f"{prefix}/{route.model}"
        envs = route.key_env
    params: dict[str, Any] = {"model": model}
    # A keyless upstream (vLLM, Ollama) gets no key reference unless the alias names one.
    key_env = alias.key_env or (envs[0] if envs and route.needs_key else None)
    if key_env:
        params["api_key"] = f"os.environ/{key_env}"
    if alias.api_base:
        params["api_base"] = alias.api_base
    if alias.rpm:
        params["rpm"] = alias.rpm
    if alias.tpm:
        params["tpm"] = alias.tpm
    info = {
        "vlgate_model": alias.model,
        "vlgate_family": route.family.name,
        "vlgate_service": route.service.name,
    }
    return params, info


def proxy_config(
    aliases: Sequence[Alias], *, master_key_env: str = "LITELLM_MASTER_KEY"
) -> dict[str, Any]:
    """The LiteLLM Proxy config (as a dict) serving ``aliases``.

    Keys are environment references (``os.environ/NAME``), never values; each alias's vlgate
    family and service ride in its ``model_info``.

    Raises:
        ConfigError: duplicate alias, a fallback naming no alias, or a model the proxy cannot
            serve (``local/``, ``moondream/``).
    """
    names = [a.name for a in aliases]
    if not aliases:
        raise ConfigError("a gateway needs at least one alias (NAME=MODEL)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate alias: {', '.join(dupes)}")
    model_list = []
    fallbacks = []
    for alias in aliases:
        unknown = [f for f in alias.fallbacks if f not in names]
        if unknown:
            raise ConfigError(f"alias {alias.name!r} falls back to unknown {', '.join(unknown)}")
        params, info = _litellm_params(alias)
        model_list.append({"model_name": alias.name, "litellm_params": params, "model_info": info})
        if alias.fallbacks:
            fallbacks.append({alias.name: list(alias.fallbacks)})
    config: dict[str, Any] = {
        "model_list": model_list,
        "general_settings": {"master_key": f"os.environ/{master_key_env}"},
    }
    # Retries are the client's: each robot's vlgate retries with its own policy (honouring
    # Retry-After) and a 429 comes back at once instead of after the router's own backoff.
    router: dict[str, Any] = {"num_retries": 0}
    if any(a.rpm or a.tpm for a in aliases):
        # The router enforces a deployment's rpm/tpm only with pre-call checks on (otherwise
        # they only weigh load balancing); past them the proxy answers 429.
        router["enable_pre_call_checks"] = True
        router["routing_strategy"] = "usage-based-routing-v2"
    if fallbacks:
        router["fallbacks"] = fallbacks
    config["router_settings"] = router
    return config


def to_yaml(data: Any, indent: int = 0) -> str:
    """A small YAML writer for configs of dicts, lists, strings and numbers.

    Strings are written as JSON strings (valid YAML double-quoted scalars), so no value can
    change the document's structure.

    Example:
        >>> print(to_yaml({"model_list": [{"model_name": "a", "rpm": 5}]}), end="")
        model_list:
          - model_name: "a"
            rpm: 5
    """
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict | list) and value:
                lines.append(f"{pad}{_key(key)}:")
                lines.append(to_yaml(value, indent + 1).rstrip("\n"))
            else:
                lines.append(f"{pad}{_key(key)}: {_scalar(value)}")
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict | list) and item:
                body = to_yaml(item, indent + 1).rstrip("\n").split("\n")
                lines.append(f"{pad}- {body[0].lstrip()}")
                lines.extend(body[1:])
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(data)}")
    return "\n".join(lines) + "\n"


def _key(key: Any) -> str:
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) else json.dumps(text)


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value))


# --- clients: what an alias is ----------------------------------------------------------------

_INFO_CACHE: dict[tuple[str, str], tuple[str, str]] = {}
_INFO_LOCK = threading.Lock()


def alias_info(
    api_base: str, alias: str, api_key: str | None, timeout: float = 10.0
) -> tuple[str, str]:
    """``(family, service)`` of the model behind ``alias``, asked of the proxy once per process.

    Reads the proxy's ``/model/info``: the vlgate keys :func:`proxy_config` wrote, else the
    family and service of the real LiteLLM model string.

    Raises:
        ConfigError: the proxy does not serve ``alias``.
        AuthError: the proxy refused the key (another 4xx: :class:`~vlgate.ProviderError`).
        ConnectionError: the proxy could not be reached (pass ``family=`` and ``service=`` to
            start without asking it).
    """
    base = api_base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    with _INFO_LOCK:
        hit = _INFO_CACHE.get((base, alias))
    if hit is not None:
        return hit
    req = urllib.request.Request(base + "/model/info", headers={"Accept": "application/json"})
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read(16 << 20))
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500:  # a bad key (401/403, or the proxy's 400s that mean one)...
            raise error_for_status(
                exc.code,
                exc.read(1 << 16),
                exc.headers,
                provider="litellm_proxy",
                model=alias,
                secrets=(api_key,) if api_key else (),
            ) from None
        raise ConnectionError(
            f"cannot read the LiteLLM Proxy's model info at {base}/model/info: HTTP {exc.code}; "
            "pass family=... and service=... to skip it"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConnectionError(
            f"cannot read the LiteLLM Proxy's model info at {base}/model/info "
            f"({type(exc).__name__}); pass family=... and service=... to skip it"
        ) from None
    found = None
    for entry in data.get("data", []) if isinstance(data, dict) else []:
        if isinstance(entry, dict) and entry.get("model_name") == alias:
            found = entry
            break
    if found is None:
        served = sorted(
            {e.get("model_name", "?") for e in data.get("data", []) if isinstance(e, dict)}
        )
        raise ConfigError(
            f"the LiteLLM Proxy at {base} serves no alias {alias!r} (it serves: "
            f"{', '.join(served) or 'nothing'})"
        )
    info = found.get("model_info") or {}
    real = str((found.get("litellm_params") or {}).get("model", ""))
    family = info.get("vlgate_family")
    service = info.get("vlgate_service")
    if not family or not service:
        route = resolve(f"litellm/{real}") if real else None
        family = family or (route.family.name if route else "generic")
        service = service or (gateway_route(real).service if real else "generic")
    result = (str(family), str(service))
    with _INFO_LOCK:
        _INFO_CACHE[(base, alias)] = result
    return result
