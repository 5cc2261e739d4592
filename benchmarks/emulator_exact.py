"""Check that the emulator's image analysis gives identical answers in two source trees.

A speed-up of the emulator's vision must not change what it sees. This builds 200 reference
images (scenes at varied sizes as JPEG at several qualities, PNG, EXIF-rotated JPEG, plus
photo-like gradients, noise and blank pages), runs the probe + analysis of this tree and of
``--baseline-src`` (each in its own process), and compares every result field (size, scene flag,
labels, boxes, centres, mean colour) and the reply text of every answer type (caption, count,
detect, point, JSON width/height) for two model families. Prints the number of differences;
exits 1 if there is any.

    .venv/bin/python benchmarks/emulator_exact.py --baseline-src /tmp/old/src [--n 200]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys

PROMPTS = (
    "Describe this image.",
    "How many shapes are there?",
    "Detect every shape. Return bounding boxes as JSON.",
    "Point to the red circle.",
    'Return JSON {"width": int, "height": int} of the image.',
)
MODELS = ("gpt-4o-mini", "qwen2.5-vl-7b-instruct")
_SIZES = ((320, 240), (64, 48), (640, 480), (240, 320), (1024, 768), (1280, 720), (97, 211))


def _images(n: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    from vlgate.testing.scenes import make_scene

    out: list[bytes] = []
    for i in range(n):
        kind = i % 10
        if kind == 8:  # a photo-like gradient with texture, or noise, or a blank page
            rng = np.random.default_rng(i)
            yy, xx = np.mgrid[0:240, 0:320]
            base = np.stack([xx * 0.8, yy, (xx + yy) * 0.4], axis=-1)
            pix = (base + rng.normal(0, 20, base.shape)).clip(0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pix).save(buf, "JPEG", quality=85)
            out.append(buf.getvalue())
            continue
        if kind == 9:
            rng = np.random.default_rng(i)
            if i % 20 == 9:
                pix = rng.integers(0, 256, (120, 160, 3), np.uint8)
            else:
                pix = np.full((120, 160, 3), 255 if i % 40 == 19 else 0, np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pix).save(buf, "PNG" if i % 3 else "JPEG")
            out.append(buf.getvalue())
            continue
        scene = make_scene(i, size=_SIZES[i % len(_SIZES)])
        if kind in (0, 1, 2, 3):
            out.append(scene.to_jpeg_bytes(quality=(90, 75, 95, 60)[kind]))
        elif kind == 4:
            out.append(scene.to_png_bytes())
        elif kind in (5, 6, 7):
            out.append(scene.to_jpeg_bytes(exif_orientation=(6, 3, 8)[kind - 5]))
    return out


def _results(n: int) -> list[object]:
    from vlgate.testing.answers import Ask, answer
    from vlgate.testing.imageio import probe
    from vlgate.testing.vision import analyze

    out: list[object] = []
    for data in _images(n):
        info = probe(data)  # the emulator probes first (it may hand its decode to the analysis)
        sight = analyze(data)
        replies = [
            answer(Ask(model=m, prompt=p, sights=[sight], noise=False))
            for m in MODELS
            for p in PROMPTS
        ]
        out.append([repr(info), repr(sight), replies])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline-src", help="the other tree's src (default: only print counts)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        json.dump(_results(args.n), sys.stdout)
        return
    trees = {"this tree": None, "baseline": args.baseline_src}
    got: dict[str, list[object]] = {}
    for name, src in trees.items():
        if name == "baseline" and src is None:
            continue
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = os.path.abspath(src)
        cmd = [sys.executable, __file__, "--child", "--n", str(args.n)]
        got[name] = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True).stdout)
    mine = got["this tree"]
    scenes = sum(1 for r in mine if isinstance(r, list) and "scene=True" in str(r[1]))
    replies = len(PROMPTS) * len(MODELS)
    print(f"{len(mine)} images ({scenes} recognised as scenes), {replies} replies each")
    if "baseline" not in got:
        return
    diffs = [i for i, (a, b) in enumerate(zip(mine, got["baseline"], strict=True)) if a != b]
    where = f" (images {diffs[:20]})" if diffs else ""
    print(f"differences from the baseline: {len(diffs)}{where}")
    for i in diffs[:3]:
        print(f"  image {i}:\n    this tree: {mine[i]}\n    baseline:  {got['baseline'][i]}")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
