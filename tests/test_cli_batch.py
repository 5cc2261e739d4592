"""``vlgate batch`` end to end against the emulator: resume, failures, Ctrl-C, the summary."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlgate.cli import app
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

MODEL = "openai/qwen2.5-vl-7b"
KEY = "emu-key"


pytestmark = pytest.mark.usefixtures("cli_isolated")


def write_scenes(folder: Path, n: int, size: tuple[int, int] = (160, 120)) -> dict[str, int]:
    """``n`` scene PNGs in ``folder``; returns path -> true number of shapes."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        scene = make_scene(1000 + i, size=size, n_shapes=1 + i % 4)
        path = folder / f"scene-{i:04d}.png"
        path.write_bytes(scene.to_png_bytes())
        truth[str(path)] = len(scene.shapes)
    return truth


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def batch_args(emu: Emulator, folder: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch",
        str(folder),
        "How many shapes?",
        "-o",
        str(out),
        "-m",
        MODEL,
        "--api-base",
        emu.openai_base,
        *extra,
    ]


def test_batch_limit_then_resume_with_a_corrupt_file(tmp_path: Path, emulator: Emulator) -> None:
    folder = tmp_path / "imgs"
    truth = write_scenes(folder, 40)
    corrupt = folder / "aaa-corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = tmp_path / "results.jsonl"
    runner = CliRunner()
    env = {"OPENAI_API_KEY": KEY}

    first = runner.invoke(
        app, batch_args(emulator, folder, out, "--limit", "15", "-c", "4"), env=env
    )
    assert first.exit_code == 1, first.output  # the corrupt file is among the first 15
    lines = read_lines(out)
    assert len(lines) == 15
    assert "batch: 15 of 41 image(s) done, 14 ok, 1 failed (ImageError: 1)" in first.stdout
    assert "--limit reached: 26 image(s) left" in first.stderr
    sent_first = len(emulator.requests)
    assert sent_first == 14  # nothing is sent for the corrupt file

    second = runner.invoke(app, batch_args(emulator, folder, out, "-c", "4"), env=env)
    assert second.exit_code == 1, second.output
    assert "batch: 41 of 41 image(s) done, 40 ok, 1 failed (ImageError: 1)" in second.stdout
    assert "this run: 26 processed" in second.stdout
    assert "15 skipped" in second.stdout
    assert len(emulator.requests) - sent_first == 26  # no image asked twice

    lines = read_lines(out)
    assert len(lines) == 41
    by_image = {str(r["image"]): r for r in lines}
    assert len(by_image) == 41
    bad = by_image[str(corrupt)]
    assert bad["error"]["type"] == "ImageError"  # type: ignore[index]
    assert str(corrupt) in bad["error"]["message"]  # type: ignore[index]
    assert bad["answer"] is None and bad["usage"] is None and bad["model"] is None
    for path, count in truth.items():
        rec = by_image[path]
        assert rec["error"] is None
        noun = "shape" if count == 1 else "shapes"
        verb = "is" if count == 1 else "are"
        assert rec["answer"] == f"There {verb} {count} {noun}.", rec
        assert rec["attempts"] == 1
        assert rec["usage"]["input_tokens"] > 0  # type: ignore[index]

    third = runner.invoke(app, batch_args(emulator, folder, out), env=env)
    assert "this run: 0 processed" in third.stdout
    assert len(read_lines(out)) == 41


def test_provider_fault_recorded_then_retried(tmp_path: Path, emulator: Emulator) -> None:
    folder = tmp_path / "imgs"
    write_scenes(folder, 6)
    out = tmp_path / "r.jsonl"
    emulator.script("qwen2.5-vl-7b", ["503", "400"])
    runner = CliRunner()
    env = {"OPENAI_API_KEY": KEY}
    args = batch_args(emulator, folder, out, "--max-retries", "0", "-c", "1")
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 1, result.output
    failed = [r for r in read_lines(out) if r["error"]]
    assert len(failed) == 2
    errors = [r["error"] for r in failed]
    assert all(e["type"] == "ProviderError" for e in errors), errors  # type: ignore[index]
    assert all("HTTP 503" in e["message"] or "HTTP 400" in e["message"] for e in errors)  # type: ignore[index]
    assert "6 of 6 image(s) done, 4 ok, 2 failed" in result.stdout

    again = runner.invoke(app, [*args, "--retry-failed"], env=env)
    assert again.exit_code == 0, again.output
    assert "6 of 6 image(s) done, 6 ok, 0 failed" in again.stdout
    assert "this run: 2 processed" in again.stdout
    assert len(read_lines(out)) == 8  # the failed lines stay; the latest record wins


def test_batch_detect_with_html_report(tmp_path: Path, emulator: Emulator) -> None:
    folder = tmp_path / "imgs"
    truth = write_scenes(folder, 5, size=(320, 240))
    out, html = tmp_path / "d.jsonl", tmp_path / "d.html"
    args = [
        "batch",
        str(folder / "*.png"),
        "--detect",
        "shapes",
        "-o",
        str(out),
        "--html",
        str(html),
        "-m",
        MODEL,
        "--api-base",
        emulator.openai_base,
    ]
    result = CliRunner().invoke(app, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    records = read_lines(out)
    for rec in records:
        assert len(rec["detections"]) == truth[str(rec["image"])]  # type: ignore[arg-type]
        assert rec["image_size"] == [320, 240]
    page = html.read_text()
    assert page.count('<article class="card ok">') == 5
    assert page.count('class="box"') == 2 * sum(truth.values())  # thumbnail and full view


def test_batch_json_schema(tmp_path: Path, emulator: Emulator) -> None:
    folder = tmp_path / "imgs"
    truth = write_scenes(folder, 3)
    schema = tmp_path / "count.json"
    schema.write_text(
        json.dumps(
            {
                "type": "object",
                "properties": {"count": {"type": "integer"}},
                "required": ["count"],
            }
        )
    )
    out = tmp_path / "j.jsonl"
    args = batch_args(emulator, folder, out, "--schema", str(schema))
    result = CliRunner().invoke(app, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    recs = read_lines(out)
    for rec in recs:
        assert rec["json"] == {"count": truth[str(rec["image"])]}, rec
        # The answer's metadata, as a query line has it (issue 20): from the wire.
        assert rec["model"] == "qwen2.5-vl-7b" and rec["attempts"] == 1, rec
        assert rec["usage"]["input_tokens"] > 0 and rec["usage"]["output_tokens"] > 0, rec
    assert len(emulator.requests) == len(recs) == 3


def test_batch_json_schema_repair_turn_counts_both_requests(
    tmp_path: Path, emulator: Emulator
) -> None:
    folder = tmp_path / "imgs"
    write_scenes(folder, 1)
    schema = tmp_path / "count.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"count": {"type": "integer"}}}))
    clean, repaired = tmp_path / "clean.jsonl", tmp_path / "repaired.jsonl"
    args = batch_args(emulator, folder, clean, "--schema", str(schema))
    assert CliRunner().invoke(app, args, env={"OPENAI_API_KEY": KEY}).exit_code == 0
    emulator.say("qwen2.5-vl-7b", ["Sorry, I cannot count."])  # unusable: one repair turn
    args = batch_args(emulator, folder, repaired, "--schema", str(schema))
    assert CliRunner().invoke(app, args, env={"OPENAI_API_KEY": KEY}).exit_code == 0
    [one], [two] = read_lines(clean), read_lines(repaired)
    assert len(emulator.requests) == 3 and one["json"] == two["json"]
    assert (one["attempts"], two["attempts"]) == (1, 2)
    # Both requests' tokens: the repair turn resends the image and adds the first answer.
    assert two["usage"]["input_tokens"] > 2 * one["usage"]["input_tokens"]
    assert two["usage"]["output_tokens"] > one["usage"]["output_tokens"]


def test_batch_detect_lines_and_summary_count_dropped_entries(
    tmp_path: Path, emulator: Emulator
) -> None:
    folder = tmp_path / "imgs"
    write_scenes(folder, 2)
    out = tmp_path / "d.jsonl"
    # The first image's answer has one readable box and two unreadable entries.
    emulator.say(
        "qwen2.5-vl-7b",
        ['[{"bbox_2d": [10, 10, 90, 90], "label": "a"}, {"bbox_2d": [1, 2, 3]}, {"label": "b"}]'],
    )
    args = ["batch", str(folder), "--detect", "shape", "-c", "1", "-o", str(out)]
    args += ["-m", MODEL, "--api-base", emulator.openai_base]
    result = CliRunner().invoke(app, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    recs = sorted(read_lines(out), key=lambda r: str(r["image"]))
    assert (len(recs[0]["detections"]), recs[0]["dropped"]) == (1, 2)
    assert recs[1]["dropped"] == 0 and len(recs[1]["detections"]) > 0
    assert "2 unreadable entries dropped in 1 image(s)" in result.stdout
    as_json = CliRunner().invoke(app, [*args, "--json"], env={"OPENAI_API_KEY": KEY})
    assert json.loads(as_json.stdout)["dropped"] == 2


def test_batch_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"OPENAI_API_KEY": KEY}
    nothing = runner.invoke(app, ["batch", str(empty), "hi"], env=env)
    assert nothing.exit_code == 2 and "no images found" in nothing.stderr
    both = runner.invoke(app, ["batch", str(empty), "--detect", "a", "--point", "b"], env=env)
    assert both.exit_code == 2 and "choose one of" in both.stderr
    write_scenes(empty, 1)
    no_key = runner.invoke(app, ["batch", str(empty), "hi", "-m", "openai/gpt-4o"])
    assert no_key.exit_code == 2
    assert no_key.stderr.strip().splitlines() == [
        "error: no API key for openai/gpt-4o: set OPENAI_API_KEY or pass api_key=..."
    ]


def _start_batch(
    emu: Emulator, folder: Path, out: Path, *extra: str, columns: int = 120
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "OPENAI_API_KEY": KEY,
        "COLUMNS": str(columns),
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "vlgate", *batch_args(emu, folder, out, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _interrupt_after(proc: subprocess.Popen[str], out: Path, lines: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.read_text().count("\n") >= lines:
            proc.send_signal(signal.SIGINT)
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"fewer than {lines} lines after {timeout} s")


def test_ctrl_c_keeps_lines_and_resumes(tmp_path: Path, emulator: Emulator) -> None:
    folder = tmp_path / "imgs"
    truth = write_scenes(folder, 20)
    out = tmp_path / "r.jsonl"
    emulator.latency = 0.15
    proc = _start_batch(emulator, folder, out, "-c", "2")
    _interrupt_after(proc, out, 4, timeout=60)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted:" in stderr and "resume with the same command" in stderr
    assert "Traceback" not in stderr
    kept = read_lines(out)  # every line is whole JSON
    assert 4 <= len(kept) < 20
    assert out.read_text().endswith("\n")

    emulator.latency = 0.0
    proc = _start_batch(emulator, folder, out, "-c", "4")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, (stdout, stderr)
    assert f"{len(kept)} skipped" in stdout
    records = read_lines(out)
    assert sorted(str(r["image"]) for r in records) == sorted(truth)
    assert "batch: 20 of 20 image(s) done, 20 ok, 0 failed" in stdout


def test_an_empty_stdin_is_a_usage_error(tmp_path: Path, emulator: Emulator) -> None:
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        app, batch_args(emulator, Path("-"), out), input="\n\n", env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 2, result.output
    assert "no image paths on stdin" in result.output
    assert emulator.requests == []


def test_paths_on_stdin_start_before_the_list_ends(tmp_path: Path, emulator: Emulator) -> None:
    truth = write_scenes(tmp_path / "imgs", 8)
    paths = sorted(truth)
    out = tmp_path / "r.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "vlgate", *batch_args(emulator, Path("-"), out, "-c", "2")]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(paths[0] + "\n\n" + paths[1] + "\n")  # a blank line is skipped
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not (out.exists() and out.read_text().count("\n") >= 2):  # answered, stdin still open
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    assert len(emulator.requests) == 2
    proc.stdin.write("".join(p + "\n" for p in paths[2:]))
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, (stdout, stderr)
    records = read_lines(out)
    assert sorted(str(r["image"]) for r in records) == paths
    assert all(r["answer"] for r in records)
    assert "batch: 8 of 8 image(s) done, 8 ok, 0 failed" in stdout


@pytest.mark.slow
def test_500_scenes_with_progress_bar_interrupted_and_resumed(
    tmp_path: Path, emulator: Emulator
) -> None:
    folder = tmp_path / "imgs"
    truth = write_scenes(folder, 500, size=(96, 72))
    out = tmp_path / "big.jsonl"
    started = time.perf_counter()
    proc = _start_batch(emulator, folder, out, "-c", "16", "--progress")
    _interrupt_after(proc, out, 150, timeout=40)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr[-2000:]
    kept = len(read_lines(out))
    # The progress bar was drawn: counts, rate, and tokens so far.
    assert re.search(r"\d+/500", stderr), stderr[-2000:]
    assert "it/s" in stderr and "tok" in stderr
    assert "\x1b[" not in stderr  # stderr is a pipe: plain progress lines, no ANSI codes

    proc = _start_batch(emulator, folder, out, "-c", "16", "--progress")
    stdout, stderr = proc.communicate(timeout=60)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, stderr[-2000:]
    assert "batch: 500 of 500 image(s) done, 500 ok, 0 failed" in stdout
    assert f"this run: {500 - kept} processed" in stdout
    records = read_lines(out)
    assert len(records) == 500
    assert {str(r["image"]) for r in records} == set(truth)
    rate = re.search(r"\(([\d.]+) images/s\)", stdout)
    assert rate is not None
    print(f"\n500-scene batch: {elapsed:.1f} s wall, second run {rate.group(1)} images/s")
    assert elapsed < 60


def test_priced_model_shows_cost_and_no_bar_off_a_terminal(
    tmp_path: Path, emulator: Emulator
) -> None:
    folder = tmp_path / "imgs"
    write_scenes(folder, 3)
    out = tmp_path / "c.jsonl"
    args = [
        "batch",
        str(folder),
        "Describe it",
        "-o",
        str(out),
        "-m",
        "openai/gpt-4o-mini",
        "--api-base",
        emulator.openai_base,
    ]
    result = CliRunner().invoke(app, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    cost = re.search(r"cost \$(\d+\.\d+)", result.stdout)
    assert cost is not None and float(cost.group(1)) > 0, result.stdout
    assert "━" not in result.stderr  # no progress bar when stderr is not a terminal
    assert all(rec["model"] == "gpt-4o-mini" for rec in read_lines(out))
