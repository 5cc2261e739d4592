"""Cold start: the first answer's latency without ``start()`` vs after ``start()``.

A robot creates its model at boot and asks its first question later. Without ``start()`` that
first question pays for everything lazy: LiteLLM's import (seconds) on a ``litellm/`` route, the
TCP connection to the endpoint on every HTTP route. ``start()`` does that work up front. Each run
is a fresh interpreter (nothing cached), against the emulator in its own process; the two modes
are interleaved and repeated, and the medians compared.

    python benchmarks/first_answer.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"
ROUTES = {
    "openai/gpt-4o": "/v1",
    "anthropic/claude-sonnet-4-5": "",
    "litellm/anthropic/claude-sonnet-4-5": "",
}

CHILD = """
import io, json, sys, time
t0 = time.perf_counter()
import vlgate
from PIL import Image
buf = io.BytesIO(); Image.new("RGB", (320, 240), (40, 120, 200)).save(buf, "PNG")
model = vlgate.create(sys.argv[1], api_key=sys.argv[2], api_base=sys.argv[3], max_retries=0)
t1 = time.perf_counter()
if sys.argv[4] == "started":
    model.start()
t2 = time.perf_counter()
answer = model.query(buf.getvalue(), "What colour?")
t3 = time.perf_counter()
assert answer
print(json.dumps({"create": t1 - t0, "start": t2 - t1, "first_answer": t3 - t2}))
"""


def run(model: str, base: str, mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), model, KEY, base, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    if done.stderr.strip():
        print(f"  stderr from {model} ({mode}): {done.stderr.strip()[:200]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def fmt(values: list[float]) -> str:
    lo, mid, hi = (v * 1000 for v in (min(values), statistics.median(values), max(values)))
    return f"{mid:7.1f} ms ({lo:.1f}-{hi:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with emulator_process(KEY) as url:
        for model, suffix in ROUTES.items():
            cold: list[float] = []
            warm: list[float] = []
            starts: list[float] = []
            for _ in range(args.runs):  # interleaved: drift on the shared machine hits both
                cold.append(run(model, url + suffix, "cold")["first_answer"])
                got = run(model, url + suffix, "started")
                warm.append(got["first_answer"])
                starts.append(got["start"])
            ratio = statistics.median(cold) / statistics.median(warm)
            print(f"{model}")
            print(f"  first answer, no start():    {fmt(cold)}")
            print(f"  start():                     {fmt(starts)}")
            print(f"  first answer after start():  {fmt(warm)}")
            print(f"  ratio (median): {ratio:.1f}x faster first answer")


if __name__ == "__main__":
    main()
