"""Issue 9 items 3 and 8: hostile answers and file names through the CLI.

Model answers are attacker-controlled text. What the CLI prints carries no terminal control
sequence; lone surrogates neither crash a print nor silently drop a batch line; an item whose
line cannot be written is counted and makes the exit code 1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vlgate.cli import app
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

MODEL = "openai/qwen2.5-vl-7b"
WIRE_MODEL = "qwen2.5-vl-7b"
KEY = "emu-key"
HOSTILE = "\x1b]0;pwned\x07A cat\x1b[2J\x9b31m on a mat.\r\nSecond\tline\u202e.\ud800"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

pytestmark = pytest.mark.usefixtures("cli_isolated")


def scene_png(path: Path, seed: int = 5) -> Path:
    path.write_bytes(make_scene(seed, size=(160, 120), n_shapes=2).to_png_bytes())
    return path


def emu_args(emu: Emulator) -> list[str]:
    return ["-m", MODEL, "--api-base", emu.openai_base]


def assert_terminal_safe(text: str) -> None:
    found = CONTROL.findall(text)
    assert not found, f"control characters reached the terminal: {found!r}"


def test_query_strips_control_sequences(tmp_path: Path, emulator: Emulator) -> None:
    emulator.say(WIRE_MODEL, [HOSTILE])
    image = scene_png(tmp_path / "a.png")
    result = CliRunner().invoke(
        app, ["query", str(image), "What is it?", *emu_args(emulator)], env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.stdout)
    assert result.stdout == "]0;pwnedA cat[2J31m on a mat.\nSecond\tline.\\ud800\n"


def test_query_json_keeps_the_exact_answer_escaped(tmp_path: Path, emulator: Emulator) -> None:
    emulator.say(WIRE_MODEL, [HOSTILE])
    image = scene_png(tmp_path / "a.png")
    result = CliRunner().invoke(
        app,
        ["query", str(image), "What is it?", "--json", *emu_args(emulator)],
        env={"OPENAI_API_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.stdout)
    assert json.loads(result.stdout)["answer"] == HOSTILE  # nothing lost, only escaped


def test_detect_labels_are_stripped(tmp_path: Path, emulator: Emulator) -> None:
    label = "cup\x1b]0;pwned\x07\x9b"
    emulator.say(WIRE_MODEL, [json.dumps([{"bbox_2d": [10, 10, 80, 60], "label": label}])])
    image = scene_png(tmp_path / "a.png")
    result = CliRunner().invoke(
        app, ["detect", str(image), "cup", *emu_args(emulator)], env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.output)
    assert result.stdout.startswith("cup")


def test_error_messages_naming_hostile_file_names_are_stripped(
    tmp_path: Path, emulator: Emulator
) -> None:
    name = str(tmp_path / "x\x1b]0;pwned\x07\x9b2J.png")
    result = CliRunner().invoke(
        app, ["query", name, "What?", *emu_args(emulator)], env={"OPENAI_API_KEY": KEY}
    )
    assert result.exit_code == 2
    assert "image file not found" in result.output
    assert_terminal_safe(result.output)
    assert emulator.requests == []


def test_query_with_lone_surrogate_has_no_traceback(tmp_path: Path, emulator: Emulator) -> None:
    # A real process with a real pipe: the encoding error used to end in a traceback.
    emulator.say(WIRE_MODEL, ["A cat.\ud83d and \udc00 more"])
    image = scene_png(tmp_path / "a.png")
    out = subprocess.run(
        [sys.executable, "-m", "vlgate", "query", str(image), "What?", *emu_args(emulator)],
        capture_output=True,
        env={**os.environ, "OPENAI_API_KEY": KEY, "PYTHONIOENCODING": "utf-8"},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert b"Traceback" not in out.stderr
    assert out.stdout.decode("utf-8") == "A cat.\\ud83d and \\udc00 more\n"


def test_batch_writes_every_line_despite_surrogates(tmp_path: Path, emulator: Emulator) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        scene_png(folder / f"s{i}.png", seed=i)
    # The file name itself is not valid UTF-8: os.fsdecode gives it a lone surrogate.
    weird = os.fsdecode(bytes(folder) + b"/caf\xe9.png")
    scene_png(Path(weird), seed=9)
    emulator.say(WIRE_MODEL, ["ok\ud800", HOSTILE, "\udfff"])
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(
        app,
        ["batch", str(folder), "What?", "-o", str(out), "-c", "1", *emu_args(emulator)],
        env={"OPENAI_API_KEY": KEY},
    )
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.output)
    records = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(records) == 7 and all(r["error"] is None for r in records)
    answers = [r["answer"] for r in records]
    assert "ok\ud800" in answers and HOSTILE in answers and "\udfff" in answers
    assert weird in {r["image"] for r in records}
    # A second run resumes: every image, the surrogate-named one included, is already done.
    again = CliRunner().invoke(
        app,
        ["batch", str(folder), "What?", "-o", str(out), *emu_args(emulator)],
        env={"OPENAI_API_KEY": KEY},
    )
    assert again.exit_code == 0, again.output
    assert len(emulator.requests) == 7


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_batch_items_whose_line_cannot_be_written_fail_the_run(
    tmp_path: Path, emulator: Emulator
) -> None:
    import resource

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(8):
        scene_png(folder / f"s{i}.png", seed=i)
    out = tmp_path / "r.jsonl"

    def small_files() -> None:  # writes past 1200 bytes fail with EFBIG: a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (1200, 1200))

    proc = subprocess.run(
        [
            *(sys.executable, "-m", "vlgate", "batch", str(folder), "What?"),
            *("-o", str(out), "-c", "2", *emu_args(emulator)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": KEY, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=small_files,
        timeout=120,
    )
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(emulator.requests) == 8  # every image was still asked: no worker died
    written = out.read_text("utf-8").splitlines()
    assert 0 < len(written) < 8
    assert re.search(r"error: [1-9]\d* result line\(s\) could not be written", proc.stderr)


def test_every_cli_print_goes_through_the_safe_helper() -> None:
    cli = Path(__file__).parent.parent / "src" / "vlgate" / "cli"
    offenders = [
        f"{path.name}:{n}"
        for path in sorted(cli.glob("*.py"))
        if path.name != "_common.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\btyper\.echo\(|(?<![.\w])print\(|sys\.std(out|err)\.write\(", line)
    ]
    assert offenders == ["__init__.py:40"]  # the static "install the cli extra" message
