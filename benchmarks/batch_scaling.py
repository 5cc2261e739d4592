"""How ``query_batch`` scales: wall time over the ideal, and peak memory growth, by batch size.

For n = 100, 1,000, 5,000 distinct 128x128 frames (numpy arrays, made before measuring) at
max_concurrency 8, 32 and 128, against the emulator (its own process) answering after a fixed
latency (default 100 ms). Each configuration runs in a fresh subprocess, so its peak RSS is its
own: growth = peak RSS during the batch (Linux VmHWM, reset just before it) minus RSS just
before it. ideal = ceil(n / concurrency) x latency. Each run is followed by the floor: a bare
aiohttp client posting the same frames (pre-encoded) at the same concurrency, so a busy machine
or a saturated emulator shows in both columns. Configurations whose ideal is short repeat
(``--repeat``); the median and the min-max spread are printed.

``--generator N`` instead streams N distinct frames from a generator (made on the fly, never a
list) through ``query_batch`` and through ``iter_batch`` at concurrency 128, and prints RSS
(after ``gc.collect()``) at every tenth of the way: flat apart from the answers ``query_batch``
must return (``iter_batch`` keeps none).

    python benchmarks/batch_scaling.py [--latency 0.1] [--sizes 100 1000 5000]
        [--concurrency 8 32 128] [--repeat 3]
    python benchmarks/batch_scaling.py --generator 50000 [--latency 0.0]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def frame(i: int, side: int) -> object:
    """A distinct camera-like frame: a smooth grey gradient tinted by ``i`` (noise or saturated
    colours would only measure the emulator's shape finder)."""
    import numpy as np

    ramp = np.linspace(40, 200, side, dtype=np.float32)
    grey = (ramp[None, :] + ramp[:, None]) / 2
    img = np.stack([grey + i % 16, grey + (i // 16) % 16, grey + (i // 256) % 16], axis=-1)
    return img.astype(np.uint8)


def child(n: int, concurrency: int, base: str) -> None:
    import vlgate

    frames = [frame(i, 128) for i in range(n)]
    model = vlgate.create(
        "openai/gpt-4o-mini", api_key=KEY, api_base=base + "/v1", max_concurrency=concurrency
    )
    model.query(frames[0], "warm up")  # imports, connection pool, worker threads
    gc.collect()
    before = rss_mb()
    exact = reset_peak()
    t0 = time.perf_counter()
    answers = model.query_batch(frames, "Describe this image.")
    wall = time.perf_counter() - t0
    peak = rss_mb("VmHWM") if exact else rss_mb()
    assert len(answers) == n and all(isinstance(a, str) for a in answers)
    model.stop()
    print(json.dumps({"wall": wall, "growth": peak - before, "exact_peak": exact}))


def stream_child(n: int, base: str, how: str) -> None:
    import threading

    import numpy as np

    import vlgate

    model = vlgate.create(
        "openai/gpt-4o-mini", api_key=KEY, api_base=base + "/v1", max_concurrency=128
    )
    model.query(np.zeros((64, 64, 3), np.uint8), "warm up")
    pulled = 0
    marks: list[tuple[int, float]] = []
    lock = threading.Lock()

    def frames() -> object:
        nonlocal pulled
        for i in range(n):
            if i % max(1, n // 10) == 0:
                gc.collect()
                with lock:
                    marks.append((i, rss_mb()))
            pulled += 1
            yield frame(i, 64)

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    if how == "query_batch":
        answers = model.query_batch(frames(), "Describe this image.")
        count = len(answers)
    else:
        count = sum(1 for _ in model.iter_batch(frames(), "Describe this image."))
    wall = time.perf_counter() - t0
    gc.collect()
    marks.append((n, rss_mb()))
    model.stop()
    print(json.dumps({"before": before, "marks": marks, "wall": wall, "count": count}))


def raw_child(n: int, concurrency: int, base: str) -> None:
    """The floor: a bare aiohttp client posting the same frames, pre-encoded (no vlgate)."""
    import asyncio
    import base64
    import io

    import aiohttp
    from PIL import Image as PILImage

    bodies = []
    for i in range(n):
        buf = io.BytesIO()
        PILImage.fromarray(frame(i, 128)).save(buf, "JPEG", quality=90)  # type: ignore[arg-type]
        uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        content = [
            {"type": "image_url", "image_url": {"url": uri}},
            {"type": "text", "text": "Describe this image."},
        ]
        msg = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
        bodies.append(json.dumps(msg).encode())

    async def run() -> float:
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(base, headers=headers, connector=connector) as client:
            async with client.post("/v1/chat/completions", data=bodies[0]) as r:
                await r.read()
            queue = iter(bodies)

            async def worker() -> None:
                for body in queue:
                    async with client.post("/v1/chat/completions", data=body) as r:
                        await r.read()

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return time.perf_counter() - t0

    print(json.dumps({"wall": asyncio.run(run())}))


def run_one(n: int, concurrency: int, base: str, mode: str = "--child") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, mode, str(n), str(concurrency), base],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def spread(values: list[float], fmt: str) -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:{fmt}} (1 run)"
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 5000])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[8, 32, 128])
    parser.add_argument("--repeat", type=int, default=3, help="runs of configurations <= 10 s")
    parser.add_argument("--generator", type=int, default=0, help="stream N frames instead")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--raw-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--stream-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), int(args.child[1]), args.child[2])
        return
    if args.raw_child:
        raw_child(int(args.raw_child[0]), int(args.raw_child[1]), args.raw_child[2])
        return
    if args.stream_child:
        stream_child(int(args.stream_child[0]), args.stream_child[1], args.stream_child[2])
        return
    if args.generator:
        streamed(args.generator, args.latency)
        return

    print(
        "query_batch of n distinct 128x128 frames (gradients), emulator latency "
        f"{args.latency * 1000:.0f} ms (own process), one subprocess per run; median (min-max)"
    )
    print(
        f"{'n':>6} {'conc':>5} {'wall s':>22} {'wall/ideal':>22} {'raw client wall/ideal':>22} "
        f"{'peak RSS growth MB':>24}"
    )
    with emulator_process(KEY, latency=args.latency) as base:
        for n in args.sizes:
            for c in args.concurrency:
                ideal = math.ceil(n / c) * args.latency
                runs, raws = [], []
                for _ in range(args.repeat if ideal <= 10 else 1):  # interleaved
                    runs.append(run_one(n, c, base))
                    raws.append(run_one(n, c, base, "--raw-child"))
                walls = [r["wall"] for r in runs]
                ratios = [w / ideal for w in walls]
                raw_ratios = [r["wall"] / ideal for r in raws]
                growth = [r["growth"] for r in runs]
                print(
                    f"{n:>6} {c:>5} {spread(walls, '.2f'):>22} {spread(ratios, '.3f'):>22} "
                    f"{spread(raw_ratios, '.3f'):>22} {spread(growth, '+.1f'):>24}",
                    flush=True,
                )
                if not all(r["exact_peak"] for r in runs):
                    print("        (VmHWM could not be reset: growth is end-of-batch RSS)")


def streamed(n: int, latency: float) -> None:
    print(
        f"{n:,} distinct 64x64 frames (gradients) from a generator, max_concurrency 128, "
        f"emulator latency {latency * 1000:.0f} ms; RSS in MB after gc.collect() at each tenth"
    )
    with emulator_process(KEY, latency=latency) as base:
        for how in ("iter_batch", "query_batch"):
            out = subprocess.run(
                [sys.executable, __file__, "--stream-child", str(n), base, how],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            marks = " ".join(f"{rss - r['before']:+.1f}" for _, rss in r["marks"])
            print(
                f"  {how:12} {r['count']:,} answers in {r['wall']:.1f} s "
                f"({r['count'] / r['wall']:.0f}/s); RSS growth at 0%..100%: {marks}"
            )


if __name__ == "__main__":
    main()
