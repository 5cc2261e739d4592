"""Provider Batch APIs on the Anthropic and Gemini protocols, on the wire (the emulator's
Message Batches and Gemini batch mode): every result matched to its own image, boxes in
original pixels, cost at the batch price, per-item failures, cancel, expiry, resume, and what
arrives at the server."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

import vlgate
from vlgate.batchrecord import read_records
from vlgate.cli import app
from vlgate.testing import Emulator
from vlgate.testing.batches_native import NativeBatches, native_batches
from vlgate.testing.scenes import make_scene
from vlgate.tokens import cost_of

KEY = "emu-key"
MODELS = {"anthropic": "anthropic/claude-sonnet-4-6", "gemini": "gemini/gemini-2.5-flash"}


def _base(emu: Emulator, protocol: str) -> str:
    return emu.anthropic_base if protocol == "anthropic" else emu.gemini_base


def _model(emu: Emulator, protocol: str, **options: Any) -> vlgate.VlModel:
    return vlgate.create(
        MODELS[protocol], api_key=KEY, api_base=_base(emu, protocol), backoff_base=0, **options
    )


def _png(scene_image: PILImage.Image) -> bytes:
    buf = io.BytesIO()
    scene_image.save(buf, format="PNG")
    return buf.getvalue()


# 50 distinct scenes: sizes differ (every answer names its own), a few big enough to be
# pre-resized (boxes must come back in original pixels), every fifth sent as PNG.
SCENES = [
    make_scene(300 + i, size=(2400, 1800) if i % 10 == 3 else (320 + 8 * i, 240 + 4 * i))
    for i in range(50)
]
IMAGES: list[Any] = [
    _png(s.image) if i % 5 == 0 else s.to_jpeg_bytes() for i, s in enumerate(SCENES)
]


SIZE = {
    "type": "object",
    "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
    "required": ["width", "height"],
}
"""A JSON answer naming the size of the image the model received: tells the images apart."""

# The scenes sent as they are (the emulated model names the size it receives).
SMALL = [0, 1, 2, 4, 5, 6, 7, 8]
SMALL_IMAGES = [IMAGES[i] for i in SMALL]
SMALL_SCENES = [SCENES[i] for i in SMALL]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, noise=False) as e:
        yield e


@pytest.fixture
def desk(emu: Emulator) -> NativeBatches:
    return native_batches(emu)


def _close(truth: tuple[int, ...], got: tuple[float, ...], tol: float) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(truth, got, strict=True))


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_fifty_image_detect_job_matches_every_image_at_the_batch_price(
    emu: Emulator, protocol: str
) -> None:
    model = _model(emu, protocol)
    job = model.submit_batch(IMAGES, "shape", task="detect")
    assert job.id.startswith("vlb1_") and len(job) == 50
    status = job.wait(poll_interval=0.01, timeout=60)
    assert status.state == "completed" and status.completed == 50
    results = job.results()
    assert len(results) == 50
    total = 0.0
    for i, (scene, dets) in enumerate(zip(SCENES, results, strict=True)):
        assert isinstance(dets, vlgate.Detections), (i, dets)
        assert dets.image_size == scene.size
        # Boxes in pixels of the original image (a 2400x1800 scene was sent smaller).
        tol = 12 if max(scene.size) > 2000 else 4
        truth = sorted(s.box for s in scene.shapes)
        got = sorted(d.xyxy for d in dets)
        assert len(got) == len(truth), (i, got, truth)
        for t, g in zip(truth, got, strict=True):
            assert _close(t, g, tol), (i, t, g)
        usage = dets.answer.usage
        live = cost_of(model.route, vlgate.Usage(usage.input_tokens, usage.output_tokens))
        assert live is not None and usage.cost == pytest.approx(live * 0.5)
        total += usage.cost
    assert job.usage.cost == pytest.approx(total)
    # What arrived: one create call, then each item as its own request (image + declared MIME).
    items = [r for r in emu.requests if r.batch is not None]
    assert len(items) == 50
    sent = sorted((r.images[0].size, r.images[0].declared_mime) for r in items)
    for r in items:
        (img,) = r.images
        assert img.declared_mime == img.actual_mime
    assert sum(1 for _, mime in sent if mime == "image/png") == 10
    # The big scenes are sent at the size a live call sends them (the same pre-resize).
    # (the small scenes are all under 720 px wide)
    big = {size for r in items if (size := r.images[0].size) is not None and size[0] >= 720}
    model.query(IMAGES[3], "Describe the image")
    assert big == {emu.last.images[0].size}
    if protocol == "anthropic":
        assert all(max(size or (0, 0)) <= 1568 for size in big)


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_json_task_answers_each_image_size(emu: Emulator, protocol: str) -> None:
    model = _model(emu, protocol)
    job = model.submit_batch(
        SMALL_IMAGES, "Give the image width and height.", task="json", schema=SIZE
    )
    job.wait(poll_interval=0.01, timeout=30)
    for scene, got in zip(SMALL_SCENES, job.results(), strict=True):
        assert (got["width"], got["height"]) == scene.size


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_a_failed_item_is_its_error_never_a_crashed_job(emu: Emulator, protocol: str) -> None:
    model = _model(emu, protocol)
    name = model.route.model
    emu.script(name, ["ok", "429", "ok"])  # the second item: rate limited inside the batch
    job = model.submit_batch(IMAGES[:3], "The image size?", task="json", schema=SIZE)
    job.wait(poll_interval=0.01, timeout=30)
    first, second, third = job.results()
    assert isinstance(second, vlgate.RateLimitError)
    assert (first["width"], first["height"]) == SCENES[0].size
    assert (third["width"], third["height"]) == SCENES[2].size


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_cancel_keeps_answered_items_and_reports_the_rest(
    emu: Emulator, desk: NativeBatches, protocol: str
) -> None:
    desk.auto, desk.lines_per_step = False, 2
    model = _model(emu, protocol)
    job = model.submit_batch(IMAGES[:5], "Describe the image")
    (batch_id,) = job.provider_ids
    desk.advance(batch_id, steps=2)  # Gemini: PENDING -> RUNNING; then 2 answered (Anthropic: 4)
    status = job.cancel()
    assert status.state in ("cancelling", "cancelled")
    desk.finish(batch_id)
    assert job.status().state == "cancelled"
    results = job.results()
    answered = [r for r in results if isinstance(r, vlgate.Answer)]
    assert len(answered) == (4 if protocol == "anthropic" else 2)
    for r in results:
        if not isinstance(r, vlgate.Answer):
            assert isinstance(r, vlgate.ProviderError) and "cancelled" in str(r)


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_expired_job_reports_unanswered_items(
    emu: Emulator, desk: NativeBatches, protocol: str
) -> None:
    desk.auto = False
    model = _model(emu, protocol)
    job = model.submit_batch(IMAGES[:3], "Describe the image")
    desk.expire(job.provider_ids[0])
    assert job.status().state == "expired"
    assert all(isinstance(r, vlgate.ProviderError) for r in job.results())


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_resume_with_a_fresh_model_object(
    emu: Emulator, desk: NativeBatches, protocol: str
) -> None:
    desk.auto = False
    job = _model(emu, protocol).submit_batch(IMAGES[:4], "shape", task="detect")
    saved = job.id
    desk.finish()
    again = vlgate.BatchJob.resume(saved, _model(emu, protocol))
    assert again.status().done
    for scene, dets in zip(SCENES[:4], again.results(), strict=True):
        assert isinstance(dets, vlgate.Detections) and len(dets) == len(scene.shapes)


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_headers_and_keys_as_live_calls(emu: Emulator, protocol: str) -> None:
    model = _model(emu, protocol)
    job = model.submit_batch(IMAGES[:2], "Describe the image")
    job.wait(poll_interval=0.01, timeout=30)
    calls = [r for r in emu.requests if r.batch is None]
    assert calls
    for r in calls:
        if protocol == "anthropic":
            assert r.headers["x-api-key"] == KEY
            assert r.headers["anthropic-version"] == "2023-06-01"
        else:
            assert r.headers["x-goog-api-key"] == KEY
            assert "key" not in r.query  # never in the URL
    wrong = vlgate.create(MODELS[protocol], api_key="nope", api_base=_base(emu, protocol))
    with pytest.raises(vlgate.AuthError):
        wrong.submit_batch(IMAGES[:1], "Describe the image")


def test_gemini_input_over_the_inline_cap_goes_through_the_files_api(emu: Emulator) -> None:
    # Eight noisy 1000x1000 PNGs: ~3 MB each, sent as they are; over 20 MB inline in base64.
    rng = np.random.default_rng(5)
    pngs = [
        _png(PILImage.fromarray(rng.integers(0, 256, (1000, 1000 - i, 3), dtype=np.uint8)))
        for i in range(8)
    ]
    model = _model(emu, "gemini")
    job = model.submit_batch(pngs, "Describe the image")
    assert len(job.provider_ids) == 1  # one job, not split
    create = next(r for r in emu.requests if r.path.endswith(":batchGenerateContent"))
    file_name = create.body["batch"]["inputConfig"]["fileName"]
    assert file_name.startswith("files/") and "requests" not in create.body["batch"]["inputConfig"]
    uploads = [r for r in emu.requests if r.path.startswith("/upload/")]
    assert [r.headers.get("x-goog-upload-command") for r in uploads] == [
        "start",
        "upload, finalize",
    ]
    assert all(r.headers["x-goog-api-key"] == KEY for r in uploads)
    job.wait(poll_interval=0.01, timeout=60)
    results = job.results()
    assert all(isinstance(r, vlgate.Answer) for r in results), results
    items = sorted((r.images[0].size, r.images[0].declared_mime) for r in emu.requests if r.batch)
    assert items == sorted(((1000 - i, 1000), "image/png") for i in range(8))


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_split_across_jobs_keeps_input_order(emu: Emulator, protocol: str) -> None:
    model = _model(emu, protocol)
    job = model.submit_batch(
        SMALL_IMAGES[:5], "The image size?", task="json", schema=SIZE, max_requests=2
    )
    assert len(job.provider_ids) == 3
    creates = [r for r in emu.requests if r.batch is None and r.method == "POST"]
    assert len(creates) == 3
    job.wait(poll_interval=0.01, timeout=30)
    for scene, got in zip(SMALL_SCENES[:5], job.results(), strict=True):
        assert (got["width"], got["height"]) == scene.size


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
@pytest.mark.usefixtures("cli_isolated")
def test_cli_provider_batch_rerun_resumes_the_same_job(
    tmp_path: Path, emu: Emulator, desk: NativeBatches, protocol: str
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.jpg").write_bytes(IMAGES[i + 1])
    out = tmp_path / "out.jsonl"
    cli = [
        "batch",
        str(folder),
        "--detect",
        "shape",
        "-o",
        str(out),
        "-m",
        MODELS[protocol],
        "--api-base",
        _base(emu, protocol),
        "--provider-batch",
    ]
    env = {"ANTHROPIC_API_KEY": KEY, "GEMINI_API_KEY": KEY}
    desk.auto = False  # the job waits at the provider between the two runs
    first = CliRunner().invoke(app, cli, env=env)
    assert first.exit_code == 0, first.output
    assert "job: vlb1_" in first.output and not out.exists()
    desk.auto = True
    second = CliRunner().invoke(app, [*cli, "--wait", "--poll-interval", "0.01"], env=env)
    assert second.exit_code == 0, second.output
    creates = [r for r in emu.requests if r.batch is None and r.method == "POST"]
    assert len(creates) == 1  # resumed, not paid twice
    records = read_records(out)
    for i in range(3):
        rec = records[str(folder / f"s{i}.jpg")]
        assert rec.ok and rec.detections is not None
        assert len(rec.detections) == len(SCENES[i + 1].shapes)


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_a_withheld_answer_inside_a_batch_is_content_filtered(emu: Emulator, protocol: str) -> None:
    model = _model(emu, protocol)
    emu.script(model.route.model, ["ok", "blocked"])
    job = model.submit_batch(SMALL_IMAGES[:2], "Describe the image")
    job.wait(poll_interval=0.01, timeout=30)
    first, second = job.results()
    assert isinstance(first, vlgate.Answer)
    assert isinstance(second, vlgate.ContentFilteredError)
    assert second.reason == ("refusal" if protocol == "anthropic" else "SAFETY")


@pytest.mark.parametrize("protocol", ["anthropic", "gemini"])
def test_point_task_points_inside_each_images_shapes(emu: Emulator, protocol: str) -> None:
    picks = [1, 3, 13]  # two of them pre-resized: points come back in original pixels
    model = _model(emu, protocol)
    job = model.submit_batch([IMAGES[i] for i in picks], "shape", task="point")
    job.wait(poll_interval=0.01, timeout=30)
    for i, points in zip(picks, job.results(), strict=True):
        assert isinstance(points, vlgate.Points) and points.image_size == SCENES[i].size
        assert len(points) == len(SCENES[i].shapes)
        for p in points:
            x, y = p.xy
            assert any(
                b[0] - 8 <= x <= b[2] + 8 and b[1] - 8 <= y <= b[3] + 8
                for b in (s.box for s in SCENES[i].shapes)
            ), (i, p.xy)
