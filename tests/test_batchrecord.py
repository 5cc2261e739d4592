"""``BatchRecord``: the typed batch line, its JSON round-trip, and what the batch engine writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import vlgate
from vlgate.batchrecord import BatchRecord, RecordError, read_records
from vlgate.cli.batchjob import Task, run_batch
from vlgate.providers.base import Usage
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import KEY

FIELDS = {
    "image",
    "task",
    "prompt",
    "answer",
    "json",
    "detections",
    "points",
    "image_size",
    "dropped",
    "model",
    "usage",
    "attempts",
    "latency",
    "error",
}


@pytest.mark.parametrize(
    "record",
    [
        BatchRecord(
            "a.png",
            "query",
            "hi",
            answer="Hello.",
            model="m",
            usage=Usage(10, 2),
            attempts=1,
            latency=0.5,
        ),
        BatchRecord(
            "b.png",
            "detect",
            "mug",
            detections=[{"label": "mug", "xyxy": [1, 2, 3, 4]}],
            image_size=(640, 480),
            dropped=2,
            usage=Usage(5, 1, image_tokens=3, cost=0.01),
        ),
        BatchRecord("c.png", "json", "count", json={"count": 3}),
        BatchRecord("d.png", "point", "cup", error=RecordError("ImageError", "bad file")),
    ],
)
def test_round_trip_with_every_field_present(record: BatchRecord) -> None:
    line = record.to_json()
    assert set(json.loads(line)) == FIELDS
    assert BatchRecord.from_json(line) == record


def test_older_lines_without_every_key_still_read() -> None:
    rec = BatchRecord.from_json(
        '{"image": "x.png", "task": "query", "answer": "hi", "error": null}'
    )
    assert rec.answer == "hi" and rec.ok and rec.usage is None and rec.detections is None
    # A detect line written before `dropped` existed: unknown (None), not "nothing dropped".
    old = BatchRecord.from_json('{"image": "y.png", "task": "detect", "detections": []}')
    assert old.dropped is None and old.detections == []
    with pytest.raises(ValueError):
        BatchRecord.from_json('{"task": "query"}')


def test_read_records_keeps_the_last_line_per_image_and_skips_broken_ones(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    first = BatchRecord("a.png", "query", "q", error=RecordError("TimeoutError", "slow"))
    second = BatchRecord("a.png", "query", "q", answer="ok")
    out.write_text(first.to_json() + "\n" + '{"image": "b.png", "tas' + "\n" + second.to_json())
    records = read_records(out)
    assert list(records) == ["a.png"] and records["a.png"] == second


def test_engine_writes_one_shape_per_task_with_usage_from_the_wire(
    tmp_path: Path, emulator: Emulator
) -> None:
    img = tmp_path / "scene.png"
    img.write_bytes(make_scene(3, size=(160, 120), n_shapes=2).to_png_bytes())
    model = vlgate.create("openai/qwen2.5-vl-7b", api_key=KEY, api_base=emulator.openai_base)
    lines: list[dict[str, object]] = []
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    for kind in ("query", "detect", "json"):
        out = tmp_path / f"{kind}.jsonl"
        task = Task(kind, "shapes", schema if kind == "json" else None)  # type: ignore[arg-type]
        asyncio.run(run_batch(model, [img], task, out))
        lines.append(json.loads(out.read_text()))
    assert [set(line) for line in lines] == [FIELDS, FIELDS, FIELDS]
    query, detect, as_json = lines
    assert query["answer"] and query["detections"] is None and query["dropped"] is None
    assert detect["answer"] is None and isinstance(detect["detections"], list)
    assert detect["image_size"] == [160, 120]
    # Two shapes: each is a box, or (the emulator's noise cut the answer inside it) dropped.
    assert len(detect["detections"]) + detect["dropped"] == 2  # type: ignore[arg-type,operator]
    assert as_json["json"] == {"count": 2} and as_json["dropped"] is None
    # Grounding and JSON lines carry the answer's model, usage and attempts, as query lines do.
    sent = [r for r in emulator.requests if r.status == 200]
    assert len(sent) == 3
    for line in lines:
        assert line["attempts"] == 1 and line["model"] == "qwen2.5-vl-7b"
        assert line["usage"]["input_tokens"] > 0  # type: ignore[index]
