"""Flat memory under a live stream: 30 fps frames into a 1 s-latency model for a minute.

A synthetic camera yields 640x480 RGB frames at 30 fps; ``model.watch(..., hz=1)`` asks about the
latest one. The emulator runs in its own process (it records every request, which would grow
this process). Every 2 s the sampler runs a full ``gc.collect()`` first (otherwise it reads the
collector's sawtooth, not a trend), then samples RSS and traced Python memory. Printed: the
samples, the mean of each 10 s window after a 10 s warm-up, and the least-squares trend over
those samples in MB per minute (flat memory: about 0).

    python benchmarks/watch_memory.py [--seconds 60] [--fps 30] [--latency 1.0] [--hz 1.0]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import vlgate

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def camera(seconds: float, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """Frames at a steady rate; every frame is a fresh 640x480x3 array (~0.9 MB)."""
    base = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        arr = np.roll(base, i, axis=1)
        yield time.time(), arr
        i += 1
        time.sleep(max(0.0, start + i / fps - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--hz", type=float, default=1.0)
    args = parser.parse_args()

    with emulator_process(KEY, latency=args.latency) as base:
        model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=base + "/v1")
        model.query(np.zeros((48, 64, 3), np.uint8), "warm up")
        tracemalloc.start()
        samples: list[tuple[float, float, float]] = []
        stop = threading.Event()
        t0 = time.monotonic()

        def sample() -> None:
            while not stop.wait(2.0):
                gc.collect()
                cur, _ = tracemalloc.get_traced_memory()
                samples.append((time.monotonic() - t0, rss_mb(), cur / 2**20))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        watch = model.watch(camera(args.seconds, args.fps), "Describe this image.", hz=args.hz)
        answers = 0
        for _ts, _answer in watch:
            answers += 1
        stop.set()
        sampler.join()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        model.stop()

    stats = watch.stats
    print(
        f"{args.seconds:.0f} s at {args.fps:.0f} fps, latency {args.latency:.1f} s, hz {args.hz}: "
        f"{stats.frames} frames, {answers} answers, {stats.dropped} dropped, "
        f"peak in flight {stats.peak_in_flight}"
    )
    print("  t(s)   RSS(MB)  traced(MB)")
    for t, rss, traced in samples:
        print(f"  {t:5.1f}  {rss:8.1f}  {traced:9.2f}")
    warm = [s for s in samples if s[0] >= 10.0] or samples
    windows: dict[int, list[tuple[float, float, float]]] = {}
    for s in warm:
        windows.setdefault(int(s[0] // 10), []).append(s)
    print("  10 s windows after warm-up (mean RSS MB / traced MB):")
    for w, group in sorted(windows.items()):
        rss_mean = statistics.fmean(g[1] for g in group)
        traced_mean = statistics.fmean(g[2] for g in group)
        print(f"    {w * 10:3d}-{w * 10 + 10:<3d} s  {rss_mean:8.1f}  {traced_mean:8.2f}")
    print(
        f"trend after 10 s (least squares, {len(warm)} samples): "
        f"RSS {slope(warm, 1) * 60:+.2f} MB/min, traced {slope(warm, 2) * 60:+.3f} MB/min; "
        f"RSS range {min(s[1] for s in warm):.1f}-{max(s[1] for s in warm):.1f} MB; "
        f"traced peak {peak / 2**20:.1f} MB"
    )


def slope(samples: list[tuple[float, float, float]], column: int) -> float:
    """Least-squares slope of ``column`` against time (units per second)."""
    if len(samples) < 2:
        return 0.0
    ts = [s[0] for s in samples]
    ys = [s[column] for s in samples]
    return statistics.linear_regression(ts, ys).slope


if __name__ == "__main__":
    main()
