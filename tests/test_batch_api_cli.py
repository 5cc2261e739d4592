"""``vlgate batch --provider-batch`` against the emulator: submit, resume on re-run, results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlgate.batchrecord import read_records
from vlgate.cli import app
from vlgate.cli.batch_provider import state_path
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

KEY = "emu-key"
pytestmark = pytest.mark.usefixtures("cli_isolated")


def write_scenes(folder: Path, n: int) -> list[Path]:
    """``n`` scenes; image ``i`` is ``300 + i`` by ``200 + i`` pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"scene-{i:03d}.jpg"
        path.write_bytes(make_scene(500 + i, size=(300 + i, 200 + i)).to_jpeg_bytes())
        paths.append(path)
    return paths


def args(emu: Emulator, folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(folder),
        "Describe the image.",
        "-o",
        str(out),
        "-m",
        "openai/gpt-4o",
        "--api-base",
        emu.openai_base,
        "--provider-batch",
        *extra,
    ]


def test_submit_then_rerun_with_wait_resumes_the_same_job(
    tmp_path: Path, emulator: Emulator
) -> None:
    paths = write_scenes(tmp_path / "imgs", 6)
    out = tmp_path / "out.jsonl"
    env = {"OPENAI_API_KEY": KEY}
    emulator.batches.auto = False  # the job waits at the provider between the two runs
    first = CliRunner().invoke(app, args(emulator, tmp_path / "imgs", out), env=env)
    assert first.exit_code == 0, first.output
    assert "job: vlb1_" in first.output and "not finished" in first.output
    assert emulator.batches.uploads == 1 and not out.exists()
    state = json.loads(state_path(out).read_text())
    (entry,) = state["jobs"].values()
    assert entry["images"] == 6 and entry["job_id"] in first.output
    # A new process, the same command with --wait: no second upload, the job is picked up.
    emulator.batches.auto = True
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlgate",
            *args(emulator, tmp_path / "imgs", out, "--wait", "--poll-interval", "0.01", "--json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["resumed"] is True and summary["job_id"] == entry["job_id"]
    assert (summary["state"], summary["written"]) == ("completed", 6)
    assert emulator.batches.uploads == 1
    assert sum(r.path == "/v1/batches" and r.method == "POST" for r in emulator.requests) == 1
    records = read_records(out)
    said = {r.images[0].size: r.response_text for r in emulator.requests if r.batch}
    assert len(set(said.values())) == 6
    for i, path in enumerate(paths):
        rec = records[str(path)]
        assert rec.ok and rec.answer == said[(300 + i, 200 + i)]
        assert rec.usage is not None and rec.usage.cost is not None
    assert summary["cost"] == pytest.approx(sum(r.usage.cost for r in records.values()))
    # Everything is in the output now: a third run has nothing to submit.
    third = CliRunner().invoke(app, args(emulator, tmp_path / "imgs", out, "--wait"), env=env)
    assert third.exit_code == 0 and "nothing to do" in third.output
    assert emulator.batches.uploads == 1


def test_detect_records_in_original_pixels_and_failed_items(
    tmp_path: Path, emulator: Emulator
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    scenes = [make_scene(90 + i, size=(2400, 1800)) for i in range(3)]
    for i, s in enumerate(scenes):
        (folder / f"s{i}.jpg").write_bytes(s.to_jpeg_bytes())
    target = scenes[0].shapes[0].label
    emulator.script("gpt-4o", ["ok", "500", "ok"])
    out = tmp_path / "boxes.jsonl"
    cli = [
        "batch",
        str(folder),
        "--detect",
        target,
        "-o",
        str(out),
        "-m",
        "openai/gpt-4o",
        "--api-base",
        emulator.openai_base,
        "--provider-batch",
        "--wait",
        "--poll-interval",
        "0.01",
    ]
    result = CliRunner().invoke(app, cli, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 1, result.output  # one image failed
    records = read_records(out)
    first = records[str(folder / "s0.jpg")]
    assert first.image_size == (2400, 1800)
    truth = [sh.box for sh in scenes[0].shapes if sh.label == target]
    assert len(first.detections or []) == len(truth) and first.dropped == 0
    for det in first.detections or []:
        assert any(all(abs(det["xyxy"][k] - box[k]) <= 12 for k in range(4)) for box in truth)
    failed = records[str(folder / "s1.jpg")]
    assert failed.error is not None and failed.error.type == "ProviderError"
    # --retry-failed: a new job for the failed image only.
    again = CliRunner().invoke(app, [*cli, "--retry-failed"], env={"OPENAI_API_KEY": KEY})
    assert again.exit_code == 0, again.output
    assert emulator.batches.uploads == 2
    assert len([r for r in emulator.requests if r.batch]) == 4
    assert read_records(out)[str(folder / "s1.jpg")].ok


def test_provider_batch_refuses_live_only_flags(tmp_path: Path, emulator: Emulator) -> None:
    write_scenes(tmp_path / "imgs", 1)
    out = tmp_path / "o.jsonl"
    result = CliRunner().invoke(
        app, args(emulator, tmp_path / "imgs", out, "--limit", "3"), env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 2 and "--limit" in result.output
    result = CliRunner().invoke(
        app,
        ["batch", str(tmp_path / "imgs"), "Describe.", "-m", "openai/gpt-4o", "--wait"],
        env={"OPENAI_API_KEY": KEY},
    )
    assert result.exit_code == 2 and "--provider-batch" in result.output
    assert emulator.requests == []


def test_ctrl_c_while_waiting_leaves_the_job_to_a_rerun(tmp_path: Path, emulator: Emulator) -> None:
    paths = write_scenes(tmp_path / "imgs", 3)
    out = tmp_path / "out.jsonl"
    emulator.batches.auto = False  # the job never ends while the first run waits
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "vlgate"]
    cmd += args(emulator, tmp_path / "imgs", out, "--wait", "--poll-interval", "0.05")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not state_path(out).exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.3)  # a few polls
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "keeps running at the provider" in stderr and "Traceback" not in stderr
    assert not out.exists()
    # The same command picks the job up: one upload in all, every image written.
    emulator.batches.auto = True
    again = CliRunner().invoke(
        app,
        args(emulator, tmp_path / "imgs", out, "--wait", "--poll-interval", "0.01"),
        env={"OPENAI_API_KEY": KEY},
    )
    assert again.exit_code == 0, again.output
    assert "resuming" in again.output
    assert emulator.batches.uploads == 1
    assert set(read_records(out)) == {str(p) for p in paths}


def test_schema_task_writes_json_records(tmp_path: Path, emulator: Emulator) -> None:
    paths = write_scenes(tmp_path / "imgs", 4)
    schema = tmp_path / "size.schema.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
                "required": ["width", "height"],
            }
        )
    )
    out = tmp_path / "sizes.jsonl"
    cli = ["batch", str(tmp_path / "imgs"), "How big is it?", "--schema", str(schema)]
    cli += ["-o", str(out), "-m", "openai/gpt-4o", "--api-base", emulator.openai_base]
    cli += ["--provider-batch", "--wait", "--poll-interval", "0.01", "--html", "r.html"]
    result = CliRunner().invoke(app, cli, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    assert Path("r.html").read_text().count("<img") >= 4
    records = read_records(out)
    for i, path in enumerate(paths):
        rec = records[str(path)]
        assert rec.task == "json" and rec.json == {"width": 300 + i, "height": 200 + i}
        assert rec.usage is not None and rec.usage.cost is not None
    lines = [r for r in emulator.requests if r.batch]
    assert all(r.body["response_format"]["type"] == "json_schema" for r in lines)
