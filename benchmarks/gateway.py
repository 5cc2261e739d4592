"""What a LiteLLM Proxy gateway costs per request: a robot's call through an alias vs direct.

Both sides make the same vlgate call (``aquery`` of a fresh 320x240 frame, no cache) against the
emulator, which runs in its own process with no added latency; one side names the model directly
(``openai/gpt-4o`` at the emulator), the other through a LiteLLM Proxy alias
(``litellm_proxy/robot-gpt``, the proxy running on loopback in front of the same emulator, started
from ``.venv-proxy`` as the tests do). Blocks of the two alternate round by round; the median over
rounds is printed with the min-max spread.

Printed per side: wall time per request at concurrency 1 (the latency a robot sees), requests/s at
concurrency 8, the client's CPU per request (``time.process_time`` of this process: the same vlgate
code either way), and the proxy's CPU per request (from ``/proc``, the proxy's whole process tree):
the cost a fleet pays once per robot request on the gateway host.

    python benchmarks/gateway.py [--rounds 5] [--block 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import vlgate
from vlgate.gateway import Alias, proxy_config
from vlgate.testing.proxy import litellm_proxy

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

ROOT = Path(__file__).resolve().parents[1]
PROXY_BIN = Path(os.environ.get("VLGATE_LITELLM_PROXY", ROOT / ".venv-proxy" / "bin" / "litellm"))
KEY = "bench-key"
MASTER = "sk-bench-master"
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and all its live descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the comm field: state ppid ... utime(12th) stime(13th)
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo.extend(c for c, pp in parents.items() if pp == p)
    return total


@contextmanager
def proxy_for(emu_url: str) -> Iterator[tuple[str, int]]:
    if not PROXY_BIN.exists():
        sys.exit(f"no LiteLLM Proxy at {PROXY_BIN}: run ./scripts/test once (it makes .venv-proxy)")
    cfg = proxy_config(
        [Alias("robot-gpt", "openai/gpt-4o", api_base=emu_url + "/v1", key_env="EMU_KEY")]
    )
    tmp = Path(tempfile.mkdtemp(prefix="vlgate-gw-"))
    with litellm_proxy(PROXY_BIN, cfg, tmp, env={"EMU_KEY": KEY}, master_key=MASTER) as proxy:
        yield proxy


class Frames:
    """A fresh 320x240 frame per request (one pixel changed), so nothing encoded is reused."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.base = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
        self.n = 0

    def next(self) -> np.ndarray:
        self.n += 1
        frame = self.base.copy()
        frame[0, 0, 0], frame[0, 1, 0] = self.n % 256, (self.n // 256) % 256
        return frame


async def block(model: vlgate.VlModel, frames: Frames, n: int, concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            await model.aquery(frames.next(), "Describe this image.")

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - t0


def fmt(values: list[float], unit: str = "") -> str:
    return f"{statistics.median(values):8.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


async def main(rounds: int, n: int) -> None:
    with emulator_process(api_key=KEY) as emu_url, proxy_for(emu_url) as (base, proxy_pid):
        direct = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emu_url + "/v1", cache=False)
        gateway = vlgate.create(
            "litellm_proxy/robot-gpt", api_key=MASTER, api_base=base + "/v1", cache=False
        )
        frames = Frames()
        for model in (direct, gateway):  # warm both paths (connections, the proxy's router)
            await block(model, frames, 10, 4)
        rows: dict[str, dict[str, list[float]]] = {
            name: {"lat": [], "rps": [], "cpu": [], "proxy": []} for name in ("direct", "gateway")
        }
        for _ in range(rounds):
            for name, model in (("direct", direct), ("gateway", gateway)):
                cpu0, p0 = time.process_time(), tree_cpu(proxy_pid)
                wall1 = await block(model, frames, n, 1)
                wall8 = await block(model, frames, n, 8)
                cpu1, p1 = time.process_time(), tree_cpu(proxy_pid)
                r = rows[name]
                r["lat"].append(wall1 / n * 1000)
                r["rps"].append(n / wall8)
                r["cpu"].append((cpu1 - cpu0) / (2 * n) * 1000)
                r["proxy"].append((p1 - p0) / (2 * n) * 1000)
        await direct.astop()
        await gateway.astop()
    print(f"{rounds} rounds x {n} requests per side and concurrency; median (min-max)")
    print(f"{'':10}{'ms/request c=1':>24}{'requests/s c=8':>24}{'client CPU ms':>24}", end="")
    print(f"{'proxy CPU ms':>24}")
    for name, r in rows.items():
        print(f"{name:10}{fmt(r['lat']):>24}{fmt(r['rps']):>24}{fmt(r['cpu']):>24}", end="")
        print(f"{fmt(r['proxy']):>24}")
    lat = [g / d for g, d in zip(rows["gateway"]["lat"], rows["direct"]["lat"], strict=True)]
    rps = [d / g for g, d in zip(rows["gateway"]["rps"], rows["direct"]["rps"], strict=True)]
    cpu = [g / d for g, d in zip(rows["gateway"]["cpu"], rows["direct"]["cpu"], strict=True)]
    print(f"gateway/direct latency at c=1: {fmt(lat, 'x')}")
    print(f"direct/gateway throughput at c=8: {fmt(rps, 'x')}")
    print(f"gateway/direct client CPU: {fmt(cpu, 'x')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.block))
