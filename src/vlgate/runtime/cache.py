"""Opt-in on-disk response cache (``create(..., cache=True)``).

The key is a SHA-256 over what decides the answer: the endpoint, the model, every message (the
text, and the SHA-256 of each encoded image's bytes), the parameters and the JSON schema. API keys
and headers are never part of the key or the stored value. Values are stored as JSON text (no
pickle), in a ``diskcache`` directory: SQLite in WAL mode, safe to share between processes, with a
size cap (oldest stored entries go first) and an optional time to live.

Example:
    >>> cache = ResponseCache(tmp_dir, ttl=3600)            # doctest: +SKIP
    >>> cache.put(key, Completion("A red square."))         # doctest: +SKIP
    >>> cache.get(key).text                                 # doctest: +SKIP
    'A red square.'
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..providers.base import ChatRequest, Completion, Task, Usage

if TYPE_CHECKING:
    from ..registry import Route

__all__ = ["ResponseCache", "default_cache_dir", "open_cache", "request_key"]

# Bump when the key material or the stored value changes shape.
_FORMAT = 1

_INSTALL_HINT = "the response cache needs diskcache: pip install 'vlgate[cache]'"


def default_cache_dir() -> Path:
    """``<user cache dir>/vlgate/responses`` (platformdirs)."""
    try:
        import platformdirs
    except ImportError as exc:  # pragma: no cover - installed with the cache extra
        raise ConfigError(_INSTALL_HINT) from exc
    return Path(platformdirs.user_cache_dir("vlgate")) / "responses"


def request_key(
    request: ChatRequest, route: Route, api_base: str | None, task: Task | None = None
) -> str:
    """The cache key of one request: a hex SHA-256, with no secret in its input.

    ``task`` keeps a provider's native caption/detect/point calls apart from a query with the
    same text (a plain query keys as before).

    Example:
        >>> from vlgate.registry import resolve
        >>> req = ChatRequest(model="gpt-4o-mini", messages=())
        >>> len(request_key(req, resolve("openai/gpt-4o-mini"), None))
        64
    """
    messages: list[Any] = []
    for msg in request.messages:
        parts: list[Any] = []
        for part in msg.parts:
            if isinstance(part, str):
                parts.append(["text", part])
            else:
                parts.append(["image", hashlib.sha256(part.data).hexdigest(), part.mime])
        messages.append([msg.role, parts])
    material = {
        "v": _FORMAT,
        "provider": route.provider.name,
        "api_base": api_base,
        "model": request.model,
        "messages": messages,
        "params": request.params,
        "json_schema": request.json_schema,
        "json_mode": request.json_mode,
        "task": None if task is None or task.name == "query" else task.name,
        "target": None if task is None else task.target,
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """A directory of cached answers, shared by every model and process that opens it."""

    def __init__(
        self, directory: str | Path, *, ttl: float | None = None, max_bytes: int = 1 << 30
    ) -> None:
        try:
            import diskcache
        except ImportError as exc:
            raise ConfigError(_INSTALL_HINT) from exc
        self.directory = Path(directory)
        self.ttl = ttl
        # "least-recently-stored" keeps reads read-only (LRU would write on every hit).
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=max_bytes,
            eviction_policy="least-recently-stored",
        )

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r}, ttl={self.ttl!r})"

    def get(self, key: str) -> Completion | None:
        """The stored answer for ``key`` (usage zero: a hit costs nothing), or ``None``."""
        raw = self._cache.get(key)
        if not isinstance(raw, str):
            return None
        try:
            data = json.loads(raw)
            return Completion(
                text=data["text"],
                usage=Usage(),
                model=data.get("model"),
                finish_reason=data.get("finish_reason"),
                dropped_params=tuple(data.get("dropped_params", ())),
            )
        except (ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer's text and metadata (never usage, headers or keys)."""
        value = json.dumps(
            {
                "text": completion.text,
                "model": completion.model,
                "finish_reason": completion.finish_reason,
                "dropped_params": list(completion.dropped_params),
            }
        )
        self._cache.set(key, value, expire=self.ttl)

    def clear(self) -> None:
        """Remove every entry."""
        self._cache.clear()

    def volume(self) -> int:
        """Bytes used on disk."""
        return int(self._cache.volume())

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()


_open: dict[tuple[str, float | None, int], ResponseCache] = {}
_open_lock = threading.Lock()


def open_cache(
    setting: bool | str | Path | None, *, ttl: float | None, max_bytes: int
) -> ResponseCache | None:
    """The cache a model config asks for (``True``: the default directory), shared per process."""
    if setting is None or setting is False:
        return None
    directory = default_cache_dir() if setting is True else Path(setting).expanduser()
    ident = (str(directory.resolve()), ttl, max_bytes)
    with _open_lock:
        cache = _open.get(ident)
        if cache is None:
            cache = _open[ident] = ResponseCache(directory, ttl=ttl, max_bytes=max_bytes)
        return cache
