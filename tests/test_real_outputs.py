"""Issue 20: real model outputs quoted from public sources (model READMEs, cookbooks, docs
transcripts, issue threads; the source of each is in tests/data/real_outputs.json) parse to the
values their source's convention gives."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from vlgate.grounding import parse_detections, parse_points

DATA = json.loads((Path(__file__).parent / "data" / "real_outputs.json").read_text("utf-8"))
CASES: list[dict[str, Any]] = DATA["cases"]


def _tolerance(case: dict[str, Any]) -> float:
    # 0.2 % of the image: covers /999 vs /1000 (Qwen3-VL mobile cookbook) and rounding.
    return max(case["image_size"]) * 0.002


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_real_output(case: dict[str, Any]) -> None:
    size = tuple(case["image_size"])
    seen = tuple(case["model_input_size"]) if "model_input_size" in case else None
    parse = parse_points if case["kind"] == "points" else parse_detections
    found = parse(case["answer"], case["convention"], size, seen)  # type: ignore[arg-type]
    tol = _tolerance(case)
    got = [(r.label, r.xy if case["kind"] == "points" else r.xyxy) for r in found]
    want = [(label, pytest.approx(tuple(v), abs=tol)) for label, v in case["expected"]]
    assert got == want, case["source"]
    assert found.dropped == case["dropped"]


def test_the_set_is_broad() -> None:
    families = Counter(c["family"] for c in CASES)
    assert len(CASES) >= 40 and len(families) >= 12, families
    assert {c["kind"] for c in CASES} == {"boxes", "points"}
    assert all(c["source"].startswith("https://") for c in CASES)
