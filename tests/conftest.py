"""Shared fixtures: small images in every form, and environment hygiene.

The ``emulator`` fixture comes from vlgate's own pytest plugin (``vlgate.testing``).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image as PILImage

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
