"""query_batch at concurrency 8 vs the same queries one by one, against the emulator at 200 ms.

Also measures ``import vlgate`` in fresh interpreters. Prints ratios measured side by side in one
run (this machine is shared and noisy; absolute times drift, ratios hold).

    python benchmarks/batch.py [--images 24] [--latency 0.2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene


def import_time(runs: int = 5) -> float:
    """Median seconds for ``import vlgate`` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import vlgate; print(time.perf_counter() - t)"
    samples = [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    images = [make_scene(i, size=(320, 240)).image for i in range(args.images)]
    prompt = "How many shapes are there?"
    with Emulator(api_key="bench-key", latency=args.latency) as emu:
        model = vlgate.create(
            "openai/gpt-4o-mini",
            api_key="bench-key",
            api_base=emu.openai_base,
            max_concurrency=args.concurrency,
        )
        model.query(images[0], prompt)  # warm up: connection, SDK import
        emu.clear()

        t0 = time.perf_counter()
        batch = model.query_batch(images, prompt)
        t_batch = time.perf_counter() - t0
        n_batch = len(emu.requests)
        emu.clear()

        t0 = time.perf_counter()
        one_by_one = [model.query(img, prompt) for img in images]
        t_seq = time.perf_counter() - t0
        n_seq = len(emu.requests)
        model.stop()

    assert [str(a) for a in batch] == [str(a) for a in one_by_one], "answers differ"
    ideal = 1 / args.concurrency
    print(
        f"images: {args.images}, emulator latency: {args.latency * 1000:.0f} ms, "
        f"max_concurrency: {args.concurrency}"
    )
    print(f"query_batch:   {t_batch:6.2f} s  ({n_batch} requests)")
    print(f"one by one:    {t_seq:6.2f} s  ({n_seq} requests)")
    print(
        f"wall-time ratio batch/sequential: {t_batch / t_seq:.3f}  "
        f"(goal <= 0.40, ideal {ideal:.3f})"
    )
    print(f"import vlgate: {import_time():.3f} s (median of 5 fresh interpreters; goal < 0.5 s)")


if __name__ == "__main__":
    main()
