"""Measure how many OpenAI requests per second the emulator serves: text-only, or with a
distinct 320x240 scene frame in every request (``--frames``: no analysis cache hit, the case of
every benchmark that sends real frames).

The emulator runs in a separate process (``python -m vlgate.testing``) so the client's CPU use
does not compete for the server's GIL. The client has N concurrent workers on one
``aiohttp.ClientSession`` (default) or one ``httpx.AsyncClient`` (``--client httpx``). On a shared
2-core machine the client competes with the server for CPU, so the server's own capacity is also
reported from its CPU time (Linux ``/proc``): requests per second per core of server CPU. Runs
repeat (``--runs``); the median and the min-max spread are printed.

    .venv/bin/python benchmarks/emulator_rps.py [--requests N] [--concurrency N] [--frames]
        [--baseline-src DIR]

``--baseline-src DIR`` alternates runs with an emulator imported from another source tree (an
older vlgate's ``src``, e.g. ``git archive <commit> src | tar -x -C /tmp/old``) and prints both,
so a before/after ratio comes from one interleaved run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import aiohttp
import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bodies(frames: int) -> list[bytes]:
    """Request bodies: one text-only body, or ``frames`` distinct scene JPEGs (320x240)."""
    if not frames:
        text = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}
        return [json.dumps(text).encode()]
    from vlgate.testing.scenes import make_scene

    out = []
    for seed in range(frames):
        buf = io.BytesIO()
        make_scene(seed, size=(320, 240)).image.convert("RGB").save(buf, "JPEG", quality=90)
        uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        content = [
            {"type": "image_url", "image_url": {"url": uri}},
            {"type": "text", "text": "How many shapes are there?"},
        ]
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
        out.append(json.dumps(body).encode())
    return out


async def _run_aiohttp(
    base: str, total: int, concurrency: int, bodies: list[bytes]
) -> tuple[float, int]:
    headers = {"Authorization": "Bearer emu-key", "Content-Type": "application/json"}
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as client:
        for _ in range(300):  # wait for the server (slow to import on a busy machine)
            try:
                async with client.get("/v1/models") as r:
                    await r.read()
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        queue = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                body = bodies[i % len(bodies)]
                async with client.post("/v1/chat/completions", data=body) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, errors


async def _run(base: str, total: int, concurrency: int, bodies: list[bytes]) -> tuple[float, int]:
    headers = {"Authorization": "Bearer emu-key", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    errors = 0
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        for _ in range(300):  # wait for the server (slow to import on a busy machine)
            try:
                await client.get("/v1/models")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        queue = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                r = await client.post("/v1/chat/completions", content=bodies[i % len(bodies)])
                if r.status_code != 200:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp")
    ap.add_argument("--frames", action="store_true", help="a distinct 320x240 JPEG per request")
    ap.add_argument("--distinct", type=int, default=512, help="distinct frames cycled through")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline-src", help="also run an emulator from this source tree")
    args = ap.parse_args()
    # Cycling through more frames than the emulator caches (128 analyses, 256 probes): every
    # request is analysed afresh.
    bodies = _bodies(args.distinct if args.frames else 0)
    run = _run_aiohttp if args.client == "aiohttp" else _run
    trees = {"this tree": None}
    if args.baseline_src:
        trees["baseline"] = os.path.abspath(args.baseline_src)
    rates: dict[str, list[float]] = {name: [] for name in trees}
    capacities: dict[str, list[float]] = {name: [] for name in trees}
    errors = 0
    for _ in range(args.runs):
        for name, src in trees.items():  # interleaved
            env = dict(os.environ)
            if src is not None:
                env["PYTHONPATH"] = src
            port = _free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "vlgate.testing", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                env=env,
            )
            try:
                time.sleep(1.5)  # let the server import before counting its CPU time
                # Warm up (imports on first image, connection pool), not counted.
                asyncio.run(run(f"http://127.0.0.1:{port}", 64, args.concurrency, bodies[-64:]))
                cpu0 = _cpu_seconds(server.pid)
                elapsed, errs = asyncio.run(
                    run(f"http://127.0.0.1:{port}", args.requests, args.concurrency, bodies)
                )
                cpu1 = _cpu_seconds(server.pid)
            finally:
                server.terminate()
                server.wait(10)
            errors += errs
            rates[name].append(args.requests / elapsed)
            if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
                capacities[name].append(args.requests / (cpu1 - cpu0))
    kind = f"distinct 320x240 JPEG frames ({len(bodies)} cycled)" if args.frames else "text-only"
    print(
        f"{args.client} client, {kind}, {args.requests} requests x {args.runs} runs, "
        f"concurrency {args.concurrency}, {errors} errors"
    )
    for name in trees:
        label = f"[{name}] " if len(trees) > 1 else ""
        print(
            f"  {label}measured:        {_spread(rates[name])} requests/s "
            "(client and server share the CPU)"
        )
        if capacities[name]:
            print(
                f"  {label}server capacity: {_spread(capacities[name])} "
                "requests/s per core of server CPU"
            )
    if len(trees) > 1 and capacities["this tree"] and capacities["baseline"]:
        ratio = statistics.median(capacities["this tree"]) / statistics.median(
            capacities["baseline"]
        )
        print(f"  server capacity, this tree / baseline: {ratio:.2f}x (ratio of medians)")


def _spread(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):,.0f} (min-max {min(values):,.0f}-{max(values):,.0f})"
    )


if __name__ == "__main__":
    main()
