"""Client CPU per request: vlgate's routes vs a raw aiohttp (and raw httpx) POST of the same body.

Honest by construction:

* the emulator runs in its own process, so only the client's CPU is counted
  (``time.process_time`` of this process, per block of requests);
* every request carries a fresh frame (a new numpy array, one pixel changed), so nothing encoded
  is reused: each baseline does the minimum a client must do too (JPEG-encode the frame with
  simplejpeg, base64, build the protocol's JSON body, serialise, POST, parse the answer);
* the baseline of each route is a raw aiohttp POST of that route's own wire body (OpenAI,
  Anthropic Messages, Gemini generateContent); raw httpx is shown for the OpenAI body;
* blocks of all clients are interleaved round by round, in a fresh random order each round (so
  no client always runs right after another), each block starting from a collected heap (so
  one client's garbage is not collected on another's time); drift on a shared machine hits all
  alike;
* the ratio is paired: each round divides a client's block by its baseline's block of the same
  round, and the median of those per-round ratios is printed with their min-max spread, next to
  the median CPU ms [min-max], at concurrency 1 and 16.

Rows ``vlgate <route>/`` are the whole ``aquery(frame)`` (image load and encode in vlgate's worker
pool, planning, token estimate, retry layer, the wire). Rows ``... wire path only`` encode the
frame in the loop like the baselines and call the route's provider directly: what the provider
and the shared HTTP client cost over a raw POST.

    python benchmarks/overhead.py [--rounds 15] [--block 32] [--size 320x240] [--no-litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import simplejpeg

import vlgate
from vlgate import planning

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"
PROMPT = "Describe this image."
Call = Callable[[np.ndarray], Awaitable[Any]]


class Frames:
    """A fresh frame per request: a smooth camera-like scene (gradient, a block, mild noise)
    with one pixel changed, so no client can reuse an earlier encoding."""

    def __init__(self, w: int, h: int) -> None:
        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) % 256], -1)
        base[h // 4 : h // 2, w // 4 : w // 2] = (200, 40, 40)
        noise = rng.integers(-6, 7, (h, w, 3))
        self.base = np.clip(base + noise, 0, 255).astype(np.uint8)
        self.n = 0

    def next(self) -> np.ndarray:
        self.n += 1
        frame = self.base.copy()
        frame[0, 0, 0] = self.n % 256
        frame[0, 1, 0] = (self.n // 256) % 256
        return frame


def b64_jpeg(frame: np.ndarray) -> str:
    # The encoding vlgate itself uses for frames (quality 90, 4:2:0), so both sides pay the same.
    data = simplejpeg.encode_jpeg(frame, quality=90, colorspace="RGB", colorsubsampling="420")
    return base64.b64encode(data).decode("ascii")


def openai_body(frame: np.ndarray) -> bytes:
    url = "data:image/jpeg;base64," + b64_jpeg(frame)
    content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": PROMPT}]
    return json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
    ).encode()


def anthropic_body(frame: np.ndarray) -> bytes:
    src = {"type": "base64", "media_type": "image/jpeg", "data": b64_jpeg(frame)}
    content = [{"type": "image", "source": src}, {"type": "text", "text": PROMPT}]
    return json.dumps(
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": content}],
        }
    ).encode()


def gemini_body(frame: np.ndarray) -> bytes:
    parts = [{"inlineData": {"mimeType": "image/jpeg", "data": b64_jpeg(frame)}}, {"text": PROMPT}]
    return json.dumps({"contents": [{"role": "user", "parts": parts}]}).encode()


async def measure(
    clients: dict[str, Call], frames: Frames, rounds: int, block: int, concurrency: int
) -> dict[str, list[float]]:
    """CPU ms per request of each client, one sample per round (blocks interleaved)."""
    samples: dict[str, list[float]] = {name: [] for name in clients}

    async def run_block(call: Call) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await call(frames.next())

        await asyncio.gather(*(one() for _ in range(block)))

    for call in clients.values():  # warm up: connections, lazy imports, caches
        await run_block(call)
    order = random.Random(concurrency)
    names = list(clients)
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            gc.collect()
            t = time.process_time()
            await run_block(clients[name])
            samples[name].append((time.process_time() - t) * 1000 / block)
    return samples


def report(samples: dict[str, list[float]], baselines: dict[str, str], concurrency: int) -> None:
    print(f"\nconcurrency {concurrency}: client CPU ms per request, median [min-max] over rounds")
    print(
        f"  {'client':40s} {'CPU ms':>8s} {'spread':>15s}  ratio to raw aiohttp (same body), "
        "median [min-max] of per-round ratios"
    )
    for name, s in samples.items():
        med = statistics.median(s)
        base = baselines.get(name)
        ratio = ""
        if base is not None and base != name:
            r = [a / b for a, b in zip(s, samples[base], strict=True)]
            ratio = f"{statistics.median(r):5.2f}x [{min(r):4.2f}-{max(r):4.2f}]  ({base})"
        print(f"  {name:40s} {med:8.3f} [{min(s):6.3f}-{max(s):6.3f}]  {ratio}")


async def run(base: str, args: argparse.Namespace) -> None:
    w, h = (int(v) for v in args.size.split("x"))
    frames = Frames(w, h)
    oa_url = base + "/v1/chat/completions"
    an_url = base + "/v1/messages"
    ge_url = base + "/v1beta/models/gemini-2.5-flash:generateContent"
    oa_h = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    an_h = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "Content-Type": "application/json"}
    ge_h = {"x-goog-api-key": KEY, "Content-Type": "application/json"}
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    hx = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64))

    def raw_aiohttp(url: str, headers: dict[str, str], body: Callable[[np.ndarray], bytes]) -> Call:
        async def call(frame: np.ndarray) -> Any:
            async with session.post(url, data=body(frame), headers=headers) as r:
                r.raise_for_status()
                return json.loads(await r.read())

        return call

    async def raw_httpx(frame: np.ndarray) -> Any:
        r = await hx.post(oa_url, content=openai_body(frame), headers=oa_h)
        r.raise_for_status()
        return json.loads(r.content)

    def vl(model: str, api_base: str) -> tuple[vlgate.VlModel, Call]:
        m = vlgate.create(model, api_key=KEY, api_base=api_base, max_concurrency=64)

        async def call(frame: np.ndarray) -> Any:
            return await m.aquery(frame, PROMPT)

        return m, call

    def vl_transport(m: vlgate.VlModel) -> Call:
        # The same fresh frame, encoded in the loop (as the raw baselines do) and sent through
        # the route's provider: vlgate's wire path without its off-loop image pipeline.
        engine = m._primary

        async def call(frame: np.ndarray) -> Any:
            encoded = engine.encode(vlgate.Image.load(frame))
            request = planning.build_request(engine.route, engine.config, [encoded], PROMPT, {})
            return await engine.provider.complete(request)

        return call

    models: list[vlgate.VlModel] = []
    clients: dict[str, Call] = {
        "raw aiohttp POST (OpenAI body)": raw_aiohttp(oa_url, oa_h, openai_body),
        "raw httpx POST (OpenAI body)": raw_httpx,
        "raw aiohttp POST (Anthropic body)": raw_aiohttp(an_url, an_h, anthropic_body),
        "raw aiohttp POST (Gemini body)": raw_aiohttp(ge_url, ge_h, gemini_body),
    }
    baselines: dict[str, str] = {}
    routes = [
        ("openai/gpt-4o-mini", base + "/v1", "OpenAI"),
        ("anthropic/claude-sonnet-4-5", base, "Anthropic"),
        ("gemini/gemini-2.5-flash", base, "Gemini"),
    ]
    if not args.no_litellm:
        routes += [
            ("litellm/openai/gpt-4o-mini", base + "/v1", "OpenAI"),
            ("litellm/anthropic/claude-sonnet-4-5", base, "Anthropic"),
            ("litellm/gemini/gemini-2.5-flash", base, "Gemini"),
        ]
    for model, api_base, wire in routes:
        m, call = vl(model, api_base)
        models.append(m)
        name = f"vlgate {model.rsplit('/', 1)[0]}/"
        clients[name] = call
        baselines[name] = f"raw aiohttp POST ({wire} body)"
        if not model.startswith("litellm/"):
            clients[name + " wire path only"] = vl_transport(m)
            baselines[name + " wire path only"] = baselines[name]
    baselines["raw httpx POST (OpenAI body)"] = "raw aiohttp POST (OpenAI body)"
    print(
        f"{w}x{h} fresh frames, {args.rounds} rounds x {args.block} requests per client, "
        "emulator in its own process"
    )
    for concurrency in (1, 16):
        samples = await measure(clients, frames, args.rounds, args.block, concurrency)
        report(samples, baselines, concurrency)
    for m in models:
        await m.astop()
    await session.close()
    await hx.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--block", type=int, default=32, help="requests per client per round")
    parser.add_argument("--size", default="320x240", help="frame size WxH")
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM rows")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    with emulator_process(KEY) as base:
        asyncio.run(run(base, args))


if __name__ == "__main__":
    main()
