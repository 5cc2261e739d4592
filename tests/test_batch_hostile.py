"""Provider batches read what comes back as hostile: results files, job ids, statuses, the
CLI state file, and the emulator's own upload endpoint (issue 9's bar applied to issue 15).

Faults are injected at the emulator (``emu.batches.tamper_file`` / ``tamper_job``); the
assertions are on what vlgate returns and on what arrived at the emulator (nothing sent for a
bad id).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import vlgate
from vlgate.batches import BatchJob
from vlgate.cli import app
from vlgate.cli.batch_provider import state_path
from vlgate.errors import ConfigError, ProviderError, TimeoutError, VlgateError
from vlgate.providers import _batch
from vlgate.providers import _batch_openai as openai_batch
from vlgate.testing import Emulator
from vlgate.testing.batches_native import native_batches
from vlgate.testing.scenes import make_scene

SECRET = "sk-r1-HOSTILE-0123456789abcdef"


class Size(BaseModel):
    width: int
    height: int


@pytest.fixture
def emu() -> Any:
    with Emulator(api_key=SECRET) as e:
        yield e


def make(emu: Emulator, **kw: Any) -> vlgate.VlModel:
    return vlgate.create(
        "openai/gpt-4o", api_key=SECRET, api_base=emu.openai_base, backoff_base=0.0, **kw
    )


def scenes(n: int) -> list[bytes]:
    """Image ``i`` is ``300 + i`` by ``200 + i`` pixels: each answer names its image."""
    return [make_scene(i, size=(300 + i, 200 + i)).to_jpeg_bytes() for i in range(n)]


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def jsonl(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in entries)


def index_of(entry: dict[str, Any]) -> int:
    return int(entry["custom_id"][1:].split("-")[0])


def run_json(emu: Emulator, n: int, tamper: Callable[[str, bytes], bytes]) -> list[Any]:
    emu.batches.tamper_file = tamper
    job = make(emu).submit_batch(scenes(n), "How big is the image?", task="json", schema=Size)
    job.wait(poll_interval=0.01, timeout=60)
    results = job.results()
    assert len(results) == len(job) == n
    return results


def assert_own_answers(results: list[Any], skip: set[int] = frozenset()) -> None:  # type: ignore[assignment]
    for i, r in enumerate(results):
        if i in skip:
            continue
        assert isinstance(r, Size), (i, r)
        assert (r.width, r.height) == (300 + i, 200 + i)


# --- 1. results files -------------------------------------------------------------------------


def test_garbage_lines_foreign_ids_and_a_missing_line_give_typed_items_in_order(
    emu: Emulator,
) -> None:
    def tamper(kind: str, data: bytes) -> bytes:
        entries = lines_of(data)
        kept = [e for e in entries if index_of(e) != 2]  # image 2 has no result line
        forged = dict(kept[0], custom_id="i999999999-1x1-1x1")  # an index past the job
        negative = dict(kept[0], custom_id="i-1-1x1-1x1")  # not vlgate's pattern
        foreign = dict(kept[0], custom_id="../../etc")
        garbage = [
            b"not json at all",
            b"[1, 2, 3]",
            b'"a string"',
            b"42",
            b'{"custom_id": 5}',
            b'{"custom_id": "i1-301x201-301x201"',  # cut short
            b"\xff\xfe\x00 not utf-8",
            b"[" * 100_000,  # nested past the recursion limit
            b'{"custom_id": "i0-300x200-300x200", "response": "not an object"}',
        ]
        return b"\n".join(garbage) + b"\n" + jsonl([forged, negative, foreign, *kept])

    results = run_json(emu, 5, tamper)
    assert_own_answers(results, skip={0, 2})
    assert isinstance(results[2], ProviderError) and "no result" in str(results[2])
    # Image 0's broken line was a server error item; its real answer still wins.
    assert isinstance(results[0], Size) and (results[0].width, results[0].height) == (300, 200)


def test_duplicate_lines_keep_the_answer_and_shift_nothing(emu: Emulator) -> None:
    def tamper(kind: str, data: bytes) -> bytes:
        entries = lines_of(data)
        by_index = {index_of(e): e for e in entries}
        error_for_1 = {
            "custom_id": by_index[1]["custom_id"],
            "response": {"status_code": 500, "body": {"error": {"message": "boom"}}},
        }
        # An error line before image 1's answer, and image 3's answer twice.
        return jsonl([error_for_1, *entries, by_index[3]])

    results = run_json(emu, 5, tamper)
    assert_own_answers(results)


def test_huge_results_file_is_refused_not_held(emu: Emulator, monkeypatch: Any) -> None:
    # The cap is a limit, lowered so the test need not serve a gigabyte.
    monkeypatch.setattr(openai_batch, "RESULTS_MAX_BYTES", 200_000)

    def tamper(kind: str, data: bytes) -> bytes:
        return data + b"\n" * 10 + b" " * 500_000 + b"\n"

    emu.batches.tamper_file = tamper
    job = make(emu).submit_batch(scenes(2), "How big is the image?", task="json", schema=Size)
    job.wait(poll_interval=0.01, timeout=60)
    with pytest.raises(ProviderError, match="over 200,000 bytes") as info:
        job.results()
    assert not info.value.retryable


def test_huge_single_line_is_skipped_its_image_an_error(emu: Emulator, monkeypatch: Any) -> None:
    monkeypatch.setattr(_batch, "LINE_MAX_BYTES", 50_000)

    def tamper(kind: str, data: bytes) -> bytes:
        entries = lines_of(data)
        for e in entries:
            if index_of(e) == 1:
                e["padding"] = "x" * 100_000
        return jsonl(entries)

    results = run_json(emu, 3, tamper)
    assert_own_answers(results, skip={1})
    assert isinstance(results[1], ProviderError)


def test_non_finite_and_negative_token_counts_are_zero(emu: Emulator) -> None:
    def tamper(kind: str, data: bytes) -> bytes:
        out = []
        for n, e in enumerate(lines_of(data)):
            usage = e["response"]["body"]["usage"]
            usage["prompt_tokens"] = ["NaN", -1000, "12abc", 1e400][n % 4]
            usage["completion_tokens"] = -7
            out.append(json.dumps(e, allow_nan=True).encode().replace(b'"NaN"', b"NaN"))
        return b"\n".join(out) + b"\n"

    emu.batches.tamper_file = tamper
    job = make(emu).submit_batch(scenes(4), "Describe.")
    job.wait(poll_interval=0.01, timeout=60)
    answers = job.results()
    assert all(isinstance(a, vlgate.Answer) for a in answers)
    for a in answers:
        assert a.usage.input_tokens >= 0 and a.usage.output_tokens == 0
    assert job.usage.cost is None or job.usage.cost >= 0


# --- 2. job ids -------------------------------------------------------------------------------


def forge(**fields: Any) -> str:
    data = {"p": "openai", "m": "gpt-4o", "j": ["batch_x"], "t": "query", "q": None, "n": 1}
    data.update(fields)
    raw = json.dumps(data).encode()
    return "vlb1_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


HOSTILE_IDS = [
    "vlb1_" + "A" * 5_000_000,
    "vlb1_éé",
    "vlb1_" + base64.urlsafe_b64encode(b"[1, 2]").decode(),
    "vlb1_" + base64.urlsafe_b64encode(b'"x"').decode(),
    "vlb1_" + base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "vlb1_" + base64.urlsafe_b64encode(b"[" * 100_000).decode(),
    forge(n=-1),
    forge(n=0),
    forge(n=10**12),
    forge(n=True),
    forge(n="3"),
    forge(n=2.5),
    forge(j="batch_x"),
    forge(j=[]),
    forge(j=[1]),
    forge(j=["../files/file-1"]),
    forge(j=["batch_x?limit=1"]),
    forge(j=["batch_x#frag"]),
    forge(j=["batch%2F..%2Fx"]),
    forge(j=["batch x"]),
    forge(t="drop tables"),
    forge(q=["a"]),
    forge(p=None),
    forge(m=7),
    forge(p="anthropic"),
    forge(m="gpt-4o-mini"),
    forge(n=50_001),  # more than one OpenAI job holds
]


@pytest.mark.parametrize("job_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_job_ids_are_config_errors_and_nothing_is_sent(emu: Emulator, job_id: str) -> None:
    model = make(emu)
    with pytest.raises(ConfigError) as info:
        BatchJob.resume(job_id, model)
    assert len(str(info.value)) < 400
    assert emu.requests == []


@pytest.mark.parametrize(
    "pid", ["../files/x", "batch_1?x=1", "batch_1#x", "a b", "é", "", "x" * 500]
)
def test_hostile_provider_ids_with_task_are_refused(emu: Emulator, pid: str) -> None:
    with pytest.raises(ConfigError):
        BatchJob.resume(pid, make(emu), task="query")
    assert emu.requests == []


def test_a_provider_id_without_count_is_bounded_by_the_status(emu: Emulator) -> None:
    model = make(emu)

    def tamper(kind: str, data: bytes) -> bytes:
        entries = lines_of(data)
        return jsonl([*entries, dict(entries[0], custom_id="i999999999-1x1-1x1")])

    emu.batches.tamper_file = tamper
    job = model.submit_batch(scenes(3), "Describe.")
    job.wait(poll_interval=0.01, timeout=60)
    again = BatchJob.resume(job.provider_ids[0], model, task="query")
    answers = again.results()  # a list of 1e9 items before
    assert len(answers) == 3 and all(isinstance(a, vlgate.Answer) for a in answers)


# --- 3. status objects ------------------------------------------------------------------------


def test_unknown_state_is_polled_until_the_timeout(emu: Emulator) -> None:
    emu.batches.tamper_job = lambda job: {**job, "status": "weird_state"}
    model = make(emu, max_retries=0)
    job = model.submit_batch(scenes(1), "Describe.")
    with pytest.raises(TimeoutError):
        job.wait(poll_interval=0.05, timeout=0.5)


@pytest.mark.parametrize(
    "counts",
    [
        {"total": "3", "completed": "x", "failed": -4},
        {"total": float("inf"), "completed": None, "failed": [1]},
        "not an object",
        None,
        [],
    ],
)
def test_odd_request_counts_read_as_non_negative_ints(emu: Emulator, counts: Any) -> None:
    emu.batches.tamper_job = lambda job: {**job, "request_counts": counts, "errors": "odd"}
    model = make(emu)
    job = model.submit_batch(scenes(2), "Describe.")
    status = job.wait(poll_interval=0.01, timeout=60)
    assert status.done
    assert min(status.total, status.completed, status.failed, status.pending) >= 0
    assert len(job.results()) == 2


@pytest.mark.parametrize("file_id", ["../batches/batch_1", "file-1?x=1", "file-1#x", 7, ["x"]])
def test_output_file_id_with_path_characters_is_never_fetched(emu: Emulator, file_id: Any) -> None:
    model = make(emu)
    job = model.submit_batch(scenes(1), "Describe.")
    job.wait(poll_interval=0.01, timeout=60)
    emu.batches.tamper_job = lambda job: {**job, "output_file_id": file_id}
    with pytest.raises(ProviderError, match="output_file_id"):
        job.results()
    assert not [r for r in emu.requests if r.path.endswith("/content")]


# --- 5. keys ----------------------------------------------------------------------------------


def test_key_never_in_repr_id_errors_or_status(emu: Emulator, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="vlgate")

    def tamper(kind: str, data: bytes) -> bytes:
        entries = sorted(lines_of(data), key=index_of)
        leak = {
            "custom_id": entries[0]["custom_id"],
            "response": {
                "status_code": 401,
                "body": {"error": {"message": f"Incorrect API key provided: {SECRET}"}},
            },
        }
        return jsonl([leak, *entries[1:]]) + b"garbage " + SECRET.encode() + b"\n"

    emu.batches.tamper_file = tamper
    model = make(emu)
    job = model.submit_batch(scenes(3), "Describe.")
    status = job.wait(poll_interval=0.01, timeout=60)
    results = job.results()
    texts = [repr(job), job.id, repr(status), str(status.errors), caplog.text]
    for r in results:
        texts += [str(r), repr(r)]
        if isinstance(r, VlgateError):
            texts.append(repr(vars(r)))
    assert isinstance(results[0], VlgateError)
    assert not any(SECRET in t for t in texts)


# --- 4. the CLI state file --------------------------------------------------------------------


def write_scenes(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(scenes(n)):
        (folder / f"s{i}.jpg").write_bytes(data)


def cli(emu: Emulator, folder: Path, out: Path) -> Any:
    argv = ["batch", str(folder), "Describe.", "-o", str(out), "-m", "openai/gpt-4o"]
    argv += ["--api-base", emu.openai_base, "--provider-batch"]
    return CliRunner().invoke(app, argv, env={"OPENAI_API_KEY": SECRET})


@pytest.mark.usefixtures("cli_isolated")
@pytest.mark.parametrize(
    "damage",
    [
        "{not json",
        "\udcff",
        "[]",
        '{"jobs": []}',
        "JOB:" + forge(n=7),  # the right model, another job's image count
        "JOB:" + forge(m="gpt-4o-mini"),  # another model
        "JOB:vlb1_%%%",
    ],
)
def test_damaged_state_file_is_a_clear_message(tmp_path: Path, emu: Emulator, damage: str) -> None:
    folder, out = tmp_path / "imgs", tmp_path / "out.jsonl"
    write_scenes(folder, 2)
    emu.batches.auto = False
    first = cli(emu, folder, out.with_name("probe.jsonl"))  # learn the job key
    state = json.loads(state_path(out.with_name("probe.jsonl")).read_text())
    (key,) = state["jobs"]
    if damage.startswith("JOB:"):
        text = json.dumps({"version": 1, "jobs": {key: {"job_id": damage[4:]}}})
    else:
        text = damage
    state_path(out).write_text(text, encoding="utf-8", errors="surrogateescape")
    sent = len(emu.requests)
    result = cli(emu, folder, out)
    assert first.exception is None or isinstance(first.exception, SystemExit)
    assert result.exit_code != 0
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: ") and len(result.output) < 500
    assert len(emu.requests) == sent  # nothing sent
    assert SECRET not in state_path(out.with_name("probe.jsonl")).read_text()


# --- 6. the emulator's upload endpoint ----------------------------------------------------------


def upload(emu: Emulator, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        emu.openai_base + "/files",
        data=body,
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def multipart(file: bytes, purpose: bytes = b"batch", filename: str = "x.jsonl") -> bytes:
    b = b"--BND\r\n"
    return (
        b
        + b'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        + purpose
        + b"\r\n"
        + b
        + f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode()
        + b"Content-Type: application/jsonl\r\n\r\n"
        + file
        + b"\r\n--BND--\r\n"
    )


FORM = "multipart/form-data; boundary=BND"


def test_emulator_upload_refuses_hostile_bodies_with_400s(emu: Emulator) -> None:
    emu.batches.max_file_bytes = 10_000
    assert upload(emu, multipart(b"x" * 50_000), FORM)[0] == 400
    status, body = upload(emu, multipart(b"{}", purpose=b"\xff\xfe"), FORM)
    assert status == 400 and "error" in body
    assert upload(emu, b"--BND\r\ngarbage without headers", FORM)[0] == 400
    assert upload(emu, b"plain", "text/plain")[0] == 400
    assert emu.batches.uploads == 0


def test_emulator_job_of_a_non_jsonl_file_fails_validation(emu: Emulator) -> None:
    status, file = upload(emu, multipart(b"\xff\xfe\x00\x01\n" + b"[" * 100_000 + b"\n"), FORM)
    assert status == 200
    request = urllib.request.Request(
        emu.openai_base + "/batches",
        data=json.dumps(
            {
                "input_file_id": file["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            }
        ).encode(),
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        job = json.loads(resp.read())
    emu.batches.finish(job["id"])
    assert emu.batches.state(job["id"]) == "failed"
    codes = {e["code"] for e in emu.batches.jobs[job["id"]].errors}
    assert codes == {"invalid_json_line"}


# --- Anthropic message batches ------------------------------------------------------------------


def test_anthropic_garbage_results_and_a_forged_results_url(emu: Emulator) -> None:
    desk = native_batches(emu)

    def tamper(data: bytes) -> bytes:
        entries = [json.loads(line) for line in data.splitlines() if line.strip()]
        entries = [e for e in entries if not e["custom_id"].startswith("i1-")]  # no result
        return b"not json\n[1]\n\xff\xfe\n" + jsonl([*entries, entries[0]])

    desk.tamper_results = tamper
    with Emulator(api_key=SECRET) as elsewhere:
        desk.results_url = elsewhere.anthropic_base + "/v1/messages/batches/x/results"
        model = vlgate.create(
            "anthropic/claude-sonnet-4-6",
            api_key=SECRET,
            api_base=emu.anthropic_base,
            backoff_base=0.0,
        )
        job = model.submit_batch(scenes(3), "How big is the image?", task="json", schema=Size)
        job.wait(poll_interval=0.01, timeout=60)
        results = job.results()
        assert elsewhere.requests == []  # the key never went to the host results_url named
    assert len(results) == 3
    assert_own_answers(results, skip={1})
    assert isinstance(results[1], ProviderError)
