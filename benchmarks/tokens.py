"""Image tokens and bytes: vlgate's provider-exact size vs sending the full-resolution frame.

For each provider, a camera frame is sized as vlgate plans it (``vlgate.planning.target_size``:
the provider's own resize rule, so its resize is a no-op) and counted with the provider's
formula (``vlgate.estimate_tokens``). The "full frame" column is what the same frame costs when
sent as is: the provider then resizes it itself (same tokens for OpenAI and Claude, which cap
server-side, but more bytes on the wire), while a self-hosted Qwen server with the common
16,384-token ``max_pixels`` default bills far more tokens. JPEG bytes are measured by encoding.

    python benchmarks/tokens.py
"""

from __future__ import annotations

import math

import numpy as np

import vlgate
from vlgate import planning, sizing
from vlgate.config import ModelConfig
from vlgate.registry import resolve
from vlgate.tokens import formula_for

FRAMES = [(640, 480), (1280, 720), (1920, 1080), (4032, 3024)]
MODELS = [
    ("openai/gpt-4o", None),
    ("openai/gpt-4.1-mini", None),
    ("anthropic/claude-sonnet-4-6", None),
    ("gemini/gemini-2.5-flash", None),
    ("qwen/qwen2.5-vl-72b-instruct", 28),
    ("vllm/Qwen/Qwen3-VL-8B-Instruct", 32),
]


def full_frame_tokens(model: str, size: tuple[int, int], qwen_factor: int | None) -> int:
    """Tokens billed when the raw frame is sent and the provider resizes it itself."""
    if qwen_factor is not None:
        # A vLLM / HF server with the default 16,384-token max_pixels (coords.md Part B).
        f = qwen_factor
        w, h = sizing.smart_resize(*size, factor=f, max_pixels=16384 * f * f)
        return (w * h) // (f * f) + 2
    formula = formula_for(resolve(model))
    assert formula is not None
    return formula.count(*size)


def frame(size: tuple[int, int]) -> vlgate.Image:
    rng = np.random.default_rng(0)
    w, h = size
    # A smooth gradient with mild noise: compresses like a camera frame, not like flat colour.
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    arr = (x * 0.6 + y * 0.4 + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
    return vlgate.Image.load(arr)


def main() -> None:
    print(
        f"{'model':32s} {'frame':>10s} {'sent':>10s} {'tokens':>7s} {'full':>7s} "
        f"{'ratio':>6s} {'KB sent':>8s} {'KB full':>8s}"
    )
    totals: dict[str, tuple[int, int]] = {}
    images = {size: frame(size) for size in FRAMES}
    for model, qwen in MODELS:
        route = resolve(model)
        cfg = ModelConfig(model=model)
        for size in FRAMES:
            planned = planning.target_size(size, route, cfg)
            # Both columns under the same server assumption: for Qwen rows, what a 16k-budget
            # server bills for the planned size (vlgate's own estimate assumes DashScope's cap).
            tokens = (
                vlgate.estimate_tokens(size, model)
                if qwen is None
                else full_frame_tokens(model, planned, qwen)
            )
            full = full_frame_tokens(model, size, qwen)
            img = images[size]
            sent_kb = planning.encode_for(img, route, cfg).nbytes / 1024
            full_kb = img.encode(limits=route.service.limits).nbytes / 1024
            t, f = totals.get(model, (0, 0))
            totals[model] = (t + tokens, f + full)
            print(
                f"{model:32s} {size[0]:>4d}x{size[1]:<5d} {planned[0]:>4d}x{planned[1]:<5d} "
                f"{tokens:>7d} {full:>7d} {full / tokens:>5.2f}x {sent_kb:>8.0f} {full_kb:>8.0f}"
            )
    print("\nper model, all four frames: full-frame tokens / provider-exact tokens")
    for model, (t, f) in totals.items():
        print(f"  {model:32s} {f / t:5.2f}x  ({t} vs {f} tokens)")
    assert all(math.isfinite(f / t) for t, f in totals.values())


if __name__ == "__main__":
    main()
