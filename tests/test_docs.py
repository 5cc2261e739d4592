"""Every command and snippet in README.md and docs/*.md runs, or says why it cannot.

Conventions (documented in docs/emulator.md, "Checking the docs"): ``bash``/``sh``/``shell``
blocks run as scripts (``set -e``), ``console`` blocks run their ``$ `` lines, ``python`` blocks
run each as its own script; every page runs in order in a fresh temporary directory, without
provider keys, with ``vlgate`` (this checkout) on the PATH. An HTML comment on the line before
a block's opening fence changes that: ``<!-- docs-check: needs-key -->``,
``<!-- docs-check: skip REASON -->``, ``<!-- docs-check: background -->`` (a server kept
running for the rest of the page) or ``<!-- docs-check: exit N -->``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"bash", "sh", "shell", "console", "python"}
KINDS = {"needs-key", "skip", "background", "exit"}
BLOCK_TIMEOUT = 240.0

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*docs-check:\s*(?P<kind>[\w-]+)\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    code: str
    kind: str | None = None
    arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with the marker on the line before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m["indent"], m["fence"], m["lang"].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""
        ):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        block = Block(page, start + 1, lang, "\n".join(body) + "\n")
        prev = lines[start - 1] if start > 0 else ""
        marker = _MARKER.match(prev)
        if marker:
            block.kind, block.arg = marker["kind"], marker["arg"]
        found.append(block)
    return found


def _commands(block: Block) -> str:
    if block.lang != "console":
        return block.code
    return "\n".join(line[2:] for line in block.code.splitlines() if line.startswith("$ "))


@contextlib.contextmanager
def _page_lock() -> Iterator[None]:
    """Pages that start servers on fixed ports run one at a time on this machine."""
    path = Path(tempfile.gettempdir()) / "vlgate-docs-check.lock"
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sandbox(tmp: Path) -> dict[str, str]:
    """The environment of a page: this checkout's vlgate first on PATH, no provider keys."""
    from vlgate.cli._common import KEY_ENV_NAMES

    bin_dir = tmp / ".bin"
    bin_dir.mkdir()
    for name, target in (("vlgate", "-m vlgate"), ("python", ""), ("python3", "")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {target} "$@"\n')
        shim.chmod(0o755)
    drop = set(KEY_ENV_NAMES) | {"OPENAI_BASE_URL", "LITELLM_API_BASE", "VLLM_BASE_URL"}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith("VLGATE_") and k != "COLUMNS"
    }
    src = str(ROOT / "src")
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p),
        HOME=str(tmp),
        XDG_CONFIG_HOME=str(tmp / ".config"),
        XDG_CACHE_HOME=str(tmp / ".cache"),
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


def _argv(block: Block) -> list[str]:
    if block.lang == "python":
        return [sys.executable, "-c", block.code]
    return ["bash", "-e", "-o", "pipefail", "-c", _commands(block)]


def _start_background(block: Block, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        _argv(block),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # a server prints its banner when it is ready
    assert first and proc.poll() is None, f"{block.where}: background block did not start: {first}"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def check_page(page: Path, tmp: Path) -> list[str]:
    """Run the page's blocks; the list of problems (empty: the page is right)."""
    problems: list[str] = []
    env = _sandbox(tmp)
    cwd = tmp / "work"
    cwd.mkdir()
    servers: list[subprocess.Popen[str]] = []
    try:
        for block in blocks(page):
            if block.kind is not None and block.kind not in KINDS:
                problems.append(f"{block.where}: unknown docs-check marker {block.kind!r}")
                continue
            if block.lang not in RUN_LANGS or block.kind == "needs-key":
                continue
            if block.kind == "skip":
                if not block.arg:
                    problems.append(f"{block.where}: 'skip' needs a reason")
                continue
            if block.kind == "background":
                servers.append(_start_background(block, cwd, env))
                continue
            want = int(block.arg) if block.kind == "exit" else 0
            started = time.monotonic()
            try:
                done = subprocess.run(
                    _argv(block),
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=BLOCK_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                problems.append(f"{block.where}: still running after {BLOCK_TIMEOUT:.0f} s")
                continue
            if done.returncode != want:
                tail = (done.stdout + done.stderr)[-1500:]
                problems.append(
                    f"{block.where}: exit {done.returncode} (want {want}) after "
                    f"{time.monotonic() - started:.1f} s\n{_commands(block)}\n---\n{tail}"
                )
    finally:
        for proc in servers:
            _stop(proc)
    return problems


@pytest.mark.timeout(900)
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_snippet_runs_or_says_why(page: Path, tmp_path: Path) -> None:
    runnable = [b for b in blocks(page) if b.lang in RUN_LANGS]
    if not runnable:
        pytest.skip("no runnable blocks")
    with _page_lock():
        problems = check_page(page, tmp_path)
    assert not problems, "\n\n".join(problems)


def test_block_parser_reads_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "text\n<!-- docs-check: skip a placeholder -->\n```bash\nvlgate -v query ...\n```\n"
        "* item:\n\n  ```console\n  $ vlgate --version\n  vlgate 1\n  ```\n"
    )
    first, second = blocks(page)
    assert (first.kind, first.arg, first.code) == ("skip", "a placeholder", "vlgate -v query ...\n")
    assert second.lang == "console" and _commands(second) == "vlgate --version"


@pytest.mark.timeout(300)
def test_help_example_of_emulate_works_as_written(tmp_path: Path) -> None:
    """``vlgate emulate --help``'s two examples, run as printed."""
    from typer.testing import CliRunner

    from vlgate.cli import app

    page = CliRunner().invoke(app, ["emulate", "--help"], env={"COLUMNS": "100"}).stdout
    text = page.split("Examples:", 1)[1].split("╭", 1)[0]
    text = "\n".join(line.rstrip() for line in text.splitlines())
    commands = [c.strip() for c in re.split(r"\n\s*\n", text.replace("\\\n", " ")) if c.strip()]
    assert len(commands) == 2 and commands[0].startswith("vlgate emulate")
    doc = tmp_path / "help.md"
    doc.write_text(
        "<!-- docs-check: background -->\n```bash\n"
        + commands[0]
        + "\n```\n\n```bash\n"
        + commands[1]
        + "\n```\n"
    )
    with _page_lock():
        problems = check_page(doc, tmp_path)
    assert not problems, "\n".join(problems)
