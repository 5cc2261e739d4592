"""A robot's camera loop: 30 fps frames in, boxes about the latest frame out, twice a second.

Runs offline out of the box: it starts vlgate's emulator and a synthetic camera whose scene
changes every second. Point it at a real model with ``--model`` (and the provider's key in the
environment) and a real camera by replacing ``camera()``.

    python examples/robot_watch.py                       # offline, 5 seconds
    python examples/robot_watch.py --model gemini/gemini-2.5-flash --seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator

import numpy as np

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene


def camera(seconds: float, fps: float = 30.0) -> Iterator[tuple[float, np.ndarray]]:
    """Synthetic (timestamp, BGR frame) pairs at ``fps``: a new scene every second."""
    scenes = [np.asarray(make_scene(seed, size=(640, 480)).image)[..., ::-1] for seed in range(8)]
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        yield now, scenes[int(now - start) % len(scenes)]
        time.sleep(1 / fps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a real model string; default: the offline emulator")
    parser.add_argument("--target", default="circle", help="what to find in each frame")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--hz", type=float, default=2.0)
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.model:
            model = vlgate.create(args.model, timeout=5, max_retries=1)
        else:
            emu = stack.enter_context(Emulator(api_key="demo", latency=0.3, noise=False))
            model = vlgate.create("openai/qwen2.5-vl-7b", api_key="demo", api_base=emu.openai_base)
        stack.enter_context(model)
        frames = ((ts, vlgate.Image.from_bgr(frame)) for ts, frame in camera(args.seconds))
        watch = model.watch(frames, args.target, hz=args.hz, task="detect")
        for ts, boxes in watch:
            if isinstance(boxes, vlgate.VlgateError):
                print(f"{ts:10.2f}  error: {boxes}")
                continue
            found = ", ".join(f"{d.label} @ {tuple(round(v) for v in d.xyxy)}" for d in boxes)
            print(f"{ts:10.2f}  {len(boxes)} x {args.target}: {found or '-'}")
        stats = watch.stats
        print(f"frames {stats.frames}, dropped {stats.dropped}, requests {stats.sent}")


if __name__ == "__main__":
    main()
