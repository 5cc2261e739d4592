"""Adaptive concurrency (AIMD) against a provider's rate limit, vs fixed concurrency.

The emulator enforces ``--limit`` requests per ``--window`` seconds for the model and answers
the rest with 429 + Retry-After, after ``--latency`` seconds. A batch of ``--images`` small
frames runs with a fixed ``max_concurrency`` (64, and 4: ``adaptive_concurrency=False``), and
adaptive (cap 64) from 8 and from 64 (the default). Printed per variant: wall time, 429s drawn,
requests that failed after their retries, and the adaptive limit at the end. Each variant runs
``--runs`` times (interleaved); median and min-max.

    python benchmarks/adaptive.py [--images 200] [--limit 20] [--window 1.0] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import vlgate
from vlgate.testing import Emulator

KEY = "bench-key"
MODEL = "gpt-4o-mini"


def spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(args.images)]
    variants = {
        "fixed max_concurrency=64": {"max_concurrency": 64, "adaptive_concurrency": False},
        "fixed max_concurrency=4": {"max_concurrency": 4, "adaptive_concurrency": False},
        "adaptive (start 8, cap 64)": {
            "max_concurrency": 64,
            "adaptive_concurrency": True,
            "initial_concurrency": 8,
        },
        "adaptive (start 64, cap 64; the default)": {
            "max_concurrency": 64,
            "adaptive_concurrency": True,
            "initial_concurrency": 64,
        },
    }
    results: dict[str, list[tuple[float, int, int, int]]] = {name: [] for name in variants}
    with Emulator(api_key=KEY, latency=args.latency, retry_after=0.0) as emu:
        for _ in range(args.runs):
            for name, options in variants.items():
                model = vlgate.create(
                    f"openai/{MODEL}",
                    api_key=KEY,
                    api_base=emu.openai_base,
                    max_retries=3,
                    backoff_max=args.window * 2,
                    **options,
                )
                model.query(frames[0], "warm up")
                time.sleep(args.window)  # a fresh window for every variant
                emu.clear()
                emu.rate_limit(MODEL, rpm=args.limit, window=args.window)
                t0 = time.perf_counter()
                out = model.query_batch(frames, "Describe this image.", return_exceptions=True)
                wall = time.perf_counter() - t0
                rejected = sum(1 for r in emu.requests if r.status == 429)
                failed = sum(1 for a in out if isinstance(a, vlgate.VlgateError))
                results[name].append((wall, rejected, failed, model.concurrency))
                model.stop()

    ideal = args.images / args.limit * args.window
    print(
        f"{args.images} frames, emulator limit {args.limit} requests per {args.window:g} s "
        f"(429 + Retry-After beyond), latency {args.latency * 1000:.0f} ms, max_retries 3; "
        f"{args.runs} runs, median (min-max); the limit alone needs {ideal:.1f} s"
    )
    print(f"{'variant':30} {'wall s':>20} {'429s drawn':>20} {'failed':>14} {'final limit':>12}")
    for name, rows in results.items():
        print(
            f"{name:30} {spread([r[0] for r in rows], '.2f'):>20} "
            f"{spread([float(r[1]) for r in rows], '.0f'):>20} "
            f"{spread([float(r[2]) for r in rows], '.0f'):>14} "
            f"{spread([float(r[3]) for r in rows], '.0f'):>12}"
        )


if __name__ == "__main__":
    main()
