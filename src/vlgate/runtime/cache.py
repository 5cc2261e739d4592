"""Opt-in on-disk response cache (``create(..., cache=True)``).

The key is a SHA-256 over everything that decides the answer: the endpoint, the model, every
message (the text, and the SHA-256 of each encoded image's bytes), every request parameter
(``extra_body`` included), the JSON schema, the extra headers (config and call, names
case-folded) and a ``local/`` model's options. The API key is never part of the key or the stored
value, and nothing but the hex key and the answer's JSON is written.

Storage is one SQLite file (WAL mode, safe to share between processes) written and read with the
standard library only: values are JSON text, checked on the way out (a row that is not a JSON
object with a non-empty ``text`` is a miss), so no stored byte can become code (no pickle, no file
references). A file that SQLite cannot read is moved aside and the cache rebuilt empty, with a
:class:`CacheWarning`. A size cap evicts the oldest stored answers; an optional time to live
expires them.

Example:
    >>> cache = ResponseCache(tmp_dir, ttl=3600)            # doctest: +SKIP
    >>> cache.put(key, Completion("A red square."))         # doctest: +SKIP
    >>> cache.get(key).text                                 # doctest: +SKIP
    'A red square.'
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..providers.base import ChatRequest, Completion, Task, Usage

if TYPE_CHECKING:
    from ..registry import Route

__all__ = ["CacheWarning", "ResponseCache", "default_cache_dir", "open_cache", "request_key"]

# Bump when the key material or the stored value changes shape.
_FORMAT = 2
_FILE = "vlgate-responses.sqlite3"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    stored REAL NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS responses_stored ON responses (stored);
CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires);
"""
_EVICT_BATCH = 32
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another process holds the file; not damage


class CacheWarning(RuntimeWarning):
    """The response cache found something wrong (an unreadable file, a failed write) and dealt
    with it: it rebuilt itself empty or served a miss. The answer itself is unaffected."""


def default_cache_dir() -> Path:
    """``<user cache dir>/vlgate/responses`` (platformdirs)."""
    try:
        import platformdirs
    except ImportError as exc:  # pragma: no cover - installed with the cache extra
        raise ConfigError(
            "the response cache needs platformdirs: pip install 'vlgate[cache]'"
        ) from exc
    return Path(platformdirs.user_cache_dir("vlgate")) / "responses"


def request_key(
    request: ChatRequest,
    route: Route,
    api_base: str | None,
    task: Task | None = None,
    *,
    extra_headers: Mapping[str, str] | None = None,
    local_options: Mapping[str, Any] | None = None,
) -> str:
    """The cache key of one request: a hex SHA-256 over everything that changes the answer.

    ``extra_headers`` are the model config's headers (sent with every request, under the
    call's own ``request.extra_headers``); ``local_options`` a ``local/`` model's options.

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
    # Header names are case-insensitive on the wire; the call's headers win, as when sent.
    headers = {k.lower(): v for k, v in (extra_headers or {}).items()}
    headers.update({k.lower(): v for k, v in request.extra_headers.items()})
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
        "headers": sorted(headers.items()),
        "local_options": dict(local_options or {}),
    }
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    """A directory of cached answers, shared by every model and process that opens it.

    Raises :class:`~vlgate.errors.ConfigError` when the directory cannot hold a cache at all;
    a damaged cache file is rebuilt (with a :class:`CacheWarning`) rather than raised.
    """

    def __init__(
        self, directory: str | Path, *, ttl: float | None = None, max_bytes: int = 1 << 30
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / _FILE
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._conn = self._open()

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r}, ttl={self.ttl!r})"

    # -- opening and rebuilding -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != _SCHEMA_VERSION:
                if version != 0:
                    raise sqlite3.DatabaseError(f"unknown cache format {version}")
                # One script, one transaction: processes racing here all end at the same schema.
                conn.executescript(
                    f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={_SCHEMA_VERSION};COMMIT;"
                )
            # The columns vlgate reads must be there with these names, or the file is foreign.
            conn.execute("SELECT key, value, stored, expires FROM responses LIMIT 1").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create cache directory {self.directory}: {exc}") from None
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc):
                raise ConfigError(f"response cache {self.path} is locked: {exc}") from None
            return self._rebuild(exc)

    def _rebuild(self, why: BaseException) -> sqlite3.Connection:
        """Move an unreadable file aside (``*.corrupt``) and start an empty cache."""
        warnings.warn(
            f"response cache {self.path} was unreadable ({why}); moved it aside as "
            f"{_FILE}.corrupt and started an empty cache",
            CacheWarning,
            stacklevel=4,
        )
        with contextlib.suppress(OSError):
            os.replace(self.path, self.path.with_name(_FILE + ".corrupt"))
        for suffix in ("-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(str(self.path) + suffix)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot rebuild response cache {self.path}: {exc}") from None

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """After a failed read or write: rebuild if the file is damaged, else just warn."""
        if _is_busy(exc):
            warnings.warn(f"response cache busy, skipped: {exc}", CacheWarning, stacklevel=4)
            return
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        try:
            self._conn = self._rebuild(exc)
        except ConfigError as err:
            warnings.warn(str(err), CacheWarning, stacklevel=4)

    # -- reading and writing --------------------------------------------------------------------

    def get(self, key: str) -> Completion | None:
        """The stored answer for ``key`` (usage zero: a hit costs nothing), or ``None``.

        Whatever the file holds is checked: anything but a JSON object with a non-empty string
        ``text`` (and well-typed metadata) is a miss.
        """
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT value FROM responses "
                    "WHERE key = ? AND (expires IS NULL OR expires > ?)",
                    (key, time.time()),
                ).fetchone()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return None
        return None if row is None else _completion(row[0])

    def put(self, key: str, completion: Completion) -> None:
        """Store an answer's text and metadata as JSON (never usage, headers or keys)."""
        if not isinstance(completion.text, str) or not completion.text:
            return
        value = json.dumps(
            {
                "text": completion.text,
                "model": completion.model,
                "finish_reason": completion.finish_reason,
                "dropped_params": [str(p) for p in completion.dropped_params],
            },
            ensure_ascii=False,
        )
        now = time.time()
        expires = None if self.ttl is None else now + self.ttl
        with self._lock:
            try:
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "INSERT OR REPLACE INTO responses (key, value, stored, expires) "
                        "VALUES (?, ?, ?, ?)",
                        (key, value, now, expires),
                    )
                    conn.execute(
                        "DELETE FROM responses WHERE expires IS NOT NULL AND expires <= ?", (now,)
                    )
                    while self._used_bytes() > self.max_bytes:
                        gone = conn.execute(
                            "DELETE FROM responses WHERE key IN "
                            "(SELECT key FROM responses ORDER BY stored LIMIT ?)",
                            (_EVICT_BATCH,),
                        ).rowcount
                        if not gone:
                            break
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                self._recover(exc)

    def _used_bytes(self) -> int:
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            try:
                self._conn.execute("DELETE FROM responses")
            except sqlite3.DatabaseError as exc:
                self._recover(exc)

    def volume(self) -> int:
        """Bytes of the cache file in use (free pages left by evictions not counted)."""
        with self._lock:
            try:
                return self._used_bytes()
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return 0

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._conn.execute("SELECT count(*) FROM responses").fetchone()[0])
            except sqlite3.DatabaseError as exc:
                self._recover(exc)
                return 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _completion(raw: object) -> Completion | None:
    """A checked :class:`Completion` from a stored value, or ``None`` for anything malformed."""
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    text, model, finish = data.get("text"), data.get("model"), data.get("finish_reason")
    dropped = data.get("dropped_params", [])
    if not isinstance(text, str) or not text:
        return None
    if not (model is None or isinstance(model, str)):
        return None
    if not (finish is None or isinstance(finish, str)):
        return None
    if not isinstance(dropped, list) or not all(isinstance(p, str) for p in dropped):
        return None
    return Completion(
        text=text,
        usage=Usage(),
        model=model,
        finish_reason=finish,
        dropped_params=tuple(dropped),
    )


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_BUSY
    text = str(exc).lower()
    return "locked" in text or "busy" in text


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
