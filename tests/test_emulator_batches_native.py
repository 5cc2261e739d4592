"""The emulator's Anthropic Message Batches and Gemini batch mode: shapes, lifecycle, per-item
validation as live requests, auth."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vlgate.testing import Emulator
from vlgate.testing.batches_native import NativeBatches, native_batches
from vlgate.testing.scenes import make_scene

KEY = "emu-key"
A_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
G_HEADERS = {"x-goog-api-key": KEY}
SCENES = [make_scene(40 + i, size=(320 + 16 * i, 240), n_shapes=2 + i % 3) for i in range(4)]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY, noise=False) as e:
        yield e


@pytest.fixture
def desk(emu: Emulator) -> Iterator[NativeBatches]:
    d = native_batches(emu)
    yield d
    d.auto, d.lines_per_step = True, 0
    emu.clear()


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=10) as c:
        yield c


def _b64(i: int) -> str:
    return base64.b64encode(SCENES[i].to_jpeg_bytes()).decode()


# Structured output asking for the image's size: each answer names the image it was about.
SIZE = {
    "type": "object",
    "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
    "required": ["width", "height"],
}


def _claude(i: int, *, mime: str = "image/jpeg", model: str = "claude-sonnet-4-6") -> Any:
    image = {"type": "base64", "media_type": mime, "data": _b64(i)}
    content = [{"type": "image", "source": image}, {"type": "text", "text": "The image size?"}]
    return {
        "model": model,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": content}],
        "output_config": {"format": {"type": "json_schema", "schema": SIZE}},
    }


def _gemini(i: int, *, mime: str = "image/jpeg") -> Any:
    parts = [{"inlineData": {"mimeType": mime, "data": _b64(i)}}, {"text": "The image size?"}]
    config = {"responseMimeType": "application/json", "responseJsonSchema": SIZE}
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def _size(text: str) -> tuple[int, int]:
    got = json.loads(text)
    return got["width"], got["height"]


def _wait(http: httpx.Client, url: str, headers: dict[str, str], done: Any) -> Any:
    deadline = time.monotonic() + 10
    while True:
        body = http.get(url, headers=headers).json()
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_batch_answers_each_item_and_errors_per_item(
    emu: Emulator, desk: NativeBatches, http: httpx.Client
) -> None:
    reqs = [{"custom_id": f"img-{i}", "params": _claude(i)} for i in range(3)]
    reqs.append({"custom_id": "bad-mime", "params": _claude(3, mime="image/png")})
    r = http.post("/v1/messages/batches", json={"requests": reqs}, headers=A_HEADERS)
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["type"] == "message_batch" and batch["results_url"] is None
    assert batch["request_counts"]["processing"] == 4
    url = f"/v1/messages/batches/{batch['id']}"
    ended = _wait(http, url, A_HEADERS, lambda b: b["processing_status"] == "ended")
    assert ended["request_counts"] == {
        "processing": 0,
        "succeeded": 3,
        "errored": 1,
        "canceled": 0,
        "expired": 0,
    }
    res = http.get(ended["results_url"], headers=A_HEADERS)
    lines = {x["custom_id"]: x["result"] for x in map(json.loads, res.text.splitlines())}
    for i in range(3):
        text = lines[f"img-{i}"]["message"]["content"][0]["text"]
        assert _size(text) == SCENES[i].size  # each answer is about its own image
    err = lines["bad-mime"]
    assert err["type"] == "errored"
    assert err["error"]["error"]["type"] == "invalid_request_error"
    assert "image/png media type" in err["error"]["error"]["message"]
    job = desk.job(batch["id"])
    assert [i.images[0].declared_mime for i in job.items] == ["image/jpeg"] * 3 + ["image/png"]
    assert emu.requests[0].path == "/v1/messages/batches"
    assert emu.requests[0].headers["x-api-key"] == KEY


def test_anthropic_counts_stay_zero_until_the_end_and_cancel_keeps_answered(
    desk: NativeBatches, http: httpx.Client
) -> None:
    desk.auto, desk.lines_per_step = False, 2
    reqs = [{"custom_id": f"c{i}", "params": _claude(i)} for i in range(4)]
    batch = http.post("/v1/messages/batches", json={"requests": reqs}, headers=A_HEADERS).json()
    desk.advance(batch["id"])
    url = f"/v1/messages/batches/{batch['id']}"
    mid = http.get(url, headers=A_HEADERS).json()
    assert mid["processing_status"] == "in_progress"
    assert mid["request_counts"]["processing"] == 4 and mid["request_counts"]["succeeded"] == 0
    early = http.get(url + "/results", headers=A_HEADERS)
    assert early.status_code == 400
    cancel = http.post(url + "/cancel", headers=A_HEADERS).json()
    assert cancel["processing_status"] == "canceling" and cancel["cancel_initiated_at"]
    assert http.get(url, headers=A_HEADERS).json()["processing_status"] == "canceling"
    desk.advance(batch["id"])
    ended = http.get(url, headers=A_HEADERS).json()
    assert ended["processing_status"] == "ended"
    assert ended["request_counts"]["succeeded"] == 2 and ended["request_counts"]["canceled"] == 2
    kinds = {
        x["custom_id"]: x["result"]["type"]
        for x in map(
            json.loads, http.get(ended["results_url"], headers=A_HEADERS).text.splitlines()
        )
    }
    assert kinds == {"c0": "succeeded", "c1": "succeeded", "c2": "canceled", "c3": "canceled"}


def test_anthropic_expire_and_scripted_item_fault(
    emu: Emulator, desk: NativeBatches, http: httpx.Client
) -> None:
    desk.auto, desk.lines_per_step = False, 1
    emu.script("claude-broken", ["404"])
    reqs = [
        {"custom_id": "gone", "params": _claude(0, model="claude-broken")},
        {"custom_id": "late", "params": _claude(1)},
    ]
    batch = http.post("/v1/messages/batches", json={"requests": reqs}, headers=A_HEADERS).json()
    desk.advance(batch["id"])
    desk.expire(batch["id"])
    ended = http.get(f"/v1/messages/batches/{batch['id']}", headers=A_HEADERS).json()
    assert ended["request_counts"]["errored"] == 1 and ended["request_counts"]["expired"] == 1
    results = [
        json.loads(x) for x in http.get(ended["results_url"], headers=A_HEADERS).text.splitlines()
    ]
    by_id = {x["custom_id"]: x["result"] for x in results}
    assert by_id["gone"]["error"]["error"]["type"] == "not_found_error"
    assert by_id["late"] == {"type": "expired"}


@pytest.mark.parametrize(
    ("requests", "wording"),
    [
        ([], "between 1 and 100000"),
        ([{"custom_id": "has space", "params": {}}], "custom_id: String should match"),
        ([{"custom_id": "x" * 65, "params": {}}], "custom_id: String should match"),
        ([{"custom_id": "a", "params": {}}, {"custom_id": "a", "params": {}}], "Duplicate"),
        ([{"custom_id": "a"}], "params: Field required"),
    ],
)
def test_anthropic_batch_shape_errors_reject_the_whole_batch(
    desk: NativeBatches, http: httpx.Client, requests: list[Any], wording: str
) -> None:
    r = http.post("/v1/messages/batches", json={"requests": requests}, headers=A_HEADERS)
    assert r.status_code == 400
    assert wording in r.json()["error"]["message"]
    assert not [j for j in desk.jobs.values() if j.protocol == "anthropic" and not j.items]


def test_anthropic_batch_auth_and_version_as_live(http: httpx.Client, desk: NativeBatches) -> None:
    body = {"requests": [{"custom_id": "a", "params": _claude(0)}]}
    assert http.post("/v1/messages/batches", json=body).status_code == 401
    wrong = http.post("/v1/messages/batches", json=body, headers={"x-api-key": "nope"})
    assert wrong.json()["error"]["type"] == "authentication_error"
    no_version = http.post("/v1/messages/batches", json=body, headers={"x-api-key": KEY})
    assert no_version.status_code == 400
    assert http.get("/v1/messages/batches/msgbatch_nope", headers=A_HEADERS).status_code == 404


# --- Gemini ------------------------------------------------------------------------------------


def test_gemini_batch_lifecycle_and_inline_results(
    emu: Emulator, desk: NativeBatches, http: httpx.Client
) -> None:
    desk.auto, desk.lines_per_step = False, 1
    reqs = [{"request": _gemini(i), "metadata": {"key": f"k{i}"}} for i in range(3)]
    reqs.append({"request": _gemini(3, mime="image/gif"), "metadata": {"key": "bad"}})
    body = {"batch": {"displayName": "t", "inputConfig": {"requests": {"requests": reqs}}}}
    r = http.post(
        "/v1beta/models/gemini-2.5-flash:batchGenerateContent", json=body, headers=G_HEADERS
    )
    assert r.status_code == 200, r.text
    op = r.json()
    assert op["name"].startswith("batches/") and "done" not in op
    assert op["metadata"]["state"] == "BATCH_STATE_PENDING"
    desk.advance(op["name"], steps=2)
    running = http.get("/v1beta/" + op["name"], headers=G_HEADERS).json()
    assert running["metadata"]["state"] == "BATCH_STATE_RUNNING"
    assert running["metadata"]["batchStats"]["pendingRequestCount"] == "3"
    desk.finish(op["name"])
    done = http.get("/v1beta/" + op["name"], headers=G_HEADERS).json()
    assert done["done"] is True and done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    stats = done["metadata"]["batchStats"]
    assert (stats["successfulRequestCount"], stats["failedRequestCount"]) == ("3", "1")
    entries = done["response"]["inlinedResponses"]["inlinedResponses"]
    assert entries == done["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    by_key = {e["metadata"]["key"]: e for e in entries}
    for i in range(3):
        text = by_key[f"k{i}"]["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert _size(text) == SCENES[i].size
    assert by_key["bad"]["error"]["code"] == 3  # INVALID_ARGUMENT, the live 400
    assert [it.images[0].declared_mime for it in desk.job(op["name"]).items][-1] == "image/gif"


def test_gemini_cancel_expire_fail_states(desk: NativeBatches, http: httpx.Client) -> None:
    desk.auto, desk.lines_per_step = False, 1
    body = {"batch": {"inputConfig": {"requests": {"requests": [{"request": _gemini(0)}] * 2}}}}
    names = [
        http.post(
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent", json=body, headers=G_HEADERS
        ).json()["name"]
        for _ in range(3)
    ]
    desk.advance(names[0], steps=2)
    assert http.post(f"/v1beta/{names[0]}:cancel", headers=G_HEADERS).json() == {}
    desk.expire(names[1])
    desk.fail(names[2], "quota exhausted")
    ops = [http.get(f"/v1beta/{n}", headers=G_HEADERS).json() for n in names]
    assert [o["metadata"]["state"] for o in ops] == [
        "BATCH_STATE_CANCELLED",
        "BATCH_STATE_EXPIRED",
        "BATCH_STATE_FAILED",
    ]
    codes = sorted(
        e.get("error", {}).get("code", 0)
        for e in ops[0]["response"]["inlinedResponses"]["inlinedResponses"]
    )
    assert codes == [0, 1]  # one answered, one cancelled
    assert ops[2]["error"]["message"] == "quota exhausted" and "response" not in ops[2]


def test_gemini_batch_keys_and_shape_errors(desk: NativeBatches, http: httpx.Client) -> None:
    url = "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    body = {"batch": {"inputConfig": {"requests": {"requests": [{"request": _gemini(0)}]}}}}
    assert http.post(url, json=body).status_code == 403
    bad_key = http.post(url, json=body, headers={"x-goog-api-key": "nope"})
    assert bad_key.status_code == 400 and "API key not valid" in bad_key.text
    assert http.post(url, json=body, params={"key": KEY}).status_code == 200
    empty = {"batch": {"inputConfig": {"requests": {"requests": []}}}}
    assert http.post(url, json=empty, headers=G_HEADERS).status_code == 400
    assert http.get("/v1beta/batches/nope", headers=G_HEADERS).status_code == 404
    live = http.post(
        "/v1beta/models/gemini-2.5-flash:generateContent", json=_gemini(0), headers=G_HEADERS
    )
    assert live.status_code == 200  # the live route still answers


def test_gemini_file_input_upload_and_responses_file(emu: Emulator, http: httpx.Client) -> None:
    lines = [json.dumps({"key": f"f{i}", "request": _gemini(i)}) for i in range(2)]
    data = ("\n".join([*lines, "not json"]) + "\n").encode()
    start = http.post(
        "/upload/v1beta/files",
        json={"file": {"displayName": "in"}},
        headers={
            **G_HEADERS,
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        },
    )
    assert start.status_code == 200, start.text
    upload_url = start.headers["X-Goog-Upload-URL"]
    done = http.post(
        upload_url,
        content=data,
        headers={
            **G_HEADERS,
            "X-Goog-Upload-Command": "upload, finalize",
            "X-Goog-Upload-Offset": "0",
        },
    )
    file = done.json()["file"]
    assert file["name"].startswith("files/") and file["sizeBytes"] == str(len(data))
    body = {"batch": {"displayName": "f", "inputConfig": {"fileName": file["name"]}}}
    op = http.post(
        "/v1beta/models/gemini-2.5-flash:batchGenerateContent", json=body, headers=G_HEADERS
    ).json()
    op = _wait(http, "/v1beta/" + op["name"], G_HEADERS, lambda o: o.get("done"))
    out = op["response"]["responsesFile"]
    assert out == op["metadata"]["output"]["responsesFile"]
    raw = http.get(f"/download/v1beta/{out}:download", params={"alt": "media"}, headers=G_HEADERS)
    got = {x["key"]: x for x in map(json.loads, raw.text.splitlines())}
    for i in range(2):
        text = got[f"f{i}"]["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert _size(text) == SCENES[i].size
    assert got["2"]["error"]["code"] == 3
    assert http.get(f"/download/v1beta/{out}:download").status_code == 403  # key checked
