"""Provider Batch APIs on the wire: OpenAI's /v1/files + /v1/batches against the emulator.

Every result is checked against what the emulator received for that very image (distinct
sizes identify the images), and the lifecycle against the emulator's batch state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

import vlgate
from vlgate.batches import ItemFacts, combine
from vlgate.providers._batch import CUSTOM_ID, BatchStatus
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene
from vlgate.tokens import cost_of

from .conftest import KEY


def make(emu: Emulator, model: str = "openai/gpt-4o", **kw: Any) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.openai_base)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create(model, **kw)


def scenes(n: int, base: tuple[int, int] = (300, 200)) -> list[bytes]:
    """``n`` distinct JPEG scenes; image ``i`` is ``base + i`` pixels wide and high."""
    return [make_scene(i, size=(base[0] + i, base[1] + i)).to_jpeg_bytes() for i in range(n)]


class Size(BaseModel):
    width: int
    height: int


def line_requests(emu: Emulator) -> list[Any]:
    return [r for r in emu.requests if r.batch is not None]


def test_fifty_images_each_result_matched_to_its_image_at_batch_price(emulator: Emulator) -> None:
    model = make(emulator)
    job = model.submit_batch(scenes(50), "How big is the image?", task="json", schema=Size)
    assert isinstance(job, vlgate.BatchJob) and len(job) == 50
    assert emulator.batches.uploads == 1
    upload = next(r for r in emulator.requests if r.path == "/v1/files")
    assert upload.body["purpose"] == "batch" and upload.body["filename"].endswith(".jsonl")
    assert upload.headers["authorization"] == f"Bearer {KEY}"
    status = job.wait(poll_interval=0.01, timeout=60)
    assert status.state == "completed" and (status.total, status.completed) == (50, 50)
    results = job.results()
    assert [(r.width, r.height) for r in results] == [(300 + i, 200 + i) for i in range(50)]
    # What arrived: one chat-completions body per line, each with its own JPEG, declared so.
    lines = line_requests(emulator)
    assert len(lines) == 50
    assert sorted(r.images[0].size for r in lines) == [(300 + i, 200 + i) for i in range(50)]
    assert all(r.images[0].declared_mime == r.images[0].actual_mime == "image/jpeg" for r in lines)
    assert all(r.body["response_format"]["type"] == "json_schema" for r in lines)
    # The output file is not in input order (as real services): matching is by custom_id.
    (pid,) = job.provider_ids
    out_file = emulator.batches.files[emulator.batches.jobs[pid].output_file_id]
    order = [json.loads(line)["custom_id"] for line in out_file.data.splitlines()]
    assert order != sorted(order, key=lambda c: int(c[1:].split("-")[0]))
    # Cost: the provider's token counts at half the live price.
    usage = job.usage
    assert usage.requests == 50 and usage.input_tokens > 0
    live = cost_of(model.route, usage)
    assert live is not None and usage.cost == pytest.approx(live * 0.5)
    assert usage.discount == 0.5
    assert model.query(scenes(1)[0], "Describe.").usage.discount is None  # a live answer


def test_query_answers_in_input_order_with_usage(emulator: Emulator) -> None:
    model = make(emulator)
    emulator.batches.lines_per_step = 2
    job = model.submit_batch(scenes(5), "Describe the image.", temperature=0)
    seen: list[tuple[str, int]] = []
    job.wait(
        poll_interval=0.01, timeout=30, on_progress=lambda s: seen.append((s.state, s.completed))
    )
    assert seen[-1] == ("completed", 5)
    assert ("in_progress", 2) in seen and ("in_progress", 4) in seen
    answers = job.results()
    # Each answer is the one the emulator gave the line holding that image (sizes tell apart).
    said = {r.images[0].size: r.response_text for r in line_requests(emulator)}
    assert len(set(said.values())) == 5
    for i, answer in enumerate(answers):
        assert isinstance(answer, vlgate.Answer)
        assert answer == said[(300 + i, 200 + i)]
        assert answer.usage.cost is not None and answer.usage.requests == 1
        assert answer.usage.discount == 0.5
    assert all(r.body["temperature"] == 0 for r in line_requests(emulator))


def test_detect_boxes_come_back_in_original_pixels(emulator: Emulator) -> None:
    model = make(emulator)
    shots = [make_scene(40 + i, size=(3024, 4032) if i % 2 else (4032, 3024)) for i in range(4)]
    labels = [s.shapes[0].label for s in shots]
    # One target for the job: the first shape's label of image 0; other images may lack it.
    target = labels[0]
    job = model.submit_batch([s.to_jpeg_bytes() for s in shots], target, task="detect")
    job.wait(poll_interval=0.01, timeout=60)
    found = job.results()
    sent = {r.images[0].size for r in line_requests(emulator)}
    assert all(max(size) < 4032 for size in sent)  # pre-resized as a live call would be
    for scene, dets in zip(shots, found, strict=True):
        assert isinstance(dets, vlgate.Detections)
        assert dets.image_size == scene.image.size
        truth = [sh.box for sh in scene.shapes if sh.label == target]
        assert len(dets) == len(truth)
        for det, box in zip(sorted(dets, key=lambda d: d.xyxy), sorted(truth), strict=True):
            assert det.label == target
            assert det.xyxy == pytest.approx(box, abs=16)


def test_a_failed_line_is_that_items_error_not_a_crashed_job(emulator: Emulator) -> None:
    model = make(emulator)
    emulator.script("gpt-4o", ["ok", "500", "ok", "429"])
    job = model.submit_batch(scenes(5), "Describe the image.")
    status = job.wait(poll_interval=0.01, timeout=30)
    assert (status.state, status.completed, status.failed) == ("completed", 3, 2)
    results = job.results()
    assert isinstance(results[1], vlgate.ProviderError) and results[1].status == 500
    assert isinstance(results[3], vlgate.RateLimitError)
    assert [isinstance(r, vlgate.Answer) for r in results] == [True, False, True, False, True]


def test_cancel_keeps_answered_items_and_errors_the_rest(emulator: Emulator) -> None:
    model = make(emulator)
    emulator.batches.auto = False
    emulator.batches.lines_per_step = 2
    job = model.submit_batch(scenes(6), "Describe the image.")
    (jid,) = job.provider_ids
    emulator.batches.advance(jid, steps=2)  # validated, then 2 lines answered
    assert job.status().state == "in_progress"
    assert job.cancel().state == "cancelling"
    emulator.batches.advance(jid)
    status = job.status()
    assert (status.state, status.completed, status.failed) == ("cancelled", 2, 4)
    results = job.results()
    assert [isinstance(r, vlgate.Answer) for r in results] == [True, True] + [False] * 4
    assert "batch_cancelled" in str(results[5])


def test_expired_job(emulator: Emulator) -> None:
    model = make(emulator)
    emulator.batches.auto = False
    job = model.submit_batch(scenes(3), "Describe the image.")
    emulator.batches.expire(job.provider_ids[0])
    status = job.wait(poll_interval=0.01, timeout=10)
    assert status.state == "expired" and status.failed == 3
    assert all("batch_expired" in str(r) for r in job.results())


def test_results_before_the_end_is_a_config_error(emulator: Emulator) -> None:
    model = make(emulator)
    emulator.batches.auto = False
    job = model.submit_batch(scenes(2), "Describe the image.")
    with pytest.raises(vlgate.ConfigError, match="wait"):
        job.results()
    with pytest.raises(vlgate.TimeoutError):
        job.wait(poll_interval=0.01, timeout=0.05)


def test_resume_with_a_new_model_object_maps_boxes(emulator: Emulator) -> None:
    shots = [make_scene(70 + i, size=(2000 + 10 * i, 1500)) for i in range(3)]
    target = shots[0].shapes[0].label
    job = make(emulator).submit_batch([s.to_jpeg_bytes() for s in shots], target, task="detect")
    saved = job.id
    again = vlgate.BatchJob.resume(saved, make(emulator))
    assert again.provider_ids == job.provider_ids and again.task == "detect" and len(again) == 3
    again.wait(poll_interval=0.01, timeout=30)
    for scene, dets in zip(shots, again.results(), strict=True):
        assert dets.image_size == scene.image.size
        truth = sorted(sh.box for sh in scene.shapes if sh.label == target)
        assert [d.xyxy for d in sorted(dets, key=lambda d: d.xyxy)] == [
            pytest.approx(b, abs=12) for b in truth
        ]
    with pytest.raises(vlgate.ConfigError, match="submitted to openai/gpt-4o"):
        vlgate.BatchJob.resume(saved, make(emulator, "openai/gpt-4o-mini"))
    with pytest.raises(vlgate.ConfigError, match="not a vlgate batch id"):
        vlgate.BatchJob.resume("batch_123", make(emulator))


def test_limits_split_into_several_jobs_one_id(emulator: Emulator) -> None:
    model = make(emulator)
    job = model.submit_batch(scenes(7), "How big?", task="json", schema=Size, max_requests=3)
    assert len(job.provider_ids) == 3 and emulator.batches.uploads == 3
    job.wait(poll_interval=0.01, timeout=30)
    assert [r.width for r in job.results()] == [300 + i for i in range(7)]
    # A byte cap: each line is about 8 KB (a JPEG and a schema), so 20 KB jobs hold two.
    capped = model.submit_batch(scenes(4), "How big?", task="json", schema=Size, max_bytes=20_000)
    assert len(capped.provider_ids) == 2
    for pid in capped.provider_ids:
        uploaded = emulator.batches.files[emulator.batches.jobs[pid].input_file_id].data
        assert 8_000 < len(uploaded) <= 20_000 and uploaded.count(b"\n") == 2
    capped.wait(poll_interval=0.01, timeout=30)
    assert [r.width for r in capped.results()] == [300 + i for i in range(4)]
    with pytest.raises(vlgate.ConfigError, match="over the batch limit"):
        model.submit_batch(scenes(1), "How big?", max_bytes=100)


def test_bad_input_raises_before_anything_is_sent(emulator: Emulator) -> None:
    model = make(emulator)
    with pytest.raises(vlgate.ImageError):
        model.submit_batch([scenes(1)[0], b"not an image"], "Describe.")
    with pytest.raises(vlgate.ConfigError):
        model.submit_batch(scenes(1), "Describe.", task="classify")  # type: ignore[arg-type]
    with pytest.raises(vlgate.ConfigError):
        model.submit_batch(scenes(1), "  ")
    with pytest.raises(vlgate.ConfigError, match="Batch API"):
        vlgate.create("ollama/qwen2.5vl:7b", api_base=emulator.ollama_base).submit_batch(
            scenes(1), "Describe."
        )
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("litellm/openai/gpt-4o", {"api_key": KEY}),
        ("litellm_proxy/vision", {"api_key": KEY, "family": "gpt", "service": "openai"}),
        ("vllm/Qwen/Qwen2.5-VL-7B-Instruct", {}),
    ],
)
def test_routes_without_a_batch_api_say_which_have_one(
    emulator: Emulator, model: str, options: dict[str, Any]
) -> None:
    vl = vlgate.create(model, api_base=emulator.openai_base, **options)
    with pytest.raises(vlgate.ConfigError, match=r"openai/, anthropic/ and gemini/"):
        vl.submit_batch(scenes(1), "Describe.")
    assert emulator.requests == []


def test_emulator_rejects_a_bad_input_file_with_line_errors(emulator: Emulator) -> None:
    import urllib.request

    def call(path: str, data: bytes, ctype: str) -> tuple[int, Any]:
        req = urllib.request.Request(
            emulator.url + path,
            data=data,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": ctype},
        )
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def upload(name: str, content: bytes) -> tuple[int, Any]:
        b = "XyZ"
        body = (
            (
                f'--{b}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
                f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'
            ).encode()
            + content
            + f"\r\n--{b}--\r\n".encode()
        )
        return call("/v1/files", body, f"multipart/form-data; boundary={b}")

    status, err = upload("input.csv", b"{}")
    assert status == 400 and "jsonl" in err["error"]["message"]
    good = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}
    lines = [good, {**good, "method": "GET", "custom_id": "b"}, {**good}]
    status, file = upload("in.jsonl", b"\n".join(json.dumps(x).encode() for x in lines))
    assert status == 200 and file["purpose"] == "batch"
    status, job = call(
        "/v1/batches",
        json.dumps(
            {
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }
        ).encode(),
        "application/json",
    )
    assert status == 200 and job["status"] == "validating"
    emulator.batches.advance(job["id"])
    assert emulator.batches.state(job["id"]) == "failed"
    problems = emulator.batches.jobs[job["id"]].errors
    assert {(p["code"], p["line"]) for p in problems} == {
        ("invalid_method", 2),
        ("duplicate_custom_id", 3),
    }


def test_a_line_the_live_endpoint_rejects_is_an_error_line(emulator: Emulator) -> None:
    """A hand-made input file: one good line, one whose image is not base64, one with no
    messages. The job completes; the two bad lines are 400s in the error file."""
    model = make(emulator)
    api = model._primary.provider.batch_api()
    assert api is not None
    from vlgate.image import Image
    from vlgate.planning import build_request

    engine = model._primary
    request = build_request(
        engine.route, engine.config, [engine.encode(Image.load(scenes(1)[0]))], "Describe.", {}
    )
    body = json.loads(api.encode("x", request).data)["body"]
    bad_image = json.loads(json.dumps(body))
    bad_image["messages"][0]["content"][0]["image_url"]["url"] = "data:image/png;base64,@@@"
    lines = [
        {"custom_id": "i0-300x200-300x200", "body": body},
        {"custom_id": "i1-300x200-300x200", "body": bad_image},
        {"custom_id": "i2-300x200-300x200", "body": {"model": "gpt-4o"}},
    ]
    from vlgate.batches import BatchJob, _Ref
    from vlgate.providers._batch import BatchLine
    from vlgate.runtime.loop import run_sync

    encoded = [
        BatchLine(
            x["custom_id"],
            json.dumps({**x, "method": "POST", "url": "/v1/chat/completions"}).encode(),
        )
        for x in lines
    ]
    job_id = run_sync(api.submit(encoded, display_name="hand made"))
    job = BatchJob(model, _Ref("openai", "gpt-4o", (job_id,), "query", None, 3))
    status = job.wait(poll_interval=0.01, timeout=30)
    assert (status.state, status.completed, status.failed) == ("completed", 1, 2)
    first, second, third = job.results()
    assert isinstance(first, vlgate.Answer)
    assert isinstance(second, vlgate.ProviderError) and second.status == 400
    assert "base64" in str(second)
    assert isinstance(third, vlgate.ProviderError) and "messages" in str(third)
    statuses = [r.status for r in line_requests(emulator)]
    assert statuses == [200, 400, 400]


def test_emulator_lists_jobs_and_caps_uploads(emulator: Emulator) -> None:
    model = make(emulator)
    first = model.submit_batch(scenes(1), "Describe.")
    second = model.submit_batch(scenes(1), "Describe.")
    import urllib.request

    req = urllib.request.Request(
        emulator.openai_base + "/batches?limit=1", headers={"Authorization": f"Bearer {KEY}"}
    )
    with urllib.request.urlopen(req) as resp:
        page = json.loads(resp.read())
    assert page["has_more"] is True and len(page["data"]) == 1
    assert page["data"][0]["id"] in (first.provider_ids[0], second.provider_ids[0])
    emulator.batches.max_file_bytes = 1000
    with pytest.raises(vlgate.ProviderError, match="File is too large") as info:
        model.submit_batch(scenes(1), "Describe.")
    assert info.value.status == 400
    bad = urllib.request.Request(
        emulator.openai_base + "/batches", headers={"Authorization": "Bearer x"}
    )
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(bad)
    assert denied.value.code == 401


def test_custom_ids_carry_the_facts_resume_needs() -> None:
    facts = ItemFacts(49_999, (99_999, 1), (2048, 1))
    assert CUSTOM_ID.fullmatch(facts.custom_id)
    assert ItemFacts.parse(facts.custom_id) == facts
    assert ItemFacts.parse("batch-line-7") is None
    parts = [BatchStatus("completed", 2, 2), BatchStatus("failed", 3, 0, 0, errors=("line 1: x",))]
    both = combine(parts)
    assert (both.state, both.total, both.errors) == ("failed", 5, ("line 1: x",))


async def test_async_twins_on_the_callers_loop(emulator: Emulator) -> None:
    model = make(emulator)
    emulator.batches.lines_per_step = 1
    job = await model.asubmit_batch(scenes(3), "How big?", task="json", schema=Size)
    polled: list[int] = []
    status = await job.wait_async(
        poll_interval=0.01, on_progress=lambda s: polled.append(s.completed)
    )
    assert status.done and polled[-1] == 3 and 1 in polled
    answers = await job.aanswers()
    assert all(isinstance(a, vlgate.Answer) and a.usage.discount == 0.5 for a in answers)
    assert [r.width for r in await job.aresults()] == [300, 301, 302]
    assert (await job.astatus()).state == "completed"
    assert (await job.acancel()).state == "completed"  # nothing left to cancel
    await model.astop()


def test_a_part_that_cannot_be_submitted_cancels_the_parts_before_it(emulator: Emulator) -> None:
    model = make(emulator)
    small = make_scene(1, size=(300, 200)).to_jpeg_bytes()
    big = make_scene(2, size=(1500, 1000)).to_jpeg_bytes()  # a far longer line
    emulator.batches.max_file_bytes = len(small) * 2  # the first part fits, the second not
    with pytest.raises(vlgate.ProviderError, match="File is too large"):
        model.submit_batch([small, big], "Describe.", max_requests=1)
    (job,) = emulator.batches.jobs.values()
    assert job.state == "cancelling"  # the part already running was cancelled, not left to bill
    assert [r.path for r in emulator.requests if r.method == "POST"] == [
        "/v1/files",
        "/v1/batches",
        "/v1/files",
        f"/v1/batches/{job.id}/cancel",
    ]


def test_resume_a_providers_own_job_id_with_the_task(emulator: Emulator) -> None:
    model = make(emulator)
    job = model.submit_batch(scenes(3), "How big?", task="json", schema=Size)
    (provider_id,) = job.provider_ids
    again = vlgate.BatchJob.resume(provider_id, make(emulator), task="json", schema=Size)
    again.wait(poll_interval=0.01, timeout=30)
    assert [(r.width, r.height) for r in again.results()] == [(300, 200), (301, 201), (302, 202)]


def test_the_openai_sdk_reads_the_emulators_batch_objects(emulator: Emulator) -> None:
    """The emulator's files and batches parse as the openai SDK's own types (strict enough to
    catch a missing field or a wrong literal), and vlgate's lines run there unchanged."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=emulator.openai_base, api_key=KEY, max_retries=0)
    model = make(emulator)
    job = model.submit_batch(scenes(2), "How big?", task="json", schema=Size)
    (provider_id,) = job.provider_ids
    batch = client.batches.retrieve(provider_id)
    assert batch.status == "in_progress" and batch.completion_window == "24h"
    assert batch.endpoint == "/v1/chat/completions" and batch.request_counts.total == 2
    emulator.batches.finish(provider_id)
    batch = client.batches.retrieve(provider_id)
    assert batch.status == "completed" and batch.output_file_id and batch.error_file_id is None
    assert client.files.retrieve(batch.input_file_id).purpose == "batch"
    lines = client.files.content(batch.output_file_id).text.splitlines()
    outputs = [json.loads(line) for line in lines]
    assert sorted(o["custom_id"] for o in outputs) == ["i0-300x200-300x200", "i1-301x201-301x201"]
    assert all(o["response"]["status_code"] == 200 and o["error"] is None for o in outputs)
    listed = client.batches.list(limit=5)
    assert [b.id for b in listed.data] == [provider_id]
    cancelled = model.submit_batch(scenes(1), "Describe.")
    assert client.batches.cancel(cancelled.provider_ids[0]).status == "cancelling"


def test_resume_in_a_new_process(emulator: Emulator) -> None:
    import subprocess
    import sys

    job = make(emulator).submit_batch(scenes(4), "How big?", task="json", schema=Size)
    script = (
        "import json, sys, vlgate\n"
        "model = vlgate.create('openai/gpt-4o', api_key=sys.argv[2], api_base=sys.argv[3])\n"
        "job = vlgate.BatchJob.resume(sys.argv[1], model)\n"
        "job.wait(poll_interval=0.01, timeout=60)\n"
        "print(json.dumps([[r['width'], r['height']] for r in job.results()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, job.id, KEY, emulator.openai_base],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == [[300 + i, 200 + i] for i in range(4)]
    assert emulator.batches.uploads == 1


def test_a_generator_is_submitted_job_by_job_as_it_is_read(emulator: Emulator) -> None:
    """Each job is uploaded once full: memory holds one job, not the whole batch."""
    model = make(emulator)
    images = scenes(24)
    uploads_seen: list[int] = []

    def frames():  # type: ignore[no-untyped-def]
        for data in images:
            uploads_seen.append(emulator.batches.uploads)
            yield data

    job = model.submit_batch(frames(), "How big?", task="json", schema=Size, max_requests=2)
    assert len(job.provider_ids) == 12 and len(job) == 24
    assert uploads_seen[0] == 0 and uploads_seen[-1] > 0  # uploads began before the last read
    job.wait(poll_interval=0.01, timeout=60)
    assert [r.width for r in job.results()] == [300 + i for i in range(24)]
    # A bad image late in a generator: the parts already submitted are cancelled.
    emulator.clear()
    late_bad = iter([*scenes(12), b"not an image"])
    with pytest.raises(vlgate.ImageError):
        model.submit_batch(late_bad, "Describe.", max_requests=2)
    cancels = [r for r in emulator.requests if r.path.endswith("/cancel")]
    posted = [r for r in emulator.requests if r.path == "/v1/batches" and r.method == "POST"]
    assert posted and len(cancels) == len(posted)
