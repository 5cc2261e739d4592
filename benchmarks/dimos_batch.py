"""dimos ``query_batch``: vlgate's concurrent batch against dimos's default sequential loop.

Both run on the same ``VlgateVlModel`` and the same emulator (its own process, fixed latency per
answer), interleaved A/B for ``--repeats`` rounds: A is ``VlgateVlModel.query_batch`` (one request
per frame, ``max_concurrency`` at a time), B is dimos's base-class ``VlModel.query_batch`` (a
``query`` per frame, one after the other). Prints medians, min-max and the ratio.

    python benchmarks/dimos_batch.py --frames 16 --latency 0.2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from _emu import emulator_process
from dimos.models.vl.base import VlModel
from dimos.msgs.sensor_msgs.Image import Image, ImageFormat

from vlgate.integrations.dimos import VlgateVlModel
from vlgate.testing.scenes import make_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.2, help="emulator seconds per answer")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    frames = []
    for i in range(args.frames):
        rgb = np.asarray(make_scene(i, size=(640, 480)).image.convert("RGB"))
        frames.append(Image(data=np.ascontiguousarray(rgb[..., ::-1]), format=ImageFormat.BGR))

    with emulator_process(latency=args.latency) as url:
        vlm = VlgateVlModel(
            "openai/gpt-4o-mini", api_key="bench-key", api_base=f"{url}/v1", max_concurrency=16
        )
        vlm.start()
        vlm.query(frames[0], "warm up")
        times: dict[str, list[float]] = {"vlgate": [], "dimos default": []}
        for _ in range(args.repeats):
            for name in times:
                started = time.perf_counter()
                if name == "vlgate":
                    answers = vlm.query_batch(frames, "Describe this image.")
                else:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # dimos's "sequential default" warning
                        answers = VlModel.query_batch(vlm, frames, "Describe this image.")
                times[name].append(time.perf_counter() - started)
                assert len(answers) == len(frames)
        vlm.stop()

    print(
        f"{args.frames} BGR 640x480 frames, emulator latency {args.latency}s, {args.repeats} rounds"
    )
    for name, ts in times.items():
        print(
            f"  {name:14s} median {statistics.median(ts):6.2f}s"
            f"  (min {min(ts):.2f} max {max(ts):.2f})"
        )
    ratio = statistics.median(times["dimos default"]) / statistics.median(times["vlgate"])
    print(f"  vlgate query_batch is {ratio:.1f}x faster than dimos's sequential default")


if __name__ == "__main__":
    main()
