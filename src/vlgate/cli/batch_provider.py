"""``vlgate batch --provider-batch``: the images go to the provider's Batch API as one job.

The job is submitted once. Its id is kept in a state file next to the output
(``<output>.provider-batch.json``), under a key made of the images still to do (the ones not
yet in the output file), the task (kind, prompt or target, schema) and the model string.
Running the same command again finds the key and resumes that job instead of submitting (and
paying for) it again; with ``--wait`` it polls until the job ends and appends one
:class:`~vlgate.batchrecord.BatchRecord` line per image to the output, as the live batch does.
Once written, those images are in the output, so a further run has nothing left to submit.

Example:
    >>> outcome = asyncio.run(run_provider_batch(model, paths, task, Path("out.jsonl"),
    ...                                          wait=True, poll_interval=60))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..batchrecord import BatchRecord, RecordError, read_records
from ..errors import ConfigError, VlgateError
from .batchjob import Task

if TYPE_CHECKING:
    from ..batches import BatchJob, BatchStatus
    from ..model import VlModel

__all__ = ["ProviderBatchOutcome", "job_key", "run_provider_batch", "state_path"]

STATE_SUFFIX = ".provider-batch.json"

T = TypeVar("T")


def state_path(output: Path) -> Path:
    """Where the job ids of ``output`` are kept: ``<output>.provider-batch.json``."""
    return output.with_name(output.name + STATE_SUFFIX)


def job_key(paths: Sequence[Path], task: Task, model: str) -> str:
    """The identity of one submission: the images, the task and the model (hex sha256).

    Example:
        >>> job_key([Path("a.jpg")], Task("query", "Door?"), "openai/gpt-4o")[:12]
        '93031f25e64e'
    """
    data = {
        "images": [str(p) for p in paths],
        "task": task.kind,
        "prompt": task.prompt,
        "schema": task.schema,
        "model": model,
    }
    raw = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "backslashreplace")).hexdigest()


def _load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "jobs": {}}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the batch state file {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
        raise ConfigError(f"{path} is not a vlgate batch state file")
    return data


def _save_state(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class ProviderBatchOutcome:
    """What one run did: the job, whether it was resumed, its last status, lines written."""

    job_id: str | None
    resumed: bool
    status: BatchStatus | None
    pending: int
    """Images not in the output file when the run started."""
    written: int = 0
    failed: int = 0
    cost: float | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    state_file: Path | None = None


def _record(path: Path, task: Task, answer: Any, result: Any) -> BatchRecord:
    """One output line from a batch result (the same shape as the live batch's lines)."""
    record = BatchRecord(image=str(path), task=task.kind, prompt=task.prompt)
    if isinstance(result, VlgateError):
        record.error = RecordError.from_exception(result)
    elif task.kind == "query":
        record.answer = str(result)
    elif task.kind == "json":
        record.json = result.model_dump() if hasattr(result, "model_dump") else result
    else:
        record.set_found(result)
    if not isinstance(answer, VlgateError):
        record.model = answer.model
        record.usage = answer.usage
        record.attempts = answer.attempts
    return record


async def run_provider_batch(
    model: VlModel,
    paths: Sequence[Path],
    task: Task,
    output: Path,
    *,
    wait: bool,
    poll_interval: float,
    retry_failed: bool = False,
    on_submitted: Callable[[str, bool, int], None] | None = None,
    on_status: Callable[[BatchStatus], None] | None = None,
) -> ProviderBatchOutcome:
    """Submit (or resume) the job for the images of ``paths`` not yet in ``output``; with
    ``wait`` poll until it ends, then append their records to ``output``.

    A job that has already ended is collected without ``wait``. ``retry_failed``: images whose
    latest line is an error count as not done (a new job asks them again). ``on_submitted(job_id,
    resumed, images)`` is called once the job is known, ``on_status`` with each status.
    """
    from ..batches import BatchJob

    done = read_records(output)
    todo = [p for p in paths if str(p) not in done or (retry_failed and not done[str(p)].ok)]
    sfile = state_path(output)
    outcome = ProviderBatchOutcome(None, False, None, len(todo), state_file=sfile)
    if not todo:
        return outcome
    key = job_key(todo, task, model.config.model)
    state = _load_state(sfile)
    entry = state["jobs"].get(key)
    job: BatchJob
    if isinstance(entry, dict) and isinstance(entry.get("job_id"), str):
        job = BatchJob.resume(entry["job_id"], model, schema=task.schema)
        if len(job) != len(todo) or job.task != task.kind:
            raise ConfigError(
                f"the state file {sfile} names a {job.task} job of {len(job)} images for these "
                f"{len(todo)} images; it was edited or damaged (remove that file to submit anew)"
            )
        outcome.resumed = True
    else:
        kind = task.kind
        job = await model.asubmit_batch(
            [str(p) for p in todo],
            task.prompt,
            task=kind,
            schema=task.schema,
            display_name=f"vlgate batch {output.name}",
        )
        state["jobs"][key] = {
            "job_id": job.id,
            "provider_ids": list(job.provider_ids),
            "model": model.config.model,
            "task": kind,
            "images": len(todo),
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _save_state(sfile, state)
    outcome.job_id = job.id
    if on_submitted is not None:
        on_submitted(job.id, outcome.resumed, len(todo))
    if wait:
        outcome.status = await job.wait_async(poll_interval=poll_interval, on_progress=on_status)
    else:
        outcome.status = await job.astatus()
        if on_status is not None:
            on_status(outcome.status)
    if not outcome.status.done:
        return outcome
    pairs = await job.acollect()
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("a", encoding="utf-8") as fh:
        for path, (answer, result) in zip(todo, pairs, strict=True):
            record = _record(path, task, answer, result)
            fh.write(record.to_json() + "\n")
            outcome.written += 1
            outcome.failed += record.error is not None
    usage = job.usage
    outcome.cost, outcome.input_tokens, outcome.output_tokens = (
        usage.cost,
        usage.input_tokens,
        usage.output_tokens,
    )
    entry = state["jobs"].get(key)
    if isinstance(entry, dict):
        entry["collected_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with contextlib.suppress(OSError):
            _save_state(sfile, state)
    return outcome


async def _closing(model: VlModel, work: Awaitable[T]) -> T:
    """Await ``work``, then close the model's connections (their loop ends with the command)."""
    try:
        return await work
    finally:
        await model.astop()


class _JobProgress:
    """The job's progress on stderr: a rich bar on a terminal (answered+failed of total, the
    state), else with ``--progress`` a plain line per poll."""

    def __init__(self, enabled: bool, force: bool) -> None:
        from ._common import stderr_bar

        self._task: Any = None
        self._bar, self._plain = stderr_bar(
            enabled,
            force,
            lambda rp: (
                rp.TextColumn("[red]{task.fields[failed]}"),
                rp.TimeElapsedColumn(),
            ),
            refresh=4,
        )

    def __call__(self, status: BatchStatus) -> None:
        from ._common import echo

        finished = status.completed + status.failed
        failed = f"{status.failed} failed" if status.failed else ""
        if self._plain:
            echo(
                f"provider batch {status.state}: {finished}/{status.total}"
                + (f", {failed}" if failed else ""),
                err=True,
            )
            return
        if self._bar is None:
            return
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(status.state, total=status.total or None, failed="")
        self._bar.update(
            self._task,
            description=status.state,
            total=status.total or None,
            completed=finished,
            failed=failed,
        )

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def command(
    vl: VlModel,
    paths: Sequence[Path],
    task: Task,
    output: Path,
    *,
    wait: bool,
    poll_interval: float,
    progress: bool | None,
    quiet: bool,
    as_json: bool,
    retry_failed: bool = False,
) -> int:
    """``vlgate batch --provider-batch``: run, print the job id and the summary; the exit code."""
    from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, echo, print_json

    bar = _JobProgress(enabled=wait and progress is not False and not quiet, force=bool(progress))

    def submitted(job_id: str, resumed: bool, images: int) -> None:
        verb = "resuming" if resumed else "submitted"
        echo(f"provider batch {verb}: {images} image(s), job {job_id}", err=True)

    try:
        work = run_provider_batch(
            vl,
            paths,
            task,
            output,
            wait=wait,
            poll_interval=poll_interval,
            retry_failed=retry_failed,
            on_submitted=submitted,
            on_status=bar,
        )
        outcome = asyncio.run(_closing(vl, work))
    except KeyboardInterrupt:
        bar.stop()
        echo(
            "interrupted: the job keeps running at the provider; run the same command again "
            "(with --wait) to pick it up",
            err=True,
        )
        return EXIT_INTERRUPTED
    finally:
        bar.stop()
    status = outcome.status
    data = {
        "job_id": outcome.job_id,
        "resumed": outcome.resumed,
        "state": status.state if status is not None else None,
        "total": status.total if status is not None else 0,
        "completed": status.completed if status is not None else 0,
        "failed": status.failed if status is not None else 0,
        "pending_images": outcome.pending,
        "written": outcome.written,
        "input_tokens": outcome.input_tokens,
        "output_tokens": outcome.output_tokens,
        "cost": outcome.cost,
        "output": str(output),
        "state_file": str(outcome.state_file),
    }
    if as_json:
        print_json(data)
    elif outcome.job_id is None:
        echo(f"provider batch: all {len(paths)} image(s) are already in {output}; nothing to do")
    else:
        echo(f"job: {outcome.job_id}")
        assert status is not None
        echo(
            f"provider batch {status.state}: {status.completed} answered, {status.failed} "
            f"failed of {status.total}"
        )
        if outcome.written:
            spent = f"tokens: {outcome.input_tokens:,} in / {outcome.output_tokens:,} out"
            if outcome.cost is not None:
                spent += f", cost ${outcome.cost:.4f} (batch price)"
            echo(spent)
            echo(f"results: {output} ({outcome.written} line(s), {outcome.failed} failed)")
        elif not status.done:
            echo("not finished: run the same command with --wait to wait and write the results")
    if status is not None and not status.done:
        return EXIT_OK
    return EXIT_FAILED if outcome.failed else EXIT_OK
