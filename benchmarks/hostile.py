"""Hostile model answers: the worst parse time per convention, the event-loop stall it causes,
and evidence that parse time is linear in the answer's size.

A seeded corpus (:mod:`vlgate.testing.hostile`: runs of brackets and quotes, open tags, location
tokens without end, huge numbers and labels, truncated object lists, random soup over every
syntax's tokens) is parsed with ``parse_detections`` and ``parse_points`` under every
convention. Figures printed:

1. per convention, the worst CPU time over the corpus at 1 MB and which shape caused it;
2. linearity: the worst time over all conventions at 2 KB, 8 KB, 32 KB and 1 MB, with the time
   per KB (flat or falling = linear; the answer cap makes 1 MB cost what 256 KB does);
3. the event-loop stall: the longest gap of a 1 ms ticker while a coroutine handles the worst
   1 MB answer, parsed inline versus through vlgate's off-loop path (``asyncio.to_thread``
   above 32 KiB, as ``detect()`` and ``query_json()`` do), interleaved, median and min-max.

Run: ``python benchmarks/hostile.py`` (about a minute; ``--quick`` for a smaller corpus).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from vlgate.asks import off_loop_if_large
from vlgate.grounding import CONVENTIONS, parse_detections, parse_points
from vlgate.testing.hostile import hostile_answers

SIZE = (640, 480)
SEEN = (644, 476)


def _cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _parse(text: str, name: str) -> None:
    parse_detections(text, name, SIZE, SEEN)
    parse_points(text, name, SIZE, SEEN)


def worst_per_convention(size: int, soups: int) -> dict[str, tuple[float, str]]:
    corpus = hostile_answers(size, seed=9, soups=soups)
    worst: dict[str, tuple[float, str]] = {}
    for name in sorted(CONVENTIONS):
        for shape, text in corpus:
            took = _cpu(lambda t=text, n=name: _parse(t, n))  # type: ignore[misc]
            if took > worst.get(name, (0.0, ""))[0]:
                worst[name] = (took, shape)
    return worst


async def _stall(text: str, name: str, off_loop: bool) -> float:
    """Longest gap seen by a 1 ms ticker while ``text`` is parsed in a coroutine."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def handle() -> None:
        await asyncio.sleep(0.01)
        if off_loop:
            await off_loop_if_large(text, _parse, text, name)
        else:
            _parse(text, name)
        await asyncio.sleep(0.01)
        done.set()

    await asyncio.gather(ticker(), handle())
    return max(gaps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer random soups, fewer repeats")
    args = ap.parse_args()
    soups = 2 if args.quick else 8
    repeats = 3 if args.quick else 7

    print("1. worst parse time (detections + points) over the hostile corpus at 1 MB")
    worst = worst_per_convention(1_000_000, soups)
    for name, (took, shape) in sorted(worst.items(), key=lambda kv: -kv[1][0]):
        print(f"   {name:16s} {took * 1000:7.1f} ms   ({shape})")
    overall = max(worst.items(), key=lambda kv: kv[1][0])

    print("\n2. linearity: worst time over every convention and shape, by answer size")
    for size in (2_048, 8_192, 32_768, 1_000_000):
        w = worst_per_convention(size, soups)
        took, shape = max(w.values())
        per_kb = took * 1e6 / (size / 1024)
        print(f"   {size / 1024:7.0f} KB  {took * 1000:7.2f} ms   {per_kb:7.1f} µs/KB   ({shape})")

    name, (_, shape) = overall
    text = dict(hostile_answers(1_000_000, seed=9, soups=soups))[shape]
    print(f"\n3. event-loop stall while parsing the worst 1 MB answer ({shape}, {name})")
    inline: list[float] = []
    off: list[float] = []
    for _ in range(repeats):  # interleaved so both see the same machine
        inline.append(asyncio.run(_stall(text, name, off_loop=False)))
        off.append(asyncio.run(_stall(text, name, off_loop=True)))
    for label, xs in (("parsed inline", inline), ("off the loop ", off)):
        print(
            f"   {label}  median {statistics.median(xs) * 1000:6.1f} ms"
            f"  (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f})"
        )
    print(f"   ratio off/inline: {statistics.median(off) / statistics.median(inline):.2f}x")


if __name__ == "__main__":
    main()
