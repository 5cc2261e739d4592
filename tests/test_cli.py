"""The command line, run for real (typer's CliRunner) against the loopback emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from vlgate.cli import app
from vlgate.demo import iou
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

MODEL = "openai/qwen2.5-vl-7b"
KEY = "emu-key"
RECORD_SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "docs" / "batch-record.schema.json").read_text()
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


pytestmark = pytest.mark.usefixtures("cli_isolated")


@pytest.fixture
def scene_file(tmp_path: Path) -> tuple[Path, object]:
    scene = make_scene(3, size=(800, 600), n_shapes=3)
    path = tmp_path / "scene.png"
    path.write_bytes(scene.to_png_bytes())
    return path, scene


def _emu_args(emu: Emulator) -> list[str]:
    return ["-m", MODEL, "--api-base", emu.openai_base]


def _env() -> dict[str, str]:
    return {"OPENAI_API_KEY": KEY}


def test_query_prints_the_answer(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, scene = scene_file
    result = runner.invoke(
        app, ["query", str(path), "How many shapes?", *_emu_args(emulator)], env=_env()
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"There are {len(scene.shapes)} shapes."  # type: ignore[attr-defined]
    assert len(emulator.requests) == 1
    assert emulator.requests[0].model == "qwen2.5-vl-7b"


def test_query_json_output(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, _ = scene_file
    result = runner.invoke(
        app, ["query", str(path), "How many shapes?", *_emu_args(emulator), "--json"], env=_env()
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == set(RECORD_SCHEMA["required"])
    assert data["task"] == "query" and data["prompt"] == "How many shapes?"
    assert data["error"] is None and data["detections"] is None
    assert data["answer"].startswith("There are 3")
    assert data["attempts"] == 1
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0


def test_missing_key_is_one_line_exit_2(runner: CliRunner, scene_file: tuple[Path, object]) -> None:
    path, _ = scene_file
    result = runner.invoke(app, ["query", str(path), "hi", "-m", "openai/gpt-4o-mini"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no API key for openai/gpt-4o-mini")
    assert "OPENAI_API_KEY" in lines[0]
    assert "Traceback" not in result.output


def test_bad_image_exit_2(runner: CliRunner, emulator: Emulator, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not a jpeg at all")
    result = runner.invoke(app, ["caption", str(bad), *_emu_args(emulator)], env=_env())
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")
    assert emulator.requests == []  # nothing was sent


def test_provider_failure_exit_1_after_retries(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, _ = scene_file
    emulator.script("qwen2.5-vl-7b", ["500", "500"])
    args = ["query", str(path), "hi", *_emu_args(emulator), "--max-retries", "1"]
    result = runner.invoke(app, args, env=_env())
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "500" in result.stderr
    assert [r.status for r in emulator.requests] == [500, 500]


def test_wrong_key_is_exit_1_and_never_printed(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, _ = scene_file
    secret = "sk-live-0123456789abcdefSECRET"
    result = runner.invoke(
        app,
        ["-v", "query", str(path), "hi", *_emu_args(emulator)],
        env={"OPENAI_API_KEY": secret},
    )
    assert result.exit_code == 1
    assert secret not in result.output
    assert "0123456789abcdef" not in result.output
    assert "401" in result.stderr


def test_verbose_logs_debug_without_keys(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, _ = scene_file
    result = runner.invoke(
        app,
        ["-v", "detect", str(path), "unicorn", *_emu_args(emulator)],
        env=_env(),
    )
    assert result.exit_code == 0, result.output
    # -v: one line per request and answer; -vv: with the request's shape, and the debug log.
    assert "INFO vlgate: -> " in result.stderr and "INFO vlgate: <- " in result.stderr
    assert "DEBUG vlgate" not in result.stderr
    assert KEY not in result.output
    result = runner.invoke(
        app,
        ["-vv", "detect", str(path), "unicorn", *_emu_args(emulator)],
        env=_env(),
    )
    assert result.exit_code == 0, result.output
    assert "DEBUG vlgate" in result.stderr and "images=[" in result.stderr
    assert KEY not in result.output


def test_caption(runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]) -> None:
    path, scene = scene_file
    result = runner.invoke(app, ["caption", str(path), *_emu_args(emulator)], env=_env())
    assert result.exit_code == 0, result.output
    assert f"{len(scene.shapes)} shapes" in result.stdout  # type: ignore[attr-defined]


def test_detect_json_boxes_match_truth_and_png(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    path, scene = scene_file
    out = tmp_path / "boxes.png"
    args = ["detect", str(path), "shapes", *_emu_args(emulator), "--json", "-o", str(out)]
    result = runner.invoke(app, args, env=_env())
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["image_size"] == [800, 600]
    boxes = [d["xyxy"] for d in data["detections"]]
    assert len(boxes) == len(scene.shapes)  # type: ignore[attr-defined]
    for shape in scene.shapes:  # type: ignore[attr-defined]
        assert max(iou(shape.box, tuple(b)) for b in boxes) > 0.85
    with PILImage.open(out) as png:
        assert png.format == "PNG" and png.size == (800, 600)


def test_detect_plain_lines(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, scene = scene_file
    result = runner.invoke(app, ["detect", str(path), "shapes", *_emu_args(emulator)], env=_env())
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(scene.shapes)  # type: ignore[attr-defined]
    assert all(len(line.split("\t")[1].split(", ")) == 4 for line in lines)


def test_detect_says_when_part_of_the_answer_was_unreadable(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object]
) -> None:
    path, _ = scene_file
    good = '{"bbox_2d": [10, 10, 90, 90], "label": "a"}'
    emulator.say(
        "qwen2.5-vl-7b",
        [
            f'[{good}, {{"bbox_2d": [1, 2, 3]}}, {{"label": "b"}}]',
            f'[{good}, {{"bbox_2d": [1, 2, 3], "label": "c"}}]',
            '[{"bbox_2d": [1, 2, 3], "label": "c"}]',
            "[]",
        ],
    )
    args = ["detect", str(path), "shapes", *_emu_args(emulator)]
    human = runner.invoke(app, args, env=_env())
    assert human.exit_code == 0, human.output
    assert len(human.stdout.strip().splitlines()) == 1  # the one readable box
    assert human.stderr.strip() == "1 object, 2 unreadable entries dropped"
    as_json = json.loads(runner.invoke(app, [*args, "--json"], env=_env()).stdout)
    assert (len(as_json["detections"]), as_json["dropped"]) == (1, 1)
    assert set(as_json) == set(RECORD_SCHEMA["required"])
    unread = runner.invoke(app, args, env=_env())
    assert unread.stdout == "" and unread.stderr.strip() == "0 found: 1 unreadable entry dropped"
    nothing = runner.invoke(app, args, env=_env())
    assert nothing.stderr.strip() == f"0 found: no 'shapes' in {path}"
    assert len(emulator.requests) == 4


def test_point_json_and_html(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    path, scene = scene_file
    target = scene.shapes[0]  # type: ignore[attr-defined]
    html = tmp_path / "p.html"
    args = ["point", str(path), target.label, *_emu_args(emulator), "--json", "--html", str(html)]
    result = runner.invoke(app, args, env=_env())
    assert result.exit_code == 0, result.output
    points = json.loads(result.stdout)["points"]
    assert len(points) >= 1
    x, y = points[0]["xy"]
    x1, y1, x2, y2 = target.box
    assert x1 <= x <= x2 and y1 <= y <= y2
    page = html.read_text()
    assert page.count('class="point"') == 2 * len(points)  # thumbnail and full-size view
    assert 'viewBox="0 0 800 600"' in page


def test_query_html_report(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    path, _ = scene_file
    html = tmp_path / "q.html"
    args = ["query", str(path), "How many shapes?", *_emu_args(emulator), "--html", str(html)]
    result = runner.invoke(app, args, env=_env())
    assert result.exit_code == 0, result.output
    page = html.read_text()
    assert "There are 3 shapes." in page
    assert "data:image/jpeg;base64," in page


def test_settings_from_file_and_env(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    """No -m / --api-base flags: the model comes from vlgate.toml, the endpoint from env."""
    path, _ = scene_file
    (tmp_path / "vlgate.toml").write_text(
        f'model = "{MODEL}"\napi_base = "http://127.0.0.1:9/v1"\n'
    )
    env = {**_env(), "VLGATE_API_BASE": emulator.openai_base}
    result = runner.invoke(app, ["caption", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert emulator.requests[0].model == "qwen2.5-vl-7b"


def test_bad_setting_in_file_exit_2(
    runner: CliRunner, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    path, _ = scene_file
    (tmp_path / "vlgate.toml").write_text('modle = "openai/gpt-4o"\n')
    result = runner.invoke(app, ["caption", str(path)], env=_env())
    assert result.exit_code == 2
    assert "unknown setting 'modle'" in result.stderr


def test_models_json_comes_from_registry(runner: CliRunner) -> None:
    from vlgate import registry

    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [f["name"] for f in data["families"]] == list(registry.FAMILIES)
    claude = next(f for f in data["families"] if f["name"] == "claude")
    assert claude["price_per_mtok"] == [3.0, 15.0]
    openai = next(p for p in data["providers"] if p["name"] == "openai")
    assert openai["limits"]["max_images"] == registry.SERVICES["openai"].limits.max_images
    bedrock = next(r for r in data["litellm_routes"] if r["prefix"] == "bedrock")
    assert bedrock["limits"]["max_images"] == 20


def test_models_filters_and_table(runner: CliRunner) -> None:
    args = ["models", "--family", "gemini", "--provider", "anthropic"]
    result = runner.invoke(app, args, env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert "gemini" in result.stdout and "box_2d" in result.stdout
    assert "anthropic/ (litellm)" in result.stdout
    assert "qwen2.5-vl" not in result.stdout
    unknown = runner.invoke(app, ["models", "--family", "nope"])
    assert unknown.exit_code == 2 and "known: " in unknown.stderr


def test_doctor_names_keys_never_values(runner: CliRunner) -> None:
    secret = "sk-ant-topsecretvalue123456"
    result = runner.invoke(app, ["doctor", "--json"], env={"ANTHROPIC_API_KEY": secret})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["keys"]["ANTHROPIC_API_KEY"] == "set"
    assert data["keys"]["OPENAI_API_KEY"] == "missing"
    assert data["extras"]["typer"]["installed"] is True
    assert set(data["extras"]) >= {"litellm", "aiohttp", "typer", "rich", "platformdirs"}
    assert secret not in result.output
    plain = runner.invoke(app, ["doctor"], env={"ANTHROPIC_API_KEY": secret})
    assert plain.exit_code == 0 and secret not in plain.output
    assert "ANTHROPIC_API_KEY" in plain.stdout


def test_doctor_does_not_import_litellm() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from vlgate.cli.info import diagnose; diagnose(); "
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_doctor_check_endpoint(runner: CliRunner, emulator: Emulator) -> None:
    env = {**_env(), "VLGATE_MODEL": MODEL, "VLGATE_API_BASE": emulator.openai_base}
    result = runner.invoke(app, ["doctor", "--check", "--json"], env=env)
    assert result.exit_code == 0, result.output
    endpoint = json.loads(result.stdout)["endpoint"]
    assert endpoint["status"] == 200 and endpoint["ok"] is True
    assert endpoint["endpoint"] == emulator.openai_base + "/models"
    dead = {**env, "VLGATE_API_BASE": "http://127.0.0.1:9/v1"}
    result = runner.invoke(app, ["doctor", "--check", "--json", "--timeout", "1"], env=dead)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["endpoint"]["ok"] is False


def test_demo_runs_offline(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    result = runner.invoke(app, ["demo", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["true_count"] == len(data["ground_truth"]) == len(data["detections"])
    assert data["answer"] == f"There are {data['true_count']} shapes."
    assert data["mean_iou"] > 0.9
    with PILImage.open(out) as png:
        assert png.size == tuple(data["image_size"])
    text = runner.invoke(app, ["demo", "-o", str(out)])
    assert text.exit_code == 0 and "mean IoU" in text.stdout


def test_help_has_examples_and_exit_codes(runner: CliRunner) -> None:
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    assert "130 interrupted" in top.stdout
    for command in ("query", "caption", "detect", "point", "batch", "models", "doctor"):
        page = runner.invoke(app, [command, "--help"])
        assert page.exit_code == 0, command
        assert "Examples" in page.stdout and f"vlgate {command}" in page.stdout, command
    for command in ("emulate", "demo"):
        assert "vlgate " + command in runner.invoke(app, [command, "--help"]).stdout


def test_version_and_module_entry_point() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "vlgate", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().startswith("vlgate ")


def test_emulate_serves_until_interrupted(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlgate", "emulate", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in first
        banner = [proc.stdout.readline() for _ in range(10)]
        base = f"http://127.0.0.1:{port}"
        for name, url in [
            ("OpenAI", f"{base}/v1"),
            ("vLLM", f"{base}/v1"),
            ("Anthropic", base),
            ("Gemini", base),
            ("Ollama /v1", f"{base}/ollama/v1"),
            ("Ollama native", base),
            ("Moondream", f"{base}/moondream/v1"),
        ]:
            assert any(ln.strip().startswith(name) and f" {url} " in ln for ln in banner), name
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/v1/models",
                    headers={"Authorization": f"Bearer {KEY}"},
                    timeout=2,
                )
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130  # like every command interrupted by Ctrl-C
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_unwritable_output_is_one_line_exit_2(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    path, _ = scene_file
    out = tmp_path / "no" / "such" / "dir" / "boxes.png"
    args = ["detect", str(path), "shapes", *_emu_args(emulator), "-o", str(out)]
    result = runner.invoke(app, args, env=_env())
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such file or directory")
    assert "Traceback" not in result.output


def test_image_from_stdin(
    runner: CliRunner, emulator: Emulator, scene_file: tuple[Path, object], tmp_path: Path
) -> None:
    path, scene = scene_file
    data = path.read_bytes()
    result = runner.invoke(
        app, ["query", "-", "How many shapes?", *_emu_args(emulator)], env=_env(), input=data
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"There are {len(scene.shapes)} shapes."  # type: ignore[attr-defined]
    [img] = emulator.requests[0].images
    assert img.declared_mime == img.actual_mime
    out = tmp_path / "boxes.png"
    result = runner.invoke(
        app, ["detect", "-", "shape", "-o", str(out), *_emu_args(emulator)], env=_env(), input=data
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
