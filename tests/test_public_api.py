"""The front door: what `import vlgate` exports, and what it must not load."""

from __future__ import annotations

import json
import subprocess
import sys

import vlgate

EXPECTED = {
    "Answer",
    "AuthError",
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
