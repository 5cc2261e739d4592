"""The hash-checked locks are portable and agree with ``pyproject.toml``.

``requirements-dev.lock`` (everything but torch) resolves from the package registry alone for every
Python the package supports, on Linux and macOS; ``requirements-local.lock`` (the optional
``local`` extra) carries torch's CPU build. These tests re-run each lock's own compile command
(the one written at its top) and compare the pinned sets, and resolve each lock for Python 3.10 and
3.12 on Linux and macOS, which fails when a pinned release has no wheel or sdist there. uv answers
from its cache when it can (``--offline``) and asks the registry otherwise; with neither, the tests
skip and say so.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ("requirements-dev.lock", "requirements-local.lock", "requirements-dimos.lock")
# Where a path of one particular machine would show: absolute paths under the usual roots of
# local state and file URLs, anywhere; and, in a lock, a find-links or index line.
MACHINE_PATH = re.compile(
    r"(?<![\w.:/-])/(?:opt|home|root|work|tmp|mnt|srv|Users|var/folders|usr/local)/|file://"
)
LOCK_SOURCE = re.compile(r"^--(?:find-links|index-url|extra-index-url|trusted-host)\b", re.M)
# What uv says when it has neither the cache nor the network it needs.
UNREACHABLE = re.compile(
    r"network connectivity is disabled|not found in the cache|failed to fetch|error sending request"
    r"|dns error|connection (?:refused|reset)|timed out|could not connect|tcp connect",
    re.IGNORECASE,
)
Done = subprocess.CompletedProcess[str]
TARGETS = [
    (py, platform)
    for py in ("3.10", "3.12")  # 3.11 is what scripts/test installs
    for platform in ("x86_64-manylinux_2_28", "aarch64-apple-darwin")
]


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (it comes with requirements-dev.lock)")
    return found


def _run_uv(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run uv from its cache first, then online; skip when neither can answer."""
    # torch 2.13's Apple-silicon wheels are for macOS 14 and later.
    env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0"}
    offline = subprocess.run(
        [_uv(), *args, "--offline"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    if offline.returncode == 0 or not UNREACHABLE.search(offline.stderr):
        return offline
    try:
        online = subprocess.run(
            [_uv(), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the package index did not answer uv within 300 s")
    if online.returncode != 0 and UNREACHABLE.search(online.stderr):
        pytest.skip(f"uv could not reach the package index: {online.stderr.strip()[-300:]}")
    return online


def _torch_wheels() -> str | None:
    """The directory or index the local lock's torch CPU build is compiled from, if any."""
    if os.environ.get("TORCH_CPU_WHEELS"):
        return os.environ["TORCH_CPU_WHEELS"]
    # Else whatever pip on this machine is configured to find wheels in.
    links = os.environ.get("PIP_FIND_LINKS", "").split()
    if not links:
        conf = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
        )
        links = re.findall(r"find-links='([^']+)'", conf.stdout)
    for link in links:
        if any(Path(link).glob("torch-2.13.0+cpu-*.whl")):
            return link
    return None


def _compile_command(lock: str, out: Path) -> list[str]:
    header = (ROOT / lock).read_text().splitlines()[1]
    args = shlex.split(header.lstrip("# "))
    assert args[:3] == ["uv", "pip", "compile"], f"{lock}: no compile command on line 2"
    args[args.index("-o") + 1] = str(out)
    if '"$TORCH_CPU_WHEELS"' in header:
        wheels = _torch_wheels()
        if wheels is None:
            pytest.skip(
                "no torch 2.13.0+cpu wheel to recompile requirements-local.lock from "
                "(set TORCH_CPU_WHEELS)"
            )
        args[args.index("$TORCH_CPU_WHEELS")] = wheels
    return args[1:]


def _pins(text: str) -> dict[str, set[str]]:
    """``name==version ; marker`` -> its hashes, from a uv requirements file."""
    pins: dict[str, set[str]] = {}
    for entry in re.split(r"\n(?=\S)", text):
        first = entry.split("\\", 1)[0].strip()
        if first and not first.startswith("#"):
            pins[first] = set(re.findall(r"--hash=(\S+)", entry))
    return pins


def test_no_machine_path_in_locks_or_scripts() -> None:
    files = [
        *(ROOT / lock for lock in LOCKS),
        ROOT / "local-overrides.txt",
        ROOT / "pyproject.toml",
        *sorted((ROOT / "scripts").iterdir()),
        *sorted((ROOT / ".ci").iterdir()),
    ]
    for path in files:
        text = path.read_text()
        hits = [m.group(0) for m in MACHINE_PATH.finditer(text)]
        if path.suffix == ".lock":
            hits += [m.group(0) for m in LOCK_SOURCE.finditer(text)]
        assert not hits, f"{path.relative_to(ROOT)} names a machine-local location: {hits}"


def test_machine_path_check_catches_what_it_is_for() -> None:
    for bad in ("--find-links /opt/wheels\n", "x @ file:///srv/w.whl", "/home/me/torch.whl"):
        assert MACHINE_PATH.search(bad), bad
    assert LOCK_SOURCE.search("# header\n--find-links wheels\n")
    assert not MACHINE_PATH.search('#!/usr/bin/env bash\n--find-links "$TORCH_CPU_WHEELS"')


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_matches_pyproject(lock: str, tmp_path: Path) -> None:
    # Recompiling into a copy keeps every pin that still satisfies pyproject.toml, so any
    # difference is a dependency that changed without the lock being recompiled.
    out = tmp_path / lock
    shutil.copy(ROOT / lock, out)
    done = _run_uv([*_compile_command(lock, out), "-q"])
    assert done.returncode == 0, done.stderr
    want, have = _pins(out.read_text()), _pins((ROOT / lock).read_text())
    assert want.keys() == have.keys(), (
        f"{lock} is out of date with pyproject.toml: run scripts/lock "
        f"(missing {sorted(want.keys() - have.keys())}, stale {sorted(have.keys() - want.keys())})"
    )
    changed = sorted(k for k in want if want[k] != have[k])
    assert not changed, f"{lock}: hashes differ for {changed}; run scripts/lock"


def test_dev_lock_leaves_torch_out() -> None:
    names = {re.split(r"[=;\s]", k)[0] for k in _pins((ROOT / LOCKS[0]).read_text())}
    assert "uv" in names and "litellm" in names
    assert not names & {"torch", "nvidia-cublas-cu12", "nvidia-cublas"}


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_a_distribution_for_each_python_and_platform(
    lock: str, tmp_path: Path
) -> None:
    def resolve(target: tuple[str, str]) -> tuple[tuple[str, str], Done]:
        py, platform = target
        args = ["pip", "compile", lock, "--no-deps", "--no-header", "-q"]
        args += ["--python-version", py, "--python-platform", platform]
        args += ["-o", str(tmp_path / f"{py}-{platform}.txt")]
        if lock == "requirements-local.lock" and (wheels := _torch_wheels()):
            args += ["--find-links", wheels]
        return target, _run_uv(args)

    with ThreadPoolExecutor(len(TARGETS)) as pool:
        results = list(pool.map(resolve, TARGETS))
    for (py, platform), done in results:
        if lock == "requirements-local.lock" and _torch_wheels() is None and "torch" in done.stderr:
            continue  # the CPU build is not available here to check
        assert done.returncode == 0, f"{lock} on Python {py} {platform}: {done.stderr}"
        pinned = _pins((tmp_path / f"{py}-{platform}.txt").read_text())
        assert pinned, f"{lock}: nothing resolved for Python {py} {platform}"
