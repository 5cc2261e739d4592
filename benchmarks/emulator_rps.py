"""Measure how many small text-only OpenAI requests per second the emulator serves.

The emulator runs in a separate process (``python -m vlgate.testing``) so the client's CPU use
does not compete for the server's GIL. The client has N concurrent workers on one
``aiohttp.ClientSession`` (default) or one ``httpx.AsyncClient`` (``--client httpx``). httpx is
itself the bottleneck at ~300 requests/s on this 2-core machine, so the server's own capacity is
also reported from its CPU time (Linux ``/proc``).

    .venv/bin/python benchmarks/emulator_rps.py [--requests N] [--concurrency N] [--client httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
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


async def _run_aiohttp(base: str, total: int, concurrency: int) -> tuple[float, int]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}
    headers = {"Authorization": "Bearer emu-key"}
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, headers=headers, connector=connector) as client:
        for _ in range(50):  # wait for the server
            try:
                async with client.get("/v1/models") as r:
                    await r.read()
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        queue = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                async with client.post("/v1/chat/completions", json=body) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, errors


async def _run(base: str, total: int, concurrency: int) -> tuple[float, int]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hi."}]}
    headers = {"Authorization": "Bearer emu-key"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    errors = 0
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:
        for _ in range(50):  # wait for the server
            try:
                await client.get("/v1/models")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        queue = iter(range(total))

        async def worker() -> None:
            nonlocal errors
            for _ in queue:
                r = await client.post("/v1/chat/completions", json=body)
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
    args = ap.parse_args()
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vlgate.testing", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    run = _run_aiohttp if args.client == "aiohttp" else _run
    try:
        time.sleep(1.5)  # let the server import before counting its CPU time
        cpu0 = _cpu_seconds(server.pid)
        elapsed, errors = asyncio.run(
            run(f"http://127.0.0.1:{port}", args.requests, args.concurrency)
        )
        cpu1 = _cpu_seconds(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    rps = args.requests / elapsed
    print(
        f"{args.client} client, {args.requests} requests, concurrency {args.concurrency}: "
        f"{elapsed:.2f} s, {rps:.0f} requests/s, {errors} errors"
    )
    if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
        per = (cpu1 - cpu0) / args.requests
        print(f"server CPU {per * 1e6:.0f} us/request -> capacity ~{1 / per:.0f} requests/s/core")


if __name__ == "__main__":
    main()
