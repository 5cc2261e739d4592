"""vlgate ``query_batch`` vs ``litellm.batch_completion`` on the same images, same emulator.

The emulator runs in its own process with a fixed latency (default 200 ms, a fast hosted VLM).
Both clients get the same JPEG bytes; LiteLLM gets them as data URIs (it does no resizing), vlgate
as raw bytes (it loads, sizes and encodes them itself). Runs alternate; the median and the min-max
spread of each are printed, ratios are of medians.

    python benchmarks/vs_litellm.py [--images 64] [--latency 0.2] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

import vlgate
from vlgate.testing.scenes import make_scene

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"
PROMPT = "How many shapes are there?"


def jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    make_scene(seed, size=(640, 480)).image.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    images = [jpeg(i) for i in range(args.images)]
    litellm.suppress_debug_info = True

    with emulator_process(KEY, latency=args.latency) as base:
        api_base = base + "/v1"
        model = vlgate.create(
            "openai/gpt-4o", api_key=KEY, api_base=api_base, max_concurrency=args.images
        )
        model_default = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=api_base)
        messages = [
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": "data:image/jpeg;base64," + base64.b64encode(b).decode()
                            },
                        },
                        {"type": "text", "text": PROMPT},
                    ],
                }
            ]
            for b in images
        ]

        def run_vlgate() -> list[str]:
            return [str(a) for a in model.query_batch(images, PROMPT)]

        def run_vlgate_default() -> list[str]:
            return [str(a) for a in model_default.query_batch(images, PROMPT)]

        def run_litellm() -> list[str]:
            out = litellm.batch_completion(
                model="openai/gpt-4o", messages=messages, api_base=api_base, api_key=KEY
            )
            bad = [r for r in out if isinstance(r, Exception)]
            if bad:
                raise RuntimeError(f"litellm returned {len(bad)} errors, e.g. {bad[0]!r}")
            return [r.choices[0].message.content for r in out]

        default_c = model_default.max_concurrency
        runners = {
            f"vlgate query_batch (max_concurrency={args.images})": run_vlgate,
            f"vlgate query_batch (default max_concurrency={default_c})": run_vlgate_default,
            "litellm.batch_completion (100 threads)": run_litellm,
        }
        for fn in runners.values():  # warm up: imports, connections
            fn()
        times: dict[str, list[float]] = {name: [] for name in runners}
        answers: dict[str, list[str]] = {}
        for _ in range(args.runs):
            for name, fn in runners.items():
                t = time.perf_counter()
                answers[name] = fn()
                times[name].append(time.perf_counter() - t)

    ref = statistics.median(times["litellm.batch_completion (100 threads)"])
    print(
        f"{args.images} images 640x480 JPEG, emulator latency {args.latency * 1000:.0f} ms, "
        f"median of {args.runs} runs"
    )
    for name, samples in times.items():
        med = statistics.median(samples)
        print(
            f"  {name:52s} {med:6.3f} s (min-max {min(samples):.3f}-{max(samples):.3f})  "
            f"{med / ref:5.2f}x litellm"
        )
    same = sum(
        a == b
        for a, b in zip(
            answers[next(iter(runners))],
            answers["litellm.batch_completion (100 threads)"],
            strict=True,
        )
    )
    print(f"  identical answers: {same}/{args.images}")


if __name__ == "__main__":
    main()
