"""The command line as a newcomer meets it: flags, record shape, models, help, progress.

Everything runs for real (typer's CliRunner or a subprocess) against the loopback emulator.
"""

from __future__ import annotations

import http.server
import itertools
import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlgate.batchrecord import BatchRecord
from vlgate.cli import app
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

MODEL = "openai/qwen2.5-vl-7b"
KEY = "emu-key"
DOCS = Path(__file__).resolve().parents[1] / "docs"
SCHEMA = json.loads((DOCS / "batch-record.schema.json").read_text())

pytestmark = pytest.mark.usefixtures("cli_isolated")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _emu(emu: Emulator) -> list[str]:
    return ["-m", MODEL, "--api-base", emu.openai_base]


def _validate(record: dict[str, object]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(record, SCHEMA)
    assert set(record) == set(SCHEMA["required"]) == set(SCHEMA["properties"])


# --- 1. --allow-private-urls, VLGATE_ALLOW_PRIVATE_URLS, the config key ------------------------


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[str]:
    """A 'camera' on loopback serving a snapshot over HTTP."""
    (tmp_path / "snap.png").write_bytes(make_scene(5, size=(320, 240), n_shapes=2).to_png_bytes())
    root = str(tmp_path)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **k: object) -> None:
            super().__init__(*a, directory=root, **k)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/snap.png"
    finally:
        server.shutdown()
        server.server_close()


def test_loopback_camera_url_refused_then_allowed_by_flag_env_and_config(
    runner: CliRunner, emulator: Emulator, camera: str, tmp_path: Path
) -> None:
    env = {"OPENAI_API_KEY": KEY}
    args = ["query", camera, "How many shapes?", *_emu(emulator)]
    refused = runner.invoke(app, args, env=env)
    assert refused.exit_code == 2
    assert "--allow-private-urls" in refused.stderr and "Traceback" not in refused.output
    assert emulator.requests == []  # nothing sent

    by_flag = runner.invoke(app, [*args, "--allow-private-urls"], env=env)
    assert by_flag.exit_code == 0, by_flag.output
    assert by_flag.stdout.strip() == "There are 2 shapes."
    by_env = runner.invoke(app, args, env={**env, "VLGATE_ALLOW_PRIVATE_URLS": "1"})
    assert by_env.exit_code == 0, by_env.output
    (tmp_path / "vlgate.toml").write_text("allow_private_urls = true\n")
    by_file = runner.invoke(app, args, env=env)
    assert by_file.exit_code == 0, by_file.output
    (tmp_path / "vlgate.toml").write_text('allow_private_urls = ["10.0.0.0/8"]\n')
    other_net = runner.invoke(app, args, env=env)
    assert other_net.exit_code == 2  # 127.0.0.1 is not in the allowed network
    (tmp_path / "vlgate.toml").write_text('allow_private_urls = ["127.0.0.0/8"]\n')
    assert runner.invoke(app, args, env=env).exit_code == 0
    sent = [r for r in emulator.requests if r.status == 200]
    assert len(sent) == 4
    assert all(r.images[0].declared_mime == r.images[0].actual_mime for r in sent)


def test_bad_allow_private_urls_value_is_exit_2(runner: CliRunner, camera: str) -> None:
    result = runner.invoke(
        app,
        ["query", camera, "hi", "-m", MODEL],
        env={"OPENAI_API_KEY": KEY, "VLGATE_ALLOW_PRIVATE_URLS": "not a network"},
    )
    assert result.exit_code == 2
    assert "VLGATE_ALLOW_PRIVATE_URLS" in result.stderr


# --- 2. one record shape: --json everywhere, batch lines, --schema ----------------------------


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    path.write_bytes(make_scene(3, size=(400, 300), n_shapes=3).to_png_bytes())
    return path


@pytest.mark.parametrize(
    ("command", "extra", "task"),
    [
        ("query", ["How many shapes?"], "query"),
        ("caption", [], "caption"),
        ("detect", ["shapes"], "detect"),
        ("point", ["shapes"], "point"),
    ],
)
def test_single_image_json_is_a_full_record(
    runner: CliRunner,
    emulator: Emulator,
    scene: Path,
    command: str,
    extra: list[str],
    task: str,
) -> None:
    result = runner.invoke(
        app, [command, str(scene), *extra, *_emu(emulator), "--json"], env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    _validate(record)
    assert record["task"] == task and record["image"] == str(scene)
    assert record["model"] == "qwen2.5-vl-7b" and record["attempts"] == 1
    assert record["usage"]["input_tokens"] > 0 and record["error"] is None
    if task in ("detect", "point"):
        assert record["image_size"] == [400, 300]
        assert len(record[task + ("ions" if task == "detect" else "s")]) >= 1
    else:
        assert record["answer"]


def test_every_batch_line_has_one_shape(
    runner: CliRunner, emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.png").write_bytes(make_scene(i, size=(160, 120)).to_png_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    schema = tmp_path / "count.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"count": {"type": "integer"}}}))
    env = {"OPENAI_API_KEY": KEY}
    runs = {
        "query": ["How many shapes?"],
        "json": ["How many shapes?", "--schema", str(schema)],
        "detect": ["--detect", "shapes"],
        "point": ["--point", "shapes"],
    }
    for task, extra in runs.items():
        out = tmp_path / f"{task}.jsonl"
        result = runner.invoke(
            app, ["batch", str(folder), *extra, "-o", str(out), *_emu(emulator)], env=env
        )
        assert result.exit_code == 1, result.output  # the broken file
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) == 4
        for rec in lines:
            _validate(rec)
            assert rec["task"] == task
            assert rec["answer"] is None or task == "query"
            rec["answer"]  # never a KeyError, failed or not
        failed = [r for r in lines if r["error"]]
        assert [r["error"]["type"] for r in failed] == ["ImageError"]
        assert failed[0]["usage"] is None and failed[0]["model"] is None
        ok = [r for r in lines if not r["error"]]
        if task == "json":
            assert all(isinstance(r["json"], dict) for r in ok)
        else:
            assert all(r["usage"]["input_tokens"] > 0 and r["attempts"] == 1 for r in ok)


def test_batch_json_prints_the_summary(
    runner: CliRunner, emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(make_scene(1, size=(160, 120)).to_png_bytes())
    out = tmp_path / "r.jsonl"
    args = ["batch", str(folder), "How many shapes?", "-o", str(out), *_emu(emulator), "--json"]
    result = runner.invoke(app, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["found"] == summary["ok"] == summary["processed"] == 1
    assert summary["failed"] == 0 and summary["output"] == str(out)
    assert summary["input_tokens"] > 0


def test_record_round_trip_matches_the_documented_schema() -> None:
    old = {"image": "a.png", "task": "query", "error": {"type": "RateLimitError", "message": "x"}}
    rec = BatchRecord.from_json(json.dumps(old))  # a line of an older file: keys missing
    assert not rec.ok and rec.error is not None and rec.error.type == "RateLimitError"
    assert BatchRecord.from_json(rec.to_json()) == rec
    _validate(json.loads(rec.to_json()))


# --- 3. models -----------------------------------------------------------------------------


def test_models_filters_everything_printed(runner: CliRunner) -> None:
    fam = runner.invoke(app, ["models", "--family", "gemini"])
    assert fam.exit_code == 0
    assert "Model families" in fam.stdout and "Providers" not in fam.stdout
    assert len(re.findall(r"^│ gemini ", fam.stdout, flags=re.M)) == 1
    prov = runner.invoke(app, ["models", "--provider", "qwen"])
    assert prov.exit_code == 0
    assert "Model families" not in prov.stdout and "│ qwen" in prov.stdout
    assert "openai" not in prov.stdout
    data = json.loads(runner.invoke(app, ["models", "--provider", "anthropic", "--json"]).stdout)
    assert [p["name"] for p in data["providers"]] == ["anthropic"]  # the native provider
    assert [r["prefix"] for r in data["litellm_routes"]] == ["anthropic"]  # and the route
    assert data["families"] == []


@pytest.mark.parametrize("flag", ["--family", "--provider"])
def test_models_unknown_name_exit_2_with_known_names(runner: CliRunner, flag: str) -> None:
    result = runner.invoke(app, ["models", flag, "qwen9"])
    assert result.exit_code == 2
    assert "unknown" in result.stderr and "known: " in result.stderr
    assert ("qwen2.5-vl" if flag == "--family" else "dashscope") in result.stderr


def test_models_piped_is_never_truncated() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(
        [sys.executable, "-m", "vlgate", "models"], capture_output=True, text=True, env=env
    ).stdout
    assert "…" not in out
    for name in ("DASHSCOPE_API_KEY", "ALIBABA_API_KEY", "OPENROUTER_API_KEY"):
        assert name in out


# --- 4. help ---------------------------------------------------------------------------------

COMMANDS = (
    "query",
    "caption",
    "detect",
    "point",
    "batch",
    "models",
    "doctor",
    "emulate",
    "demo",
    "gateway",
    "gateway init",
)


def _help(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "80", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_reads_well_at_80_columns(runner: CliRunner, command: str | None) -> None:
    page = _help(runner, *(command.split() if command else []))
    lines = page.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "<bool>" not in page  # flags take no value
    prose = [ln for ln in lines if not ln.lstrip().startswith(("│", "╭", "╰"))]
    for line, following in itertools.pairwise(prose):
        # A short prose line followed by one continuing the sentence: a premature break.
        text, nxt = line.strip(), following.strip()
        if text and nxt and not line.startswith("     ") and not following.startswith("     "):
            assert not (len(line) < 60 and re.match(r"[a-z(]", nxt)), (command, line, following)
    # Examples fit: a command line is followed by a blank line, or continues after a backslash.
    for line, following in itertools.pairwise(prose):
        if line.lstrip().startswith("vlgate ") and not line.rstrip().endswith("\\"):
            assert not following.strip(), (command, line, following)


def test_global_flags_after_the_subcommand(
    runner: CliRunner, emulator: Emulator, scene: Path
) -> None:
    args = ["detect", str(scene), "shapes", *_emu(emulator)]
    env = {"OPENAI_API_KEY": KEY}
    after = runner.invoke(app, [*args, "-vv"], env=env)
    assert after.exit_code == 0, after.output
    assert "DEBUG vlgate" in after.stderr and KEY not in after.output
    split = runner.invoke(app, ["-v", *args, "-v"], env=env)  # counts add up: -vv
    assert split.exit_code == 0 and "DEBUG vlgate" in split.stderr
    quiet = runner.invoke(app, [*args[:2], "unicorn", *args[3:], "-q"], env=env)
    assert quiet.exit_code == 0 and "DEBUG" not in quiet.stderr
    page = _help(runner, "query")
    assert "--verbose" in page and "--quiet" in page


@pytest.mark.parametrize(
    ("where", "level"),
    [("after", logging.DEBUG), ("group", logging.DEBUG), ("quiet", logging.ERROR)],
)
def test_global_flags_after_the_gateway_subcommand(
    runner: CliRunner, tmp_path: Path, where: str, level: int
) -> None:
    out = tmp_path / "config.yaml"
    init = ["init", "-a", "vision=openai/gpt-4o", "-o", str(out)]
    args = {
        "after": ["gateway", *init, "-vv"],
        "group": ["gateway", "-v", *init, "-v"],  # counts add up: -vv
        "quiet": ["gateway", *init, "-q"],
    }[where]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert 'model_name: "vision"' in out.read_text()
    assert logging.getLogger("vlgate").level == level
    page = _help(runner, "gateway", "init")
    assert "--verbose" in page and "--quiet" in page


# --- 7. --progress off a terminal ------------------------------------------------------------


def test_progress_into_a_file_is_plain_text(
    runner: CliRunner, emulator: Emulator, tmp_path: Path
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.png").write_bytes(make_scene(i, size=(96, 72)).to_png_bytes())
    args = ["batch", str(folder), "How many shapes?", "-o", str(tmp_path / "r.jsonl")]
    result = runner.invoke(
        app, [*args, *_emu(emulator), "--progress", "-c", "1"], env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stderr and "━" not in result.stderr
    assert re.search(r"^batch 3/3 [\d.]+ it/s [\d,]+ tok", result.stderr, flags=re.M)


def test_detect_nothing_found_says_0_found(
    runner: CliRunner, emulator: Emulator, tmp_path: Path
) -> None:
    from PIL import Image as PILImage

    blank = tmp_path / "blank.png"
    PILImage.new("RGB", (200, 150), (128, 128, 128)).save(blank)  # no shapes to find
    args = ["detect", str(blank), "unicorn", *_emu(emulator)]
    result = runner.invoke(app, args, env={"OPENAI_API_KEY": KEY})
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.startswith("0 found: no 'unicorn'")
