"""``vlgate batch``: many images, one JSONL line each, with a progress bar; resumable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError
from ._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ApiBaseOpt,
    HtmlOpt,
    JsonFlag,
    ModelOpt,
    RetriesOpt,
    TimeoutOpt,
    build_model,
    dropped_note,
    echo,
    errors_to_exit,
    fail,
    print_json,
    stderr_bar,
)
from .batchjob import (
    BatchStats,
    Summary,
    Task,
    find_images,
    read_image_paths,
    run_batch,
    summarize,
)

if TYPE_CHECKING:
    from rich.progress import TaskID

    from ..batchrecord import BatchRecord
    from ..model import VlModel


def _task(prompt: str | None, detect: str | None, point: str | None, schema: Path | None) -> Task:
    chosen = [
        name for name, v in (("--detect", detect), ("--point", point), ("--schema", schema)) if v
    ]
    if len(chosen) > 1:
        raise ConfigError(f"choose one of {', '.join(chosen)}")
    if detect:
        return Task("detect", detect)
    if point:
        return Task("point", point)
    if not prompt:
        raise ConfigError("a PROMPT is needed (or --detect LABEL / --point LABEL)")
    if schema is not None:
        try:
            data = json.loads(schema.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read JSON schema {schema}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"JSON schema {schema} must be a JSON object")
        return Task("json", prompt, data)
    return Task("query", prompt)


class _Progress:
    """Progress on stderr: a rich bar on a terminal (done/total, items/s, ETA, tokens, cost);
    with ``--progress`` into a file or pipe, a plain line every few seconds (no ANSI codes)."""

    def __init__(self, model: VlModel, enabled: bool, force: bool) -> None:
        self._model = model
        self._task: TaskID | None = None
        self._next_line = 0.0
        self._bar, self._plain = stderr_bar(
            enabled,
            force,
            lambda rp: (
                rp.TextColumn("{task.fields[rate]}"),
                rp.TimeElapsedColumn(),
                rp.TextColumn("eta"),
                rp.TimeRemainingColumn(),
                rp.TextColumn("{task.fields[usage]}"),
                rp.TextColumn("[red]{task.fields[failed]}"),
            ),
            refresh=8,
        )

    def start(self, stats: BatchStats) -> None:
        if self._bar is None:
            return
        self._bar.start()
        self._task = self._bar.add_task(
            "batch",
            total=stats.found or None,
            completed=stats.skipped,
            rate="",
            usage="",
            failed="",
        )

    def _figures(self, stats: BatchStats) -> tuple[str, str]:
        usage = self._model.usage
        cost = _cost(self._model)
        elapsed = time.perf_counter() - stats.started
        rate = f"{stats.processed / elapsed:.1f} it/s" if elapsed > 0 else ""
        spent = f"{usage.total_tokens:,} tok" + (f" ${cost:.4f}" if cost is not None else "")
        return rate, spent

    def update(self, record: BatchRecord, stats: BatchStats) -> None:
        if self._plain:
            now = time.monotonic()
            done = stats.skipped + stats.processed
            if now >= self._next_line or done == stats.found:
                self._next_line = now + _PLAIN_EVERY
                rate, spent = self._figures(stats)
                failed = f", {stats.failed} failed" if stats.failed else ""
                echo(f"batch {done}/{stats.found} {rate} {spent}{failed}", err=True)
            return
        if self._bar is None or self._task is None:
            return
        rate, spent = self._figures(stats)
        self._bar.update(
            self._task,
            total=stats.found,  # grows while paths stream in from stdin
            advance=1,
            rate=rate,
            usage=spent,
            failed=f"{stats.failed} failed" if stats.failed else "",
        )

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


_PLAIN_EVERY = 2.0
"""Seconds between plain progress lines when stderr is not a terminal."""


@contextlib.contextmanager
def _sigint_sets(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C stops the batch cleanly instead of raising inside whatever is running."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)


async def _run(
    vl: VlModel,
    paths: Iterable[Path],
    task: Task,
    output: Path,
    concurrency: int,
    limit: int | None,
    retry_failed: bool,
    bar: _Progress,
) -> BatchStats:
    stop = asyncio.Event()
    try:
        with _sigint_sets(stop):
            return await run_batch(
                vl,
                paths,
                task,
                output,
                concurrency=concurrency,
                limit=limit,
                retry_failed=retry_failed,
                stop=stop,
                on_start=bar.start,
                on_result=bar.update,
            )
    finally:
        bar.stop()
        await vl.astop()


def _resume_command(
    source: str, prompt: str | None, task: Task, output: Path, schema: Path | None
) -> str:
    words = ["vlgate", "batch", source]
    if task.kind in ("query", "json") and prompt:
        words.append(prompt)
    if task.kind in ("detect", "point"):
        words += [f"--{task.kind}", task.prompt]
    if task.kind == "json" and schema is not None:
        words += ["--schema", str(schema)]
    words += ["-o", str(output)]
    return " ".join(shlex.quote(w) for w in words) + " ..."


def _report(output: Path, html: Path, paths: list[Path], subtitle: str) -> None:
    from ..batchrecord import read_records
    from ..report import item_from_record, write_report

    records = read_records(output)
    items = (item_from_record(records[str(p)]) for p in paths if str(p) in records)
    # Up to FULL_VIEWS images the page embeds a full-size view of each; past that it would
    # grow by ~100 KB an image, so thumbnails link to the image files instead.
    write_report(
        html,
        items,
        title=f"vlgate batch: {output.name}",
        subtitle=subtitle,
        thumb_side=320,
        full_side=1280 if len(paths) <= FULL_VIEWS else None,
    )


FULL_VIEWS = 200


def batch(
    source: Annotated[
        str,
        typer.Argument(
            help="A directory, a glob ('shots/**/*.jpg'), one file, or - for paths on stdin."
        ),
    ],
    prompt: Annotated[
        str | None, typer.Argument(help="The question (not needed with --detect/--point).")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Results file (JSONL); also the resume state.")
    ] = Path("results.jsonl"),
    detect: Annotated[
        str | None, typer.Option("--detect", help="Detect this label in every image.")
    ] = None,
    point: Annotated[str | None, typer.Option("--point", help="Point at this label.")] = None,
    schema: Annotated[
        Path | None,
        typer.Option(
            "--schema", metavar="FILE", help="Ask for JSON matching this JSON-schema file."
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", "-c", min=1, help="Requests in flight. [env: VLGATE_MAX_CONCURRENCY]"
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Process at most N new images, then stop.")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Redo images whose last result was an error.")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar on stderr (default: when stderr is a terminal).",
        ),
    ] = None,
    model: ModelOpt = None,
    api_base: ApiBaseOpt = None,
    timeout: TimeoutOpt = None,
    max_retries: RetriesOpt = None,
    html: HtmlOpt = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Run on Ray Data: 'local' starts Ray here, or a cluster address "
            "(ray://head:10001, auto). Same results file and resume. Needs vlgate[ray].",
        ),
    ] = None,
    provider_batch: Annotated[
        bool,
        typer.Option(
            "--provider-batch",
            help="Submit to the provider's Batch API (about half the price, answers within "
            "24 h; openai/, anthropic/, gemini/): prints the job id; re-running the same "
            "command resumes that job instead of submitting again.",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="With --provider-batch: poll until the job ends, then write results."
        ),
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval", min=0.001, metavar="S", help="Seconds between --wait polls."
        ),
    ] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Ask the same thing of many images, concurrently; one JSON line per image.

    Results are appended to --output as each finishes, so a stopped run (Ctrl-C, --limit, a
    crash) resumes by running the same command again: images already in the file are skipped.

    Every line has the same keys (null where they do not apply): image, task, prompt, answer,
    json, detections, points, image_size, model, usage, attempts, latency, and error
    ({type, message} when that image failed).
    Exit code 1 if any image failed. --json prints the summary as JSON.

    Examples:

        vlgate batch photos/ "Is there a person?" -o people.jsonl

        vlgate batch "shots/**/*.jpg" --detect forklift -c 16 --html forks.html

        vlgate batch frames/ "Describe the shelf" --schema shelf.schema.json

        vlgate batch /data/frames "Is there a person?" --ray auto

        vlgate batch shots/ --detect forklift --provider-batch --wait
    """
    with errors_to_exit():
        task = _task(prompt, detect, point, schema)
        if provider_batch:
            given = [
                name for name, v in (("--ray", ray_address), ("--limit", limit)) if v is not None
            ]
            if given:
                raise ConfigError(f"--provider-batch does not take {', '.join(given)}")
        streamed: Iterator[Path] | None = None
        if source == "-":
            # Paths from stdin, started as they arrive (`find ... | vlgate batch - PROMPT`);
            # the provider batch and Ray need the whole list first.
            paths: list[Path] = []
            if provider_batch or ray_address is not None:
                paths = list(read_image_paths(sys.stdin))
            else:
                streamed = read_image_paths(sys.stdin, seen=paths)
        else:
            paths = find_images(source)
        if not paths and streamed is None:
            fail(f"no images found in {source}")
        vl = build_model(
            {
                "model": model,
                "api_base": api_base,
                "timeout": timeout,
                "max_retries": max_retries,
                "max_concurrency": concurrency,
            }
        )
        quiet = _is_quiet()
        if provider_batch:
            from .batch_provider import command

            code = command(
                vl,
                paths,
                task,
                output,
                wait=wait,
                poll_interval=poll_interval,
                progress=progress,
                quiet=quiet,
                as_json=as_json,
                retry_failed=retry_failed,
            )
            if html is not None and output.exists():
                _report(output, html, paths, subtitle=f"{vl.config.model} (provider batch)")
            raise typer.Exit(code)
        if wait:
            raise ConfigError("--wait is for --provider-batch")
        workers = vl.max_concurrency
        bar = _Progress(vl, enabled=(progress is not False) and not quiet, force=bool(progress))
        if ray_address is not None:
            from .batch_ray import run_on_ray

            stats = run_on_ray(
                ray_address,
                vl,
                paths,
                task,
                output,
                retry_failed=retry_failed,
                limit=limit,
                bar=bar,
            )
        else:
            todo = paths if streamed is None else streamed
            stats = asyncio.run(_run(vl, todo, task, output, workers, limit, retry_failed, bar))
            if streamed is not None and not paths:
                fail("no image paths on stdin (one per line)")
        summary = _summary_data(stats, summarize(output, paths), vl, output, html)
        if html is not None:
            _report(output, html, paths, subtitle=vl.config.model)
        if as_json:
            print_json(summary)
        else:
            _print_summary(summary, stats)
        if stats.interrupted:
            again = _resume_command(source, prompt, task, output, schema)
            echo(
                f"interrupted: {stats.remaining} image(s) left; resume with the same command "
                f"({again}); finished lines are kept",
                err=True,
            )
            raise typer.Exit(EXIT_INTERRUPTED)
        if stats.limited and stats.remaining > 0:
            echo(
                f"--limit reached: {stats.remaining} image(s) left; run the same command "
                "again to continue",
                err=True,
            )
        # An item whose line could not be written is in stats but not in the file: count both.
        raise typer.Exit(EXIT_FAILED if summary["failed"] or stats.failed else EXIT_OK)


def _cost(vl: VlModel) -> float | None:
    """Dollars spent so far: as the provider reported or priced per answer, else from the
    family's list price (``tokens.cost_of``)."""
    from ..tokens import cost_of

    usage = vl.usage
    return usage.cost if usage.cost is not None else cost_of(vl.route, usage)


def _is_quiet() -> bool:
    import logging

    return logging.getLogger("vlgate").level >= logging.ERROR


def _summary_data(
    stats: BatchStats, state: Summary, vl: VlModel, output: Path, html: Path | None
) -> dict[str, Any]:
    """The run's figures, once: printed as this JSON document (``--json``) or as text."""
    cost = _cost(vl)
    return {
        "found": stats.found,
        "done": state.total,
        "ok": state.ok,
        "failed": state.failed,
        "errors": dict(state.errors.most_common()),
        "dropped": state.dropped,
        "dropped_images": state.dropped_images,
        "processed": stats.processed,
        "skipped": stats.skipped,
        "remaining": stats.remaining,
        "interrupted": stats.interrupted,
        "seconds": round(stats.elapsed, 3),
        "input_tokens": vl.usage.input_tokens,
        "output_tokens": vl.usage.output_tokens,
        "cost": cost,
        "cost_estimated": cost is not None and vl.usage.cost is None,
        "output": str(output),
        "html": str(html) if html else None,
    }


def _print_summary(summary: dict[str, Any], stats: BatchStats) -> None:
    """The text form of :func:`_summary_data` (times and rate unrounded from ``stats``)."""
    errors = ", ".join(f"{k}: {v}" for k, v in summary["errors"].items())
    output, html, cost = summary["output"], summary["html"], summary["cost"]
    lines = [
        f"batch: {summary['done']} of {summary['found']} image(s) done, {summary['ok']} ok, "
        f"{summary['failed']} failed"
        + (f" ({errors})" if errors else "")
        + (
            f"; {dropped_note(summary['dropped'])} in {summary['dropped_images']} image(s)"
            if summary["dropped"]
            else ""
        ),
        f"this run: {summary['processed']} processed in {stats.elapsed:.1f} s "
        f"({stats.rate:.1f} images/s), {summary['skipped']} skipped "
        f"(already in {Path(output).name})",
    ]
    spent = f"tokens: {summary['input_tokens']:,} in / {summary['output_tokens']:,} out"
    if cost is not None:
        estimated = " (estimated from list prices)" if summary["cost_estimated"] else ""
        spent += f", cost ${cost:.4f}{estimated}"
    lines.append(spent)
    lines.append(f"results: {output}" + (f"; report: {html}" if html else ""))
    for line in lines:
        echo(line)
    if stats.unwritten:
        echo(
            f"error: {stats.unwritten} result line(s) could not be written to {output} "
            f"({', '.join(k for k in stats.errors if k)}); those images failed and a re-run "
            "asks them again",
            err=True,
        )


def register(app: typer.Typer, cls: type[Any]) -> None:
    app.command(cls=cls)(batch)
