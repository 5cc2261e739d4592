"""Client overhead per request: vlgate vs a raw httpx POST of the same payload, same emulator.

The emulator runs in its own process (no shared GIL). Each round sends one request per client,
interleaved, so drift on this shared machine hits all of them alike; medians are compared.

    python benchmarks/overhead.py [--rounds 300] [--concurrent 400] [--latency 0.0]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai
from PIL import Image as PILImage

import vlgate
from vlgate import planning
from vlgate.providers.base import to_openai_messages

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"
PROMPT = "Describe this image."


def png(size: tuple[int, int] = (320, 240)) -> bytes:
    buf = io.BytesIO()
    PILImage.new("RGB", size, (40, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


async def run(base: str, rounds: int, concurrent: int) -> None:
    data = png()
    model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=base + "/v1", max_concurrency=64)
    image = vlgate.Image.load(data)
    engine = model._primary  # the same encoded bytes vlgate sends
    request = planning.build_request(
        engine.route, engine.config, [engine.encode(image)], PROMPT, {}
    )
    messages = to_openai_messages(request)
    payload = json.dumps({"model": "gpt-4o", "messages": messages}).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    raw = httpx.AsyncClient(base_url=base + "/v1", headers=headers, timeout=60)
    sdk = openai.AsyncOpenAI(api_key=KEY, base_url=base + "/v1", max_retries=0)

    async def raw_post() -> None:
        r = await raw.post("/chat/completions", content=payload)
        r.raise_for_status()
        json.loads(r.content)

    async def sdk_call() -> None:
        await sdk.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]

    aio: openai.AsyncOpenAI | None = None
    try:
        import httpx_aiohttp  # noqa: F401  (openai's aiohttp transport, optional)

        aio = openai.AsyncOpenAI(
            api_key=KEY,
            base_url=base + "/v1",
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
    except ImportError:
        pass

    async def sdk_aio() -> None:
        assert aio is not None
        await aio.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]

    async def vl_image() -> None:
        await model.aquery(image, PROMPT)

    async def vl_bytes() -> None:
        await model.aquery(data, PROMPT)

    clients = {
        "raw httpx POST": raw_post,
        "openai SDK (same messages)": sdk_call,
        **({"openai SDK, aiohttp transport": sdk_aio} if aio is not None else {}),
        "vlgate aquery(Image)": vl_image,
        "vlgate aquery(png bytes)": vl_bytes,
    }
    for fn in clients.values():  # warm up connections and lazy imports
        for _ in range(5):
            await fn()
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, fn in clients.items():
            t = time.perf_counter()
            await fn()
            samples[name].append(time.perf_counter() - t)
    base_ms = statistics.median(samples["raw httpx POST"]) * 1000
    print(f"sequential, {rounds} rounds, median latency per request (emulator in its own process)")
    for name, s in samples.items():
        ms = statistics.median(s) * 1000
        print(f"  {name:30s} {ms:7.3f} ms   {ms / base_ms:5.2f}x raw   (+{ms - base_ms:.3f} ms)")

    sem = asyncio.Semaphore(64)

    async def limited() -> None:
        async with sem:
            await raw_post()

    t = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(concurrent)))
    t_raw = time.perf_counter() - t
    t = time.perf_counter()
    await model.aquery_batch([image] * concurrent, PROMPT)
    t_vl = time.perf_counter() - t
    print(f"concurrent, {concurrent} requests, 64 at a time")
    print(f"  raw httpx        {concurrent / t_raw:7.1f} req/s")
    print(f"  vlgate batch     {concurrent / t_vl:7.1f} req/s   {t_vl / t_raw:5.2f}x raw time")
    await raw.aclose()
    await sdk.close()
    if aio is not None:
        await aio.close()
    await model.astop()

    with tempfile.TemporaryDirectory() as tmp:
        cached = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=base + "/v1", cache=tmp)
        await cached.aquery(image, PROMPT)
        hits = []
        for _ in range(rounds):
            t = time.perf_counter()
            answer = await cached.aquery(image, PROMPT)
            hits.append(time.perf_counter() - t)
            assert answer.cached
        print(
            f"cache hit, aquery(Image) end to end: median {statistics.median(hits) * 1000:.3f} ms, "
            f"p99 {sorted(hits)[int(len(hits) * 0.99) - 1] * 1000:.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--concurrent", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.0, help="emulator latency, seconds")
    args = parser.parse_args()
    with emulator_process(KEY, latency=args.latency) as base:
        asyncio.run(run(base, args.rounds, args.concurrent))


if __name__ == "__main__":
    main()
