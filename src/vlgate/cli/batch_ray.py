"""``vlgate batch --ray``: the same job on a Ray cluster, the same results file and summary.

Rows come back from :func:`vlgate.integrations.ray.query_dataset` as they finish and are
written as :class:`~vlgate.batchrecord.BatchRecord` lines, so resume (images already in the file
are skipped), ``--retry-failed``, the summary and ``--html`` work as in one process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..batchrecord import BatchRecord, RecordError, read_records
from ..errors import ConfigError
from ..providers.base import Usage
from .batchjob import BatchStats

if TYPE_CHECKING:
    from ..model import VlModel
    from .batchjob import Task


def _record(row: dict[str, Any], task: Task, model: str) -> BatchRecord:
    record = BatchRecord(image=str(row["image"]), task=task.kind, prompt=task.prompt)
    if row.get("error"):
        record.error = RecordError(type=str(row.get("error_type") or "Error"), message=row["error"])
    elif task.kind == "query":
        record.answer = row.get("answer")
    elif task.kind == "json":
        import json

        record.json = json.loads(row["json"]) if row.get("json") else None
    elif task.kind == "detect":
        record.detections = [
            {"label": d["label"], "xyxy": [d["x1"], d["y1"], d["x2"], d["y2"]]}
            for d in row.get("detections") or []
        ]
    else:
        record.points = [
            {"label": p["label"], "xy": [p["x"], p["y"]]} for p in row.get("points") or []
        ]
    if row.get("dropped") is not None:
        record.dropped = int(row["dropped"])
    size = row.get("image_size")
    if size is not None and len(size) == 2:
        record.image_size = (int(size[0]), int(size[1]))
    if row.get("input_tokens") is not None:
        record.usage = Usage(
            input_tokens=int(row["input_tokens"]),
            output_tokens=int(row.get("output_tokens") or 0),
            cost=row.get("cost"),
        )
    if row.get("attempts") is not None:
        record.attempts = int(row["attempts"])
    record.model = model
    return record


def run_on_ray(
    address: str,
    vl: VlModel,
    paths: list[Path],
    task: Task,
    output: Path,
    *,
    retry_failed: bool,
    limit: int | None,
    bar: Any = None,
) -> BatchStats:
    """Run the batch on Ray (``address``: ``local`` starts one here), appending to ``output``."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray Data: pip install 'vlgate[ray]'") from None
    from ..integrations.ray import query_dataset

    done = read_records(output) if output.exists() else {}
    todo = [p for p in paths if str(p) not in done or (retry_failed and not done[str(p)].ok)]
    stats = BatchStats(found=len(paths), skipped=len(paths) - len(todo))
    if limit is not None and len(todo) > limit:
        todo = todo[:limit]
        stats.limited = True
    if bar is not None:
        bar.start(stats)
    try:
        if todo:
            if not ray.is_initialized():
                ray.init(
                    address=None if address in ("", "local") else address,
                    log_to_driver=False,
                    include_dashboard=False,
                )
            resources: Any = ray.cluster_resources  # untyped in Ray
            cpus = int(resources().get("CPU", 2))
            ds = ray.data.from_items([{"image": str(p)} for p in todo])
            out = query_dataset(
                ds,
                vl,
                task.prompt,
                task=task.kind,
                schema=task.schema,
                num_actors=max(1, cpus),
            )
            with output.open("a", encoding="utf-8", errors="backslashreplace") as fh:
                for row in out.iter_rows():
                    record = _record(row, task, vl.config.model)
                    fh.write(record.to_json() + "\n")
                    fh.flush()
                    stats.processed += 1
                    if record.ok:
                        stats.ok += 1
                    else:
                        stats.failed += 1
                        stats.errors[record.error.type if record.error else ""] += 1
                    if bar is not None:
                        bar.update(record, stats)
    finally:
        if bar is not None:
            bar.stop()
    stats.elapsed = time.perf_counter() - stats.started
    return stats
