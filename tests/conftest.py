"""Shared fixtures: small images in every form, and environment hygiene.

The ``emulator`` fixture comes from vlgate's own pytest plugin (``vlgate.testing``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image as PILImage

from vlgate.testing import Emulator
from vlgate.testing.scenes import Scene

# Property tests explore the same examples on every run: a CI failure reproduces locally.
settings.register_profile("vlgate", derandomize=True)
settings.load_profile("vlgate")

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

KEY = "emu-key"

_PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "DASHSCOPE_API_KEY",
    "ALIBABA_API_KEY",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_BASE",
    "GEMINI_API_BASE",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "LITELLM_API_KEY",
    "LITELLM_API_BASE",
    "VLLM_BASE_URL",
    "VLLM_API_KEY",
    "OLLAMA_BASE_URL",
    "VLGATE_MODEL",
    "MOONDREAM_API_KEY",
    "MOONDREAM_BASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a real key or endpoint from the developer's shell."""
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


def png_bytes(
    size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(
    size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (30, 30, 200)
) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


SIZE_PROMPT = (
    'Reply in JSON: {"type": "object", "properties": {"width": {"type": "integer"}, '
    '"height": {"type": "integer"}}}'
)
"""A prompt the emulator answers with the size of the image it received, as JSON: a test that
must tell images apart asks this (captions name no pixel sizes, as a real model's would not)."""


def size_in(answer: object) -> tuple[int, int]:
    """``(width, height)`` from the emulator's answer to :data:`SIZE_PROMPT`."""
    got = json.loads(str(answer))
    return int(got["width"]), int(got["height"])


def answer_to(emu: Emulator, size: tuple[int, int]) -> str:
    """The text the emulator answered to the one request whose single image had this upright
    size as received: ties an answer to the image that arrived, whatever the request order."""
    hits = [r for r in emu.requests if r.status == 200 and [i.size for i in r.images] == [size]]
    assert len(hits) == 1, [([i.size for i in r.images], r.status) for r in emu.requests]
    assert hits[0].response_text is not None
    return hits[0].response_text


def assert_describes(caption: str, scene: Scene) -> None:
    """The emulator's caption names this scene: its shape count and every shape, as often as
    the scene has it (``"... 3 shapes ...: a red circle at the top left, ..."``)."""
    n = len(scene.shapes)
    assert f" {n} shape{'s' if n != 1 else ''} " in caption, caption
    named = Counter(re.findall(r"(?:: |, | and )a (\w+ \w+) (?:at|on|in) the", caption))
    assert named == Counter(sh.label for sh in scene.shapes), caption


@pytest.fixture
def rgb_array() -> np.ndarray:
    arr = np.zeros((48, 64, 3), dtype=np.uint8)
    arr[:, :32] = (255, 0, 0)
    arr[:, 32:] = (0, 0, 255)
    return arr


@pytest.fixture
def cli_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For CLI tests: no config file of the developer's is read (a fresh working and config
    dir, no VLGATE_* overrides), and vlgate's logger is restored after ``-v`` changed it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in (
        "VLGATE_API_BASE",
        "VLGATE_CONFIG",
        "VLGATE_TIMEOUT",
        "VLGATE_MAX_CONCURRENCY",
        "NO_COLOR",
    ):
        monkeypatch.delenv(name, raising=False)
    logger = logging.getLogger("vlgate")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
