"""Issue 9 item 7: the response cache stores and trusts only JSON, checks what it reads, rebuilds
itself when damaged, and keys on everything that changes the answer."""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vlgate
from vlgate.providers.base import ChatRequest, Completion, Message
from vlgate.registry import resolve
from vlgate.runtime.cache import CacheWarning, ResponseCache, _completion, request_key
from vlgate.testing import Emulator

from .conftest import png_bytes

SECRET = "sk-cache-hostile-1234567890"
DB = "vlgate-responses.sqlite3"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=SECRET) as e:
        yield e


def make(emu: Emulator, cache: Path, **kw: object) -> vlgate.VlModel:
    return vlgate.create(
        "openai/gpt-4o", api_key=SECRET, api_base=emu.openai_base, cache=cache, **kw
    )


def stored_keys(cache_dir: Path) -> list[str]:
    """The keys in the cache directory, whichever engine wrote them."""
    keys: list[str] = []
    if (cache_dir / DB).exists():
        with sqlite3.connect(cache_dir / DB) as conn:
            keys += [k for (k,) in conn.execute("SELECT key FROM responses")]
    if (cache_dir / "cache.db").exists():  # diskcache's file (vlgate before issue 9)
        with sqlite3.connect(cache_dir / "cache.db") as conn:
            keys += [k for (k,) in conn.execute("SELECT key FROM Cache")]
    return keys


class _Planted:
    """Unpickling this creates the marker file: proof that stored bytes ran as code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_planted_pickle_never_runs(emu: Emulator, tmp_path: Path) -> None:
    cache_dir, marker = tmp_path / "c", tmp_path / "PWNED"
    image = tmp_path / "frame.png"
    image.write_bytes(png_bytes((50, 40)))
    make(emu, cache_dir).query(image, "Describe this image.")
    keys = stored_keys(cache_dir)
    assert len(keys) == 1
    payload = pickle.dumps(_Planted(str(marker)))
    if (cache_dir / DB).exists():
        with sqlite3.connect(cache_dir / DB) as conn:
            conn.execute("UPDATE responses SET value = ?", (payload,))
    try:  # the same row in diskcache's format, pickle mode, as the report planted it
        import diskcache

        planted = diskcache.Cache(str(cache_dir))
        planted.set(keys[0], _Planted(str(marker)))
        planted.close()
    except ImportError:
        pass
    code = textwrap.dedent(
        f"""
        import sys; sys.path[:0] = {sys.path[:3]!r}
        from tests.test_cache_hostile import _Planted  # unpickling needs the class importable
        import vlgate
        m = vlgate.create("openai/gpt-4o", api_key={SECRET!r}, api_base={emu.openai_base!r},
                          cache={str(cache_dir)!r})
        print(m.query({str(image)!r}, "Describe this image.").cached)
        print("diskcache" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    assert out.stdout.split() == ["False", "False"]  # a miss, sent again; diskcache never loaded
    assert len(emu.requests) == 2


@pytest.mark.parametrize(
    "value",
    [
        '""',
        "42",
        "null",
        "[]",
        '"A cat."',
        '{"text": ""}',
        '{"text": 5}',
        '{"text": ["a"]}',
        '{"text": "ok", "model": 3}',
        '{"text": "ok", "finish_reason": {}}',
        '{"text": "ok", "dropped_params": "temperature"}',
        "{not json",
        "",
        b"\x80\x04binary",
    ],
)
def test_malformed_stored_values_are_misses(emu: Emulator, tmp_path: Path, value: object) -> None:
    model = make(emu, tmp_path)
    first = model.query(png_bytes(), "Describe this image.")
    with sqlite3.connect(tmp_path / DB) as conn:
        conn.execute("UPDATE responses SET value = ?", (value,))
    again = model.query(png_bytes(), "Describe this image.")
    assert not again.cached and str(again) == str(first)
    assert len(emu.requests) == 2
    assert model.query(png_bytes(), "Describe this image.").cached  # the bad row was replaced


@pytest.mark.parametrize(
    "damage",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 5000, b""],
    ids=["garbage", "bad-pages", "empty"],
)
def test_corrupt_cache_is_rebuilt_not_raised(emu: Emulator, tmp_path: Path, damage: bytes) -> None:
    make(emu, tmp_path / "warm").query(png_bytes(), "hi")  # a real file first, then damage one
    (tmp_path / DB).write_bytes(damage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make(emu, tmp_path)  # no sqlite3.DatabaseError out of create()
        answer = model.query(png_bytes(), "hi")
    assert not answer.cached
    assert model.query(png_bytes(), "hi").cached
    if damage:
        assert any(issubclass(w.category, CacheWarning) for w in caught)
        assert (tmp_path / (DB + ".corrupt")).read_bytes() == damage


def test_cache_damaged_while_open_recovers(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    cache.put("a" * 64, Completion("A red square."))
    cache._conn.execute("DROP TABLE responses")  # the file changes under a running process
    with pytest.warns(CacheWarning):
        assert cache.get("a" * 64) is None
    cache.put("a" * 64, Completion("A red square."))
    got = cache.get("a" * 64)
    assert got is not None and got.text == "A red square."


def test_foreign_sqlite_file_is_rebuilt(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB) as conn:
        conn.execute("CREATE TABLE responses (key TEXT, other TEXT)")
    with pytest.warns(CacheWarning, match="unreadable"):
        cache = ResponseCache(tmp_path)
    cache.put("b" * 64, Completion("ok"))
    assert cache.get("b" * 64) is not None


def test_tenants_with_different_headers_never_share(emu: Emulator, tmp_path: Path) -> None:
    a = make(emu, tmp_path, extra_headers={"X-Tenant": "a"})
    b = make(emu, tmp_path, extra_headers={"x-tenant": "b"})
    first = a.query(png_bytes(), "Describe this image.")
    other = b.query(png_bytes(), "Describe this image.")
    assert not first.cached and not other.cached
    assert a.query(png_bytes(), "Describe this image.").cached
    call = a.query(png_bytes(), "Describe this image.", extra_headers={"X-Tenant": "c"})
    assert not call.cached
    seen = [r.headers.get("x-tenant") for r in emu.requests]
    assert seen == ["a", "b", "c"]


def test_extra_body_is_in_the_key(emu: Emulator, tmp_path: Path) -> None:
    model = make(emu, tmp_path)
    model.query(png_bytes(), "Describe this image.", extra_body={"top_k": 1})
    assert model.query(png_bytes(), "Describe this image.", extra_body={"top_k": 1}).cached
    assert not model.query(png_bytes(), "Describe this image.", extra_body={"top_k": 2}).cached
    assert len(emu.requests) == 2
    assert [r.body.get("top_k") for r in emu.requests] == [1, 2]


def test_key_covers_local_options_headers_and_every_param() -> None:
    route = resolve("openai/gpt-4o")
    req = ChatRequest(model="gpt-4o", messages=(Message("user", ("hi",)),), params={"seed": 1})

    def key(**kw: object) -> str:
        request = kw.pop("request", req)
        return request_key(request, route, "http://x", **kw)  # type: ignore[arg-type]

    base = key()
    assert key(local_options={"dtype": "float16"}) != key(local_options={"dtype": "float32"})
    assert key(extra_headers={"X-A": "1"}) != base
    assert key(extra_headers={"X-A": "1"}) == key(extra_headers={"x-a": "1"})
    for params in ({"seed": 2}, {"seed": 1, "top_p": 0.5}, {"seed": 1, "extra_body": {"a": 1}}):
        assert (
            key(request=ChatRequest(model="gpt-4o", messages=req.messages, params=params)) != base
        )
    api_key_free = ChatRequest(
        model="gpt-4o", messages=req.messages, params={"seed": 1}, timeout=5.0
    )
    assert key(request=api_key_free) == base  # the attempt timeout does not change the answer


@given(
    value=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=64),
        st.integers(),
        st.floats(allow_nan=True),
        st.none(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["text", "model", "finish_reason", "dropped_params", "x"]),
                    inner,
                    max_size=5,
                )
            ),
            max_leaves=12,
        ).map(json.dumps),
    )
)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_fuzz_stored_values_are_checked(value: object) -> None:
    got = _completion(value)
    if got is not None:  # only a well-formed answer comes back, never a crash
        assert isinstance(got.text, str) and got.text
        assert got.model is None or isinstance(got.model, str)
        assert all(isinstance(p, str) for p in got.dropped_params)
        assert got.usage.total_tokens == 0
