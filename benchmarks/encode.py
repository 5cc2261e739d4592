"""Encode a 1920x1080 RGB frame (numpy) to a JPEG data URI: vlgate vs plain Pillow + base64.

Run: ``.venv/bin/python benchmarks/encode.py [--repeat 40]``

Every variant runs interleaved in one process (A, B, C, A, B, C, ...) so drift in CPU speed hits
all of them alike; the table shows medians and the ratio to the Pillow baseline (goal: <= 1.0x).
vlgate builds a fresh ``Image`` each time (no cache hit): load + validate + copy + encode + base64.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image as PILImage

import vlgate.image as vimage
from vlgate.image import Image


def make_frame(w: int = 1920, h: int = 1080, seed: int = 0) -> np.ndarray:
    """A photo-like frame: smooth gradients plus sensor-like noise (pure noise flatters nobody)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 100 * np.sin(x / 97.0) * np.cos(y / 53.0)
    g = 255 * x / w
    b = 255 * y / h
    frame = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (h, w, 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def pillow_baseline(frame: np.ndarray, quality: int) -> str:
    buf = io.BytesIO()
    PILImage.fromarray(frame).save(buf, "JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def vlgate_uri(frame: np.ndarray, quality: int) -> str:
    return Image.load(frame).encode(quality=quality).data_uri


def vlgate_pillow_only(frame: np.ndarray, quality: int) -> str:
    saved = vimage.encode.jpeg()
    vimage.encode._simplejpeg = None  # measure the fallback used when simplejpeg is not installed
    try:
        return Image.load(frame).encode(quality=quality).data_uri
    finally:
        vimage.encode._simplejpeg = saved


def vlgate_cached(img: Image, quality: int) -> Callable[[np.ndarray, int], str]:
    def run(_frame: np.ndarray, _q: int) -> str:
        return img.encode(quality=quality).data_uri

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()

    frame = make_frame()
    q = args.quality
    warm = Image.load(frame)
    variants: dict[str, Callable[[np.ndarray, int], str]] = {
        "pillow + base64 (baseline)": pillow_baseline,
        "vlgate Image.load().encode().data_uri": vlgate_uri,
    }
    if vimage.encode.jpeg() is not None:
        variants["vlgate, simplejpeg disabled (fallback)"] = vlgate_pillow_only
    variants["vlgate, same Image again (cache hit)"] = vlgate_cached(warm, q)

    for fn in variants.values():  # warm up: imports, allocator, libjpeg tables
        fn(frame, q)
        fn(frame, q)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn(frame, q)
            times[name].append(time.perf_counter() - t0)

    sizes = {name: len(fn(frame, q)) for name, fn in variants.items()}
    print(
        f"1920x1080 RGB frame -> JPEG q{q} data URI; median of {args.repeat} interleaved runs; "
        f"simplejpeg {'on' if vimage.encode.jpeg() is not None else 'not installed'}"
    )
    table(times, sizes, "pillow + base64 (baseline)")

    # An encoded JPEG file: vlgate decodes it once at load (truncation/bomb checks), then sends
    # the original bytes unchanged. The baseline only base64-encodes (no validation at all).
    jpeg = io.BytesIO()
    PILImage.fromarray(frame).save(jpeg, "JPEG", quality=q)
    data = jpeg.getvalue()
    files: dict[str, Callable[[], str]] = {
        "base64 of the file bytes (baseline)": lambda: (
            "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        ),
        "vlgate Image.load(bytes).encode().data_uri": lambda: Image.load(data).encode().data_uri,
    }
    ftimes: dict[str, list[float]] = {name: [] for name in files}
    for _ in range(args.repeat):
        for name, fn2 in files.items():
            t0 = time.perf_counter()
            fn2()
            ftimes[name].append(time.perf_counter() - t0)
    print(f"\nJPEG file bytes ({len(data)} B) -> data URI (vlgate: decode-validate + fast path)")
    table(ftimes, {name: len(fn2()) for name, fn2 in files.items()}, next(iter(files)))


def table(times: dict[str, list[float]], sizes: dict[str, int], baseline: str) -> None:
    base = statistics.median(times[baseline])
    print(f"{'variant':44} {'median ms':>10} {'ratio':>7} {'URI chars':>10}")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"{name:44} {med * 1000:10.2f} {med / base:6.2f}x {sizes[name]:10d}")


if __name__ == "__main__":
    main()
