"""``vlgate demo``: the whole path end to end, offline, with no key.

Starts the in-process provider emulator, draws a scene of coloured shapes with known boxes, asks
an emulated Qwen2.5-VL model for a caption, a count and the boxes (over the real HTTP wire, with
the real encoding and coordinate mapping), scores the boxes against the ground truth and writes
an annotated PNG.

Example:
    >>> result = run_demo("vlgate-demo.png")            # doctest: +SKIP
    >>> result.mean_iou > 0.8                           # doctest: +SKIP
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .grounding import Detections

__all__ = ["DEMO_MODEL", "DemoResult", "iou", "run_demo"]

DEMO_MODEL = "openai/qwen2.5-vl-7b"
"""An OpenAI-compatible Qwen2.5-VL: the family whose boxes need the resize mapping."""


@dataclass
class DemoResult:
    """What the demo did: the model, its answers, the boxes and how well they match."""

    model: str
    endpoint: str
    image_size: tuple[int, int]
    caption: str
    question: str
    count_answer: str
    true_count: int
    detections: Detections
    ground_truth: list[tuple[str, tuple[int, int, int, int]]]
    ious: list[float] = field(default_factory=list)
    """For each ground-truth shape, the best IoU of any detected box."""
    output: Path | None = None
    requests: int = 0

    @property
    def mean_iou(self) -> float:
        return sum(self.ious) / len(self.ious) if self.ious else 0.0


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes.

    Example:
        >>> iou((0, 0, 10, 10), (5, 0, 15, 10))
        0.3333333333333333
    """
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def run_demo(
    out_path: str | Path | None = "vlgate-demo.png",
    *,
    seed: int = 7,
    size: tuple[int, int] = (1280, 720),
) -> DemoResult:
    """Run the offline demo; write the annotated image to ``out_path`` unless it is ``None``.

    Needs the ``emulator`` extra (aiohttp), which the ``cli`` extra includes.
    """
    from .model import create
    from .testing import Emulator
    from .testing.scenes import make_scene

    scene = make_scene(seed, size=size, n_shapes=4)
    question = "How many shapes are there?"
    with Emulator(api_key="emu-key") as emu:
        model = create(DEMO_MODEL, api_key="emu-key", api_base=emu.openai_base, max_retries=0)
        with model:
            caption = model.caption(scene.image)
            count = model.query(scene.image, question)
            found = model.detect(scene.image, "shapes")
        requests = len(emu.requests)
        endpoint = emu.openai_base
    truth = [(s.label, s.box) for s in scene.shapes]
    ious = [max((iou(box, d.xyxy) for d in found), default=0.0) for _, box in truth]
    written: Path | None = None
    if out_path is not None:
        written = Path(out_path)
        written.parent.mkdir(parents=True, exist_ok=True)
        found.annotate(scene.image).save(written, format="PNG")
    return DemoResult(
        model=DEMO_MODEL,
        endpoint=endpoint,
        image_size=scene.size,
        caption=str(caption),
        question=question,
        count_answer=str(count),
        true_count=len(scene.shapes),
        detections=found,
        ground_truth=truth,
        ious=ious,
        output=written,
        requests=requests,
    )
