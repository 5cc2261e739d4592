"""query_batch vs one by one, event-loop stalls during a batch of 1080p frames, and start-up time.

1. ``query_batch`` of 24 scene images at concurrency 8 vs the same queries one by one, against
   the emulator (own process) at 200 ms: wall-time ratio (ideal 1/8), interleaved runs.
2. Loop lag: a 32-frame 1080p batch to gpt-4o (resized to 1365x768 and JPEG-encoded by vlgate)
   through ``aquery_batch`` on the caller's own event loop, while a probe coroutine asks to wake
   every 5 ms; the longest it waited past that is the longest stall during the batch. The same
   probe on an idle loop for as long is the machine's own noise floor (a busy shared machine
   deschedules any process now and then), printed alongside.
3. Start-up in fresh interpreters: ``import vlgate``, and ``import vlgate`` + the first
   ``create()`` (which imports the provider's HTTP stack).

Every figure: median and min-max of ``--runs`` runs.

    python benchmarks/batch.py [--images 24] [--latency 0.2] [--concurrency 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import vlgate
from vlgate.testing.scenes import make_scene

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"


def spread(values: list[float], fmt: str = ".3f") -> str:
    med = statistics.median(values)
    return f"{med:{fmt}} (min-max {min(values):{fmt}}-{max(values):{fmt}})"


def startup(code: str, runs: int) -> list[float]:
    """Seconds for ``code`` in fresh interpreters (it prints its own timing)."""
    return [
        float(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]


def frame_1080p(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1080, 0:1920].astype(np.float32)
    base = np.stack([x / 1920 * 255, y / 1080 * 255, (x + y) / 3000 * 255], axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


async def idle_lag(seconds: float) -> float:
    """Longest overshoot of a 5 ms sleep on this loop with nothing else running."""
    worst = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        worst = max(worst, time.perf_counter() - t - 0.005)
    return worst


async def lag_run(model: vlgate.VlModel, frames: list[np.ndarray]) -> tuple[float, float, float]:
    """(batch wall seconds, longest stall, longest idle stall over as long) on this loop."""
    worst = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal worst
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - t - 0.005)

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.02)
    t0 = time.perf_counter()
    answers = await model.aquery_batch(frames, "Describe this image.")
    wall = time.perf_counter() - t0
    done.set()
    await task
    assert len(answers) == len(frames)
    return wall, worst, await idle_lag(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    images = [make_scene(i, size=(320, 240)).image for i in range(args.images)]
    prompt = "How many shapes are there?"
    with emulator_process(KEY, latency=args.latency) as base:
        model = vlgate.create(
            "openai/gpt-4o-mini",
            api_key=KEY,
            api_base=base + "/v1",
            max_concurrency=args.concurrency,
        )
        model.query(images[0], prompt)  # warm up: connection, imports
        ratios: list[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            batch = model.query_batch(images, prompt)
            t_batch = time.perf_counter() - t0
            t0 = time.perf_counter()
            one_by_one = [model.query(img, prompt) for img in images]
            t_seq = time.perf_counter() - t0
            assert [str(a) for a in batch] == [str(a) for a in one_by_one], "answers differ"
            ratios.append(t_batch / t_seq)
        model.stop()
    print(
        f"1. {args.images} images, emulator latency {args.latency * 1000:.0f} ms, "
        f"max_concurrency {args.concurrency}, {args.runs} runs"
    )
    print(f"   query_batch / one by one: {spread(ratios)}  (ideal {1 / args.concurrency:.3f})")

    frames = [frame_1080p(i) for i in range(args.frames)]
    with emulator_process(KEY, latency=0.1) as base:

        async def lag() -> list[tuple[float, float, float]]:
            model = vlgate.create(
                "openai/gpt-4o", api_key=KEY, api_base=base + "/v1", max_concurrency=32
            )
            await model.aquery(frames[0][:64, :64], "warm up")
            out = [await lag_run(model, frames) for _ in range(args.runs)]
            await model.astop()
            return out

        runs = asyncio.run(lag())
    print(
        f"2. {args.frames} 1080p frames to gpt-4o (sent at 1365x768), emulator latency 100 ms, "
        "max_concurrency 32, on the caller's loop"
    )
    print(f"   batch wall s:                      {spread([r[0] for r in runs])}")
    stall = spread([r[1] * 1000 for r in runs], ".1f")
    print(f"   longest loop stall ms:             {stall}  (goal <= 50)")
    idle = spread([r[2] * 1000 for r in runs], ".1f")
    print(f"   same probe, idle loop, as long ms: {idle}")

    t_import = startup(
        "import time; t = time.perf_counter(); import vlgate; print(time.perf_counter() - t)",
        args.runs + 2,
    )
    t_create = startup(
        "import time; t = time.perf_counter(); import vlgate; "
        "vlgate.create('openai/gpt-4o-mini', api_key='k', api_base='http://127.0.0.1:9/v1'); "
        "print(time.perf_counter() - t)",
        args.runs + 2,
    )
    print(f"3. import vlgate s:                  {spread(t_import)}")
    print(f"   import vlgate + first create() s: {spread(t_create)}")


if __name__ == "__main__":
    main()
