"""The ``vlgate batch`` engine on the streaming pipeline: a generator of paths is pulled only as
slots free (memory O(concurrency)), every line is written as its image finishes, and resume and
failures work as with a list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import vlgate
from vlgate.batchrecord import BatchRecord
from vlgate.cli.batchjob import BatchStats, Task, run_batch
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import KEY


def write_scenes(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"scene-{i:03d}.png"
        path.write_bytes(make_scene(500 + i, size=(96, 72), n_shapes=1 + i % 3).to_png_bytes())
        paths.append(path)
    return paths


def model_for(emu: Emulator, concurrency: int) -> vlgate.VlModel:
    return vlgate.create(
        "openai/gpt-4o-mini",
        api_key=KEY,
        api_base=emu.openai_base,
        max_concurrency=concurrency,
        backoff_base=0.0,
    )


def run(model: vlgate.VlModel, *args: object, **kwargs: object) -> BatchStats:
    async def go() -> BatchStats:
        try:
            return await run_batch(model, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            await model.astop()

    return asyncio.run(go())


def lines_of(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_a_generator_of_paths_streams_and_each_line_is_written_as_it_finishes(
    tmp_path: Path, emulator: Emulator
) -> None:
    emulator.latency = 0.01
    paths = write_scenes(tmp_path / "imgs", 24)
    out = tmp_path / "out.jsonl"
    pulled = 0
    most_ahead = 0
    lines_at_result: list[int] = []

    def walk() -> Iterator[Path]:
        nonlocal pulled
        for p in paths:
            pulled += 1
            yield p

    def on_result(record: BatchRecord, stats: BatchStats) -> None:
        nonlocal most_ahead
        most_ahead = max(most_ahead, pulled - stats.processed)
        lines_at_result.append(len(lines_of(out)))

    model = model_for(emulator, 4)
    task = Task("query", "How many shapes?")
    stats = run(model, walk(), task, out, concurrency=4, on_result=on_result)
    assert stats.found == 24 and stats.processed == 24 and stats.ok == 24 and stats.skipped == 0
    # Pulled only as slots free: never more than the window ahead of the finished lines.
    assert most_ahead <= 4
    # Written as each finishes: the k-th result sees k lines in the file already.
    assert lines_at_result == list(range(1, 25))
    got = {line["image"]: line for line in lines_of(out)}
    assert set(got) == {str(p) for p in paths} and len(emulator.requests) == 24
    for r in emulator.requests:  # every image arrived at its own size
        assert r.images[0].size == (96, 72)

    # Resume from a generator: everything is skipped, nothing is sent.
    emulator.clear()
    again = run(model_for(emulator, 4), iter(paths), task, out, concurrency=4)
    assert again.found == 24 and again.skipped == 24 and again.processed == 0
    assert emulator.requests == []


def test_a_generator_with_a_corrupt_file_a_limit_and_retry_failed(
    tmp_path: Path, emulator: Emulator
) -> None:
    paths = write_scenes(tmp_path / "imgs", 6)
    bad = tmp_path / "imgs" / "scene-002.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "out.jsonl"
    model = model_for(emulator, 2)
    task = Task("query", "How many shapes?")

    first = run(model, iter(paths), task, out, concurrency=2, limit=4)
    assert first.processed == 4 and first.limited and first.failed == 1
    assert len(emulator.requests) == 3  # nothing is sent for the corrupt file
    failed = [line for line in lines_of(out) if line["error"]]
    assert [line["image"] for line in failed] == [str(bad)]

    bad.write_bytes(make_scene(7, size=(96, 72)).to_png_bytes())  # fixed on disk
    emulator.clear()
    second = run(model_for(emulator, 2), iter(paths), task, out, concurrency=2, retry_failed=True)
    assert second.skipped == 3 and second.processed == 3 and second.failed == 0
    sent = {r.images[0].size for r in emulator.requests}
    assert len(emulator.requests) == 3 and sent == {(96, 72)}
