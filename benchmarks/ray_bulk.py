"""query_dataset on a local Ray with 1, 2 and 4 actors vs one query_batch in one process.

Same images (distinct synthetic scenes saved as PNG files), same emulator latency, same
per-process concurrency; the runs are interleaved and repeated, and the script prints each
configuration's wall time (median, min-max) and its throughput ratio to query_batch.

What it shows: each actor is one more process keeping ``max_concurrency`` requests in flight, so
throughput grows with actors while the server's latency is the limit. One process given the
*total* concurrency of N actors is printed too: on one machine with an I/O-bound job it is as
fast, so Ray pays off when one process's CPU (encoding, parsing) or one machine is the limit.
The actor-pool start-up (a fresh process importing vlgate) is included in every Ray run.

    python benchmarks/ray_bulk.py [--images 256] [--latency 0.5] [--concurrency 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")

import ray

import vlgate
import vlgate.integrations.ray as vray
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

KEY = "bench-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vlgate-ray-bench-"))
    paths = []
    for i in range(args.images):
        path = tmp / f"{i:05d}.png"
        make_scene(i, size=(320, 240)).image.save(path)
        paths.append(str(path))

    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    prompt = "How many shapes are there?"
    with Emulator(api_key=KEY, latency=args.latency) as emu:
        base = emu.url + "/v1"

        def batch(concurrency: int) -> Callable[[], int]:
            def run() -> int:
                model = vlgate.create(
                    "openai/gpt-4o-mini", api_key=KEY, api_base=base, max_concurrency=concurrency
                )
                answers = model.query_batch(paths, prompt, return_exceptions=True)
                model.stop()
                return sum(isinstance(a, str) for a in answers)

            return run

        def on_ray(actors: int) -> Callable[[], int]:
            def run() -> int:
                ds = ray.data.from_items([{"image": p} for p in paths])
                rows = vray.query_dataset(
                    ds,
                    "openai/gpt-4o-mini",
                    prompt,
                    api_key=KEY,
                    api_base=base,
                    num_actors=actors,
                    max_concurrency=args.concurrency,
                    num_cpus_per_actor=0.25,
                    batch_size=args.concurrency * 2,
                ).take_all()
                return sum(r["error"] is None for r in rows)

            return run

        configs: dict[str, Callable[[], int]] = {
            f"query_batch, concurrency {args.concurrency}": batch(args.concurrency),
            "ray, 1 actor": on_ray(1),
            "ray, 2 actors": on_ray(2),
            "ray, 4 actors": on_ray(4),
            f"query_batch, concurrency {4 * args.concurrency}": batch(4 * args.concurrency),
        }
        times: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, run in configs.items():  # interleaved: every round runs each once
                emu.clear()
                t0 = time.perf_counter()
                ok = run()
                times[name].append(time.perf_counter() - t0)
                assert ok == args.images, f"{name}: {ok}/{args.images} answered"
                assert len(emu.requests) == args.images, f"{name}: {len(emu.requests)} requests"

    ray.shutdown()
    ref = statistics.median(times[f"query_batch, concurrency {args.concurrency}"])
    print(
        f"{args.images} images, server latency {args.latency}s, max_concurrency "
        f"{args.concurrency} per process, {args.repeats} interleaved rounds"
    )
    print(f"{'configuration':34} {'wall s median (min-max)':>26} {'throughput vs batch':>20}")
    for name, samples in times.items():
        med = statistics.median(samples)
        spread = f"{med:6.2f} ({min(samples):.2f}-{max(samples):.2f})"
        print(f"{name:34} {spread:>26} {ref / med:>19.2f}x")


if __name__ == "__main__":
    main()
