"""The engine behind ``vlgate batch``: concurrent, resumable, one JSONL line per image.

No typer or rich here: the command wires a progress bar to ``on_result``. The output file is
the state: every result is appended and flushed as soon as it completes, so a run that stops
(Ctrl-C, a crash, ``--limit``) resumes by skipping the images already in the file.

Example:
    >>> paths = find_images("photos/")                                         # doctest: +SKIP
    >>> stats = asyncio.run(run_batch(model, paths, Task("query", "Count the cups"),
    ...                               Path("out.jsonl"), concurrency=8))       # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from ..batchrecord import BatchRecord, RecordError, iter_records, read_records
from ..errors import ConfigError
from ..runtime.pipeline import as_completed

if TYPE_CHECKING:
    from ..model import VlModel

__all__ = [
    "IMAGE_SUFFIXES",
    "BatchStats",
    "Task",
    "find_images",
    "read_image_paths",
    "read_records",
    "run_batch",
    "summarize",
]

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"}
)
"""File suffixes a directory scan picks up (a glob or an explicit file takes anything)."""

TaskKind = Literal["query", "detect", "point", "json"]


@dataclass(frozen=True)
class Task:
    """What to ask of every image: a question, a detection/point target, or JSON."""

    kind: TaskKind
    prompt: str
    schema: dict[str, Any] | None = None


@dataclass
class BatchStats:
    """Counts of one run (``processed`` excludes items skipped as already done)."""

    found: int = 0
    skipped: int = 0
    processed: int = 0
    ok: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    elapsed: float = 0.0
    interrupted: bool = False
    limited: bool = False
    unwritten: int = 0
    """Items whose result line could not be written (counted as failed, absent from the file)."""

    @property
    def remaining(self) -> int:
        return self.found - self.skipped - self.processed

    @property
    def rate(self) -> float:
        """Items per second in this run."""
        return self.processed / self.elapsed if self.elapsed > 0 else 0.0


def find_images(source: str | Path) -> list[Path]:
    """The images of a batch: a directory (recursively, by suffix), a glob, or one file.

    Sorted, so a re-run sees the same order.

    Example:
        >>> find_images("shots/*.png")                                         # doctest: +SKIP
        [PosixPath('shots/a.png'), PosixPath('shots/b.png')]
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    elif path.is_file():
        found = [path]
    elif glob.has_magic(text):
        found = [Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)]
        found = [p for p in found if p.is_file()]
    else:
        raise ConfigError(f"{text} is not a directory, a file or a glob pattern")
    return sorted(found)


def read_image_paths(lines: Iterable[str], seen: list[Path] | None = None) -> Iterator[Path]:
    """The image paths of ``lines`` (one per line, e.g. ``sys.stdin``), yielded as they are
    read so a batch starts on the first one; blank lines are skipped. Each path is also
    appended to ``seen`` when given (the run's summary needs them afterwards).

    Example:
        >>> list(read_image_paths(["a.jpg\\n", "\\n", " b.png \\n"]))
        [PosixPath('a.jpg'), PosixPath('b.png')]
    """
    for line in lines:
        text = line.strip()
        if text:
            path = Path(text).expanduser()
            if seen is not None:
                seen.append(path)
            yield path


async def _ask(model: VlModel, path: Path, task: Task) -> BatchRecord:
    """One image: its record, without latency."""
    record = BatchRecord(image=str(path), task=task.kind, prompt=task.prompt)
    if task.kind == "query":
        answer = await model.aquery(path, task.prompt)
        record.answer = str(answer)
        record.model = answer.model
        record.usage = answer.usage
        record.attempts = answer.attempts
        return record
    if task.kind == "json":
        record.json, answer = await model._query_json(path, task.prompt, task.schema, {})
        record.model = answer.model
        record.usage = answer.usage
        record.attempts = answer.attempts
        return record
    found = await (
        model.adetect(path, task.prompt)
        if task.kind == "detect"
        else model.apoint(path, task.prompt)
    )
    record.set_found(found)
    record.usage = found.usage
    record.attempts = found.attempts
    record.model = getattr(found.answer, "model", None)
    return record


def _pending(
    paths: Iterable[Path], done: Mapping[str, bool], retry_failed: bool, stats: BatchStats
) -> Iterator[Path]:
    """The paths still to do; counts the ones found (unless known) and skipped in ``stats``."""
    count = not isinstance(paths, Sized)
    for path in paths:
        if count:
            stats.found += 1
        ok = done.get(str(path))
        if ok is None or (retry_failed and not ok):
            yield path
        else:
            stats.skipped += 1


async def _listed(paths: Iterator[Path]) -> AsyncIterator[Path]:
    # Paths already in memory: filtered right here, no worker-thread hop per item.
    for path in paths:
        yield path


def _done_status(out_path: Path) -> dict[str, bool]:
    """Image -> answered, from the latest line of each image in the results file (the records
    themselves are not kept: resuming 50,000 images holds 50,000 paths, not their answers)."""
    return {record.image: record.ok for record in iter_records(out_path)}


async def run_batch(
    model: VlModel,
    paths: Iterable[Path],
    task: Task,
    out_path: Path,
    *,
    concurrency: int = 8,
    limit: int | None = None,
    retry_failed: bool = False,
    stop: asyncio.Event | None = None,
    on_start: Callable[[BatchStats], None] | None = None,
    on_result: Callable[[BatchRecord, BatchStats], None] | None = None,
) -> BatchStats:
    """Ask ``task`` of every image in ``paths`` not yet in ``out_path``; append one JSON line each.

    ``paths`` may be a list or any iterable (a generator walking a directory): it is streamed
    through :func:`vlgate.runtime.pipeline.as_completed`, so at most ``concurrency`` images are
    loaded or in flight at once and memory does not grow with the batch. Each line is written
    as its image finishes. Setting ``stop`` ends the run: no new image starts, the ones in
    flight are cancelled (a re-run does them), and the file keeps every line already written.
    ``limit`` caps how many images this run processes.
    """
    if concurrency < 1:
        raise ConfigError("concurrency must be at least 1")
    sized = isinstance(paths, Sized)
    stats = BatchStats(found=len(paths) if isinstance(paths, Sized) else 0)
    done = _done_status(out_path)
    if sized:
        # A list: skip counts known up front (the progress bar starts from them).
        stats.skipped = sum(
            1 for p in paths if (ok := done.get(str(p))) is not None and (ok or not retry_failed)
        )
        todo_count = stats.found - stats.skipped
        stats.limited = limit is not None and limit < todo_count
        counter = BatchStats()  # _pending's own counts, already known
        todo: Iterator[Path] = _pending(paths, done, retry_failed, counter)
    else:
        todo = _pending(paths, done, retry_failed, stats)
    if limit is not None:
        todo = itertools.islice(todo, limit)
    if on_start is not None:
        on_start(stats)
    stop = stop or asyncio.Event()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _end_with_newline(out_path)

    async def one(path: Path) -> BatchRecord:
        started = time.perf_counter()
        try:
            record = await _ask(model, path, task)
        except Exception as exc:  # every item failure is data, not a crash
            record = BatchRecord(
                image=str(path),
                task=task.kind,
                prompt=task.prompt,
                error=RecordError.from_exception(exc),
            )
        record.latency = round(time.perf_counter() - started, 4)
        return record

    def window() -> int:
        return max(1, min(concurrency, model.concurrency))

    source: Iterable[Path] | AsyncIterator[Path] = _listed(todo) if sized else todo
    with out_path.open("ab", buffering=0) as fh:
        lines = _Lines(fh)
        results = as_completed(source, one, window=window, stop=stop)
        try:
            async for _, result in results:
                # one() turns every failure into a record (return_exceptions is off).
                assert isinstance(result, BatchRecord)
                record = result
                try:
                    lines.write(record)
                except Exception as exc:  # the line could not be written: the item failed
                    stats.unwritten += 1
                    record.error = RecordError.from_exception(exc)
                    with contextlib.suppress(Exception):
                        lines.write(_error_only(record))
                stats.processed += 1
                if record.error is not None:
                    stats.failed += 1
                    stats.errors[record.error.type] += 1
                else:
                    stats.ok += 1
                if on_result is not None:
                    try:
                        on_result(record, stats)
                    except Exception as exc:  # a display failure must not stop the batch
                        stats.errors[f"on_result: {type(exc).__name__}"] += 1
        finally:
            await results.aclose()
            stats.elapsed = time.perf_counter() - stats.started
    if not sized and limit is not None and stats.processed >= limit:
        stats.limited = True
    if stop.is_set() and (stats.remaining > 0 or not sized):
        stats.interrupted = True
    return stats


class _Lines:
    """Appends JSON lines to the results file, each written whole or failing loudly.

    Unbuffered, so a failed write (a full disk) fails for its own line and never again at
    close. A line cut short by a failure is ended before the next one, so it costs only its
    own record. Lone surrogates (an answer, a non-UTF-8 file name) are written as ``\\udXXX``
    escapes, which JSON reads back as the same string.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._cut = False

    def write(self, record: BatchRecord) -> None:
        data = (record.to_json() + "\n").encode("utf-8", "backslashreplace")
        view = memoryview(b"\n" + data if self._cut else data)
        self._cut = True
        while view:
            view = view[self._fh.write(view) or 0 :]
        self._cut = False


def _error_only(record: BatchRecord) -> BatchRecord:
    """The smallest record of a failed item: enough for a re-run to see it and retry it."""
    return BatchRecord(
        image=record.image,
        task=record.task,
        prompt=record.prompt,
        latency=record.latency,
        error=record.error,
    )


def _end_with_newline(path: Path) -> None:
    """A line cut short by a crash must not glue onto the next record."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.write(b"\n")


@dataclass
class Summary:
    """The state of a results file: latest record per image, among ``paths`` when given."""

    total: int
    ok: int
    failed: int
    errors: Counter[str]
    input_tokens: int
    output_tokens: int
    dropped: int = 0
    """Unreadable entries dropped from detect/point answers, over all records."""
    dropped_images: int = 0
    """Records with at least one dropped entry."""


def summarize(out_path: Path, paths: Sequence[Path] | None = None) -> Summary:
    """Counts over the latest record of every image in the results file.

    Example:
        >>> s = summarize(Path("out.jsonl"))                                   # doctest: +SKIP
        >>> s.ok, s.failed, dict(s.errors)                                     # doctest: +SKIP
        (38, 2, {'ImageError': 2})
    """
    records = read_records(out_path)
    if paths is not None:
        wanted = {str(p) for p in paths}
        records = {k: v for k, v in records.items() if k in wanted}
    errors: Counter[str] = Counter()
    tokens_in = tokens_out = dropped = dropped_images = 0
    for rec in records.values():
        if rec.error is not None:
            errors[rec.error.type] += 1
        if rec.dropped:
            dropped += rec.dropped
            dropped_images += 1
        if rec.usage is not None:
            tokens_in += rec.usage.input_tokens
            tokens_out += rec.usage.output_tokens
    failed = sum(errors.values())
    return Summary(
        len(records),
        len(records) - failed,
        failed,
        errors,
        tokens_in,
        tokens_out,
        dropped,
        dropped_images,
    )
