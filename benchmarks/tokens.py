"""Image tokens and bytes: what each provider bills for the size vlgate sends vs the raw frame.

For each route, a camera frame is sized as vlgate plans it (``vlgate.planning.target_size``: the
provider's own resize rule, so its resize is a no-op) and counted with the provider's formula
(``vlgate.estimate_tokens``). The "raw" columns are what the same frame costs when sent as is and
the provider resizes it itself, under the same server rules: DashScope's ~1280-token cap, a
self-hosted server's released processor budget, OpenAI's tile or patch rule, Claude's resize.

Pre-resizing to the provider's own size does not change the tokens billed (ratio 1.00: the
provider would resize the same way); it saves bytes on the wire and makes pixel coordinates map
back exactly. Tokens go down only with the parameters that change what the model sees, shown as
extra rows: ``detail="low"``, DashScope without ``vl_high_resolution_images``, a vLLM
``mm_processor_kwargs`` ``max_pixels`` below the processor's default.

    python benchmarks/tokens.py
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import vlgate
from vlgate import planning
from vlgate.config import ModelConfig
from vlgate.registry import resolve

FRAMES = [(640, 480), (1280, 720), (1920, 1080), (4032, 3024)]
ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("openai/gpt-4o", {}),
    ("openai/gpt-4o", {"detail": "low"}),
    ("openai/gpt-4.1-mini", {}),
    ("anthropic/claude-sonnet-4-6", {}),
    ("gemini/gemini-2.5-flash", {}),
    ("qwen/qwen2.5-vl-72b-instruct", {}),
    ("qwen/qwen2.5-vl-72b-instruct", {"vl_high_resolution_images": True}),
    ("vllm/Qwen/Qwen2.5-VL-7B-Instruct", {}),
    ("vllm/Qwen/Qwen2.5-VL-7B-Instruct", {"mm_processor_kwargs": {"max_pixels": 1003520}}),
    ("vllm/Qwen/Qwen3-VL-8B-Instruct", {}),
]


def raw_frame_tokens(model: str, size: tuple[int, int], params: dict[str, Any]) -> int:
    """Tokens billed when the raw frame is sent and the provider resizes it itself."""
    cfg = ModelConfig(model=model, provider_resize=False)
    return vlgate.estimate_tokens(size, model, config=cfg, **params)


def label(model: str, params: dict[str, Any]) -> str:
    if not params:
        return model
    key, value = next(iter(params.items()))
    short = "max_pixels=1003520" if key == "mm_processor_kwargs" else f"{key}={value}"
    return f"{model} {short}"


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
        f"{'route':62s} {'frame':>10s} {'sent':>10s} {'tokens':>7s} {'raw':>7s} "
        f"{'ratio':>6s} {'KB sent':>8s} {'KB raw':>8s}"
    )
    totals: dict[str, tuple[int, int, float, float]] = {}
    images = {size: frame(size) for size in FRAMES}
    for model, params in ROUTES:
        route = resolve(model)
        cfg = ModelConfig(model=model)
        name = label(model, params)
        for size in FRAMES:
            planned = planning.target_size(size, route, cfg, params)
            tokens = vlgate.estimate_tokens(size, model, **params)
            raw = raw_frame_tokens(model, size, params)
            img = images[size]
            sent_kb = planning.encode_for(img, route, cfg, params=params).nbytes / 1024
            raw_kb = img.encode(limits=route.service.limits).nbytes / 1024
            t, r, skb, rkb = totals.get(name, (0, 0, 0.0, 0.0))
            totals[name] = (t + tokens, r + raw, skb + sent_kb, rkb + raw_kb)
            print(
                f"{name:62s} {size[0]:>4d}x{size[1]:<5d} {planned[0]:>4d}x{planned[1]:<5d} "
                f"{tokens:>7d} {raw:>7d} {raw / tokens:>5.2f}x {sent_kb:>8.0f} {raw_kb:>8.0f}"
            )
    print("\nper route, all four frames: raw-frame / vlgate tokens, and bytes")
    for name, (t, r, skb, rkb) in totals.items():
        print(f"  {name:62s} tokens {r / t:5.2f}x ({t} vs {r})  bytes {rkb / skb:5.2f}x")
    assert all(math.isfinite(r / t) for t, r, _, _ in totals.values())


if __name__ == "__main__":
    main()
