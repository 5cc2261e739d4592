"""The opt-in response cache, on the wire: hits send nothing, cost nothing, never hold a key."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import vlgate
from vlgate.providers.base import Completion
from vlgate.runtime.cache import ResponseCache
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import jpeg_bytes, png_bytes

SECRET = "sk-cache-secret-9f8e7d6c5b4a"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=SECRET) as e:
        yield e


def make(emu: Emulator, cache: object, **kw: object) -> vlgate.VlModel:
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create(
        "openai/gpt-4o", api_key=SECRET, api_base=emu.openai_base, cache=cache, **kw
    )


def test_hit_sends_nothing_and_is_marked(emu: Emulator, tmp_path: Path) -> None:
    model = make(emu, tmp_path)
    first = model.query(png_bytes(), "Describe this image.", temperature=0)
    second = model.query(png_bytes(), "Describe this image.", temperature=0)
    assert len(emu.requests) == 1
    assert str(second) == str(first)
    assert not first.cached and first.attempts == 1 and first.usage.input_tokens > 0
    assert second.cached and second.attempts == 0
    assert second.usage.total_tokens == 0 and second.usage.cost is None
    assert second.model == first.model
    total = model.usage
    assert total.requests == 1 and total.input_tokens == first.usage.input_tokens


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "Describe it briefly."},
        {"image": jpeg_bytes()},
        {"kwargs": {"temperature": 0.5}},
        {"model": "openai/gpt-4o-mini"},
    ],
    ids=["prompt", "image", "params", "model"],
)
def test_anything_that_changes_the_answer_misses(
    emu: Emulator, tmp_path: Path, change: dict[str, object]
) -> None:
    make(emu, tmp_path).query(png_bytes(), "Describe this image.", temperature=0)
    model = vlgate.create(
        str(change.get("model", "openai/gpt-4o")),
        api_key=SECRET,
        api_base=emu.openai_base,
        cache=tmp_path,
    )
    kwargs = change.get("kwargs", {"temperature": 0})
    answer = model.query(
        change.get("image", png_bytes()),  # type: ignore[arg-type]
        str(change.get("prompt", "Describe this image.")),
        **kwargs,
    )
    assert not answer.cached
    assert len(emu.requests) == 2


def test_cache_files_never_contain_the_key(emu: Emulator, tmp_path: Path) -> None:
    model = make(emu, tmp_path, extra_headers={"x-team": "robots"})
    for i in range(5):
        model.query(png_bytes((40 + i, 30)), f"Describe image {i}.")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    blob = b"".join(p.read_bytes() for p in files)
    assert b"Describe image 4." not in blob  # prompts are hashed into the key, not stored
    for needle in (SECRET.encode(), SECRET[-12:].encode(), b"Bearer"):
        assert needle not in blob
    assert b"image of" in blob  # the answers themselves are there


def test_ttl_expires_entries(emu: Emulator, tmp_path: Path) -> None:
    model = make(emu, tmp_path, cache_ttl=0.3)
    model.query(png_bytes(), "hi")
    assert model.query(png_bytes(), "hi").cached
    time.sleep(0.4)
    assert not model.query(png_bytes(), "hi").cached
    assert len(emu.requests) == 2


def test_cache_covers_json_detect_and_batch(emu: Emulator, tmp_path: Path) -> None:
    class Count(BaseModel):
        count: int

    scene = make_scene(2, size=(320, 240))
    model = make(emu, tmp_path)
    for _ in range(2):
        assert model.query_json(scene.image, "How many shapes?", Count).count == len(scene.shapes)
        assert len(model.detect(scene.image, "shape")) == len(scene.shapes)
        answers = model.query_batch([png_bytes(), jpeg_bytes()], "Describe this image.")
        assert len(answers) == 2
    assert len(emu.requests) == 4


def test_failures_are_not_cached(emu: Emulator, tmp_path: Path) -> None:
    emu.script("gpt-4o", ["400"])
    model = make(emu, tmp_path)
    with pytest.raises(vlgate.ProviderError):
        model.query(png_bytes(), "hi")
    assert not model.query(png_bytes(), "hi").cached
    assert model.query(png_bytes(), "hi").cached


def test_shared_between_processes(emu: Emulator, tmp_path: Path) -> None:
    img = tmp_path / "frame.png"
    img.write_bytes(png_bytes((50, 40)))
    code = textwrap.dedent(
        f"""
        import vlgate
        m = vlgate.create("openai/gpt-4o", api_key={SECRET!r}, api_base={emu.openai_base!r},
                          cache={str(tmp_path / "c")!r})
        a = m.query({str(img)!r}, "Describe this image.")
        print(a.cached, a)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("False")
    model = make(emu, tmp_path / "c")
    answer = model.query(img, "Describe this image.")
    assert answer.cached and str(answer) == out.stdout.split(" ", 1)[1].strip()
    assert len(emu.requests) == 1


def test_size_cap_evicts_oldest(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, max_bytes=1 << 20)
    text = "x" * 4000
    for i in range(600):  # ~2.4 MB of answers into a 1 MB cache
        cache.put(f"{i:064x}", Completion(text))
    assert cache.volume() < 1.6 * (1 << 20)
    assert cache.get(f"{599:064x}") is not None
    assert cache.get(f"{0:064x}") is None
    assert len(cache) < 600


def test_cache_true_uses_the_user_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    from vlgate.runtime.cache import default_cache_dir

    assert str(default_cache_dir()).startswith(str(tmp_path))
    assert default_cache_dir().name == "responses"
