"""The front door: what `import vlgate` exports, and what it must not load."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import vlgate
from vlgate.testing import Emulator

EXPECTED = {
    "Answer",
    "AuthError",
    "BatchJob",
    "BatchStatus",
    "ConfigError",
    "ConnectionError",
    "ContentFilteredError",
    "Detection",
    "Detections",
    "EncodedImage",
    "Image",
    "ImageError",
    "ModelConfig",
    "Point",
    "Points",
    "ProviderError",
    "RateLimitError",
    "ResponseError",
    "TimeoutError",
    "Usage",
    "VlModel",
    "VlgateError",
    "__version__",
    "create",
    "estimate_tokens",
    "resolve",
}


def test_all_is_exact_and_sorted() -> None:
    assert set(vlgate.__all__) == EXPECTED
    assert list(vlgate.__all__) == sorted(vlgate.__all__)
    for name in vlgate.__all__:
        assert hasattr(vlgate, name), name


def test_import_loads_no_sdk_and_no_heavy_dependency() -> None:
    code = (
        "import sys, json, vlgate; "
        "print(json.dumps(sorted(m for m in ('openai', 'litellm', 'httpx', 'aiohttp', 'numpy', "
        "'torch', 'transformers', 'typer', 'rich') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_errors_share_one_root_and_timeout_is_builtin_too() -> None:
    for name in (
        "ConfigError",
        "ImageError",
        "ResponseError",
        "ProviderError",
        "AuthError",
        "RateLimitError",
        "TimeoutError",
        "ConnectionError",
    ):
        assert issubclass(getattr(vlgate, name), vlgate.VlgateError), name
    assert issubclass(vlgate.TimeoutError, TimeoutError)
    assert issubclass(vlgate.ImageError, ValueError)


def test_create_with_missing_key_sends_nothing_and_never_imports_litellm() -> None:
    code = (
        "import sys, vlgate\n"
        "try:\n"
        "    vlgate.create('anthropic/claude-sonnet-4-6')\n"
        "except vlgate.ConfigError as e:\n"
        "    print('ConfigError', 'ANTHROPIC_API_KEY' in str(e), 'litellm' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.split() == ["ConfigError", "True", "False"]


def test_create_and_query_on_the_openai_route_load_no_integration_or_cli(
    emulator: Emulator,
) -> None:
    """The core never imports integrations, the CLI or the gateway: a fresh interpreter that
    creates a model and asks one question (on the wire, to the emulator) has none of them."""
    code = (
        "import io, json, os, sys, vlgate\n"
        "from PIL import Image\n"
        "buf = io.BytesIO(); Image.new('RGB', (32, 24), (200, 30, 30)).save(buf, 'PNG')\n"
        "m = vlgate.create('openai/gpt-4o-mini', api_key='emu-key',\n"
        "                  api_base=os.environ['EMU_BASE'])\n"
        "created = sorted(n for n in HEAVY if n in sys.modules)\n"
        "answer = m.query(buf.getvalue(), 'hi')\n"
        "after = sorted(n for n in HEAVY if n in sys.modules)\n"
        "print(json.dumps([created, after, bool(answer)]))\n"
    )
    heavy = ("ray", "opentelemetry", "dimos", "litellm", "typer", "rich", "torch", "openai")
    env = {**os.environ, "EMU_BASE": emulator.openai_base}
    out = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy!r}\n{code}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert json.loads(out.stdout) == [[], [], True]
    assert len(emulator.requests) == 1
