"""Model configuration: one pydantic model, validated once, keys held as secrets."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .errors import ConfigError
from .registry import Route

__all__ = ["ModelConfig", "resolve_api_base", "resolve_api_key"]


class ModelConfig(BaseModel):
    """Everything a :class:`~vlgate.VlModel` is configured with.

    Unknown options are an error (a typo must not be silently ignored). ``api_key`` is a
    ``SecretStr``: it prints as ``**********`` in reprs, logs and errors.

    Example:
        >>> cfg = ModelConfig(model="openai/gpt-4o-mini", api_key="sk-secret", timeout=30)
        >>> "sk-secret" in repr(cfg)
        False
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    model: str
    """Model string, e.g. ``openai/gpt-4o-mini`` or ``anthropic/claude-sonnet-4-6``."""
    api_key: SecretStr | None = None
    """API key; when unset, read from the provider's env var (named in the error if missing)."""
    api_base: str | None = None
    """Endpoint override (a proxy, a local server, the emulator)."""
    max_concurrency: int | None = Field(default=None, ge=1, le=1024)
    """How many requests one model sends at once (batches, multi-prompt queries); default: the
    provider's (64 for hosted APIs, 4 for Ollama, 1 for an in-process model)."""
    adaptive_concurrency: bool = True
    """Adapt the requests in flight to the provider (AIMD): start at ``initial_concurrency``,
    halve on 429/503/529 (once per round trip), grow back while latency holds and no 429
    arrives, never past ``max_concurrency``. With the default start nothing changes while the
    provider keeps up; under a rate limit far fewer requests fail. ``False``: a fixed limit."""
    initial_concurrency: int | None = Field(default=None, ge=1, le=1024)
    """Where adaptive concurrency starts (default: ``max_concurrency``); lower starts grow by
    one per answer until the first 429 (slow start)."""
    max_retries: int = Field(default=3, ge=0, le=20)
    """Retries after the first attempt for 429, 5xx, timeouts and connection errors."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds allowed for one attempt."""
    backoff_base: float = Field(default=0.5, ge=0)
    """First retry delay in seconds; doubles each attempt, with jitter."""
    backoff_max: float = Field(default=30.0, ge=0)
    """Largest delay between attempts, Retry-After included."""
    auto_resize: tuple[int, int] | None = None
    """Fit every image within (width, height) before sending; coordinates map back exactly."""
    provider_resize: bool = True
    """Pre-resize to exactly what the provider will process, so its own resize is a no-op."""
    family: str | None = None
    """Override the model family (grounding convention), e.g. ``qwen2.5-vl``."""
    service: str | None = None
    """Override the service whose image limits apply, e.g. ``anthropic`` for a gateway alias
    whose real model is Claude (``litellm_proxy/<alias>`` finds both from the proxy itself)."""
    allow_private_urls: bool | list[str] = False
    """Allow image URLs that resolve to private or loopback addresses: ``True``, or a list of
    allowed addresses / networks such as ``["192.168.1.0/24"]``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Default request parameters (temperature, max_tokens, ...); call kwargs override them."""
    extra_headers: dict[str, str] = Field(default_factory=dict)
    """Headers added to every request."""
    caption_prompt: str = "Describe this image in one or two sentences."
    local_options: dict[str, Any] = Field(default_factory=dict)
    """Options for ``local/`` models: ``device``, ``dtype``, ``device_map``,
    ``trust_remote_code``, ``revision``, ``max_new_tokens``, ``processor_kwargs``."""
    fallbacks: list[str | dict[str, Any]] = Field(default_factory=list)
    """Models tried in order when this one fails transiently (rate limit, 5xx, timeout) after
    its retries: model strings, or dicts with ``model``, ``api_key``, ``api_base``."""
    cooldown_after: int = Field(default=3, ge=1)
    """Consecutive failures after which a model is skipped for ``cooldown_seconds``."""
    cooldown_seconds: float = Field(default=30.0, ge=0)
    total_timeout: float | None = Field(default=None, gt=0)
    """Seconds allowed for a whole call, retries and fallbacks included."""
    rpm: int | None = Field(default=None, ge=1)
    """Client-side limit: requests per minute to this model (callers wait for a slot). Each
    fallback has its own (``{"model": ..., "rpm": ...}``); it does not inherit this one."""
    tpm: int | None = Field(default=None, ge=1)
    """Client-side limit: tokens per minute (estimated before sending, corrected after)."""
    cache: bool | str | Path = False
    """Response cache: ``True`` for the user cache dir, or a directory path. Off by default."""
    cache_ttl: float | None = Field(default=None, gt=0)
    """Seconds a cached answer stays valid (``None``: until evicted by ``cache_max_bytes``)."""
    cache_max_bytes: int = Field(default=1 << 30, ge=1 << 20)
    """Size cap of the cache directory; the oldest stored answers are evicted first."""

    @field_validator("auto_resize")
    @classmethod
    def _check_resize(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] < 1 or v[1] < 1):
            raise ValueError("auto_resize must be a positive (width, height)")
        return v

    @classmethod
    def build(cls, **kwargs: Any) -> ModelConfig:
        """Validate ``kwargs`` into a config, raising :class:`~vlgate.ConfigError` on bad input."""
        try:
            return cls(**kwargs)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid model config: {problems}") from None

    def key(self) -> str | None:
        """The configured key in clear text (never log this)."""
        return self.api_key.get_secret_value() if self.api_key else None


def resolve_api_key(config: ModelConfig, route: Route) -> str | None:
    """The key to use: config first, then the route's env vars in order.

    Raises ConfigError, naming the env var, when a hosted provider has no key.
    """
    key = config.key()
    if key:
        return key
    for name in route.key_env:
        value = os.environ.get(name)
        if value:
            return value
    # A server on this machine (Moondream Station, a local OpenAI-compatible server behind
    # LiteLLM's openai/ route) decides for itself; if it wants a key, its 401 is an AuthError.
    needs_key = route.needs_key and not (route.keyless_on_loopback and _is_local(config.api_base))
    if needs_key:
        names = " or ".join(route.key_env) if route.key_env else "api_key"
        raise ConfigError(
            f"no API key for {route.requested or route.model}: set {names} or pass api_key=..."
        )
    return None


def _is_local(url: str | None) -> bool:
    if not url:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_base(config: ModelConfig, route: Route) -> str | None:
    """The endpoint to use: config first, then env vars, then the provider's default."""
    if config.api_base:
        return config.api_base.rstrip("/")
    for name in route.provider.base_url_env:
        value = os.environ.get(name)
        if value:
            return value.rstrip("/")
    if route.provider.needs_base_url and route.provider.base_url is None:
        envs = " or ".join(route.provider.base_url_env)
        raise ConfigError(
            f"{route.provider.name} needs an endpoint: pass api_base=... or set {envs}"
        )
    return route.provider.base_url
