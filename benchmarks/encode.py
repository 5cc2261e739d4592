"""Frames and files to the bytes vlgate sends, against plain Pillow doing the same job.

1. A 1920x1080 RGB frame (numpy) to a JPEG data URI at full size: vlgate vs Pillow + base64.
2. The same frame to gpt-4o: vlgate plans 1365x768 (OpenAI's own resize, done client-side), so
   load -> resize -> encode is compared with Pillow's plain encode of a frame already 1365x768
   (goal <= 1.3x): what the resize costs on top of the encode.
3. A JPEG file that fits every limit: vlgate checks its header and sends it unchanged, against
   decoding it (goal <= 0.1x of the decode); and a 4032x3024 JPEG to Claude (1568x1176), where
   vlgate decodes at a reduced DCT scale, against Pillow decode + resize + encode.

Every variant runs interleaved in one process (A, B, C, A, B, C, ...) so drift in CPU speed hits
all of them alike; the tables show the median wall time, the min-max spread and the ratio of
medians to the baseline, and the median CPU time of the process (every thread) beside it: vlgate
resizes on OpenCV's threads and, when no other encode is running, encodes a large frame's JPEG in
strips on the idle cores (``vlgate.image.jpegstrips``), so its wall time is below its CPU time.
vlgate builds a fresh ``Image`` each time (no cache hit).

Run: ``.venv/bin/python benchmarks/encode.py [--repeat 40]``
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
from vlgate import planning
from vlgate.config import ModelConfig
from vlgate.image import Image
from vlgate.registry import resolve


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
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, fn in variants.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn(frame, q)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    sizes = {name: len(fn(frame, q)) for name, fn in variants.items()}
    print(
        f"1. 1920x1080 RGB frame -> JPEG q{q} data URI; {args.repeat} interleaved runs; "
        f"simplejpeg {'on' if vimage.encode.jpeg() is not None else 'not installed'}"
    )
    table(times, sizes, "pillow + base64 (baseline)", cpu)

    # 2. The frame to gpt-4o: the planned size is OpenAI's own resize (1365x768).
    route, cfg = resolve("openai/gpt-4o"), ModelConfig(model="openai/gpt-4o")
    sent = planning.target_size(frame.shape[1::-1], route, cfg)
    small = np.asarray(PILImage.fromarray(frame).resize(sent, PILImage.Resampling.BILINEAR))
    jobs = {
        f"pillow JPEG of a {sent[0]}x{sent[1]} frame (baseline)": lambda: pillow_bytes(small, q),
        "vlgate load + resize + encode for gpt-4o": lambda: (
            planning.encode_for(Image.load(frame), route, cfg).data
        ),
    }
    print(f"\n2. 1920x1080 frame to gpt-4o, sent at {sent[0]}x{sent[1]} (goal <= 1.3x)")
    run_table(jobs, args.repeat)

    # 3. Files. A JPEG that fits: vlgate reads its header and sends it unchanged.
    data = pillow_bytes(frame, q)
    files = {
        "Pillow decode of the file (baseline)": lambda: PILImage.open(io.BytesIO(data)).load(),
        "vlgate Image.load(bytes).encode() (header only)": lambda: Image.load(data).encode().data,
    }
    print(f"\n3a. 1920x1080 JPEG file ({len(data)} B) that fits every limit (goal <= 0.1x)")
    run_table(files, args.repeat)

    big = pillow_bytes(make_frame(4032, 3024, seed=1), q)
    claude, ccfg = (
        resolve("anthropic/claude-sonnet-4-6"),
        ModelConfig(model="anthropic/claude-sonnet-4-6"),
    )
    target = planning.target_size((4032, 3024), claude, ccfg)

    def pillow_full() -> bytes:
        im = PILImage.open(io.BytesIO(big))
        return pillow_bytes(np.asarray(im.resize(target, PILImage.Resampling.BICUBIC)), q)

    photos = {
        "Pillow decode + resize + encode (baseline)": pillow_full,
        "vlgate load + draft decode + resize + encode": lambda: (
            planning.encode_for(Image.load(big), claude, ccfg).data
        ),
    }
    print(f"\n3b. 4032x3024 JPEG file to Claude, sent at {target[0]}x{target[1]}")
    run_table(photos, max(5, args.repeat // 4))


def pillow_bytes(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def run_table(jobs: dict[str, Callable[[], object]], repeat: int) -> None:
    for fn in jobs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in jobs}
    cpu: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, fn in jobs.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    table(times, None, next(iter(jobs)), cpu)


def table(
    times: dict[str, list[float]],
    sizes: dict[str, int] | None,
    baseline: str,
    cpu: dict[str, list[float]] | None = None,
) -> None:
    base = statistics.median(times[baseline])
    head = f"{'variant':50} {'median ms':>10} {'min-max ms':>15} {'ratio':>7}"
    if cpu:
        head += f" {'CPU ms':>8} {'CPU ratio':>9}"
    print(head + (f" {'URI chars':>10}" if sizes else ""))
    for name, samples in times.items():
        med = statistics.median(samples)
        span = f"{min(samples) * 1000:.2f}-{max(samples) * 1000:.2f}"
        line = f"{name:50} {med * 1000:10.2f} {span:>15} {med / base:6.2f}x"
        if cpu:
            c, cbase = statistics.median(cpu[name]), statistics.median(cpu[baseline])
            line += f" {c * 1000:8.2f} {c / cbase:8.2f}x"
        print(line + (f" {sizes[name]:10d}" if sizes else ""))


if __name__ == "__main__":
    main()
