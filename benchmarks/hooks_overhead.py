"""What tracing costs per request: no hook vs OpenTelemetry with no provider vs an SDK provider.

Three models query the emulator (in this process) with frames never sent before, in interleaved
blocks, repeated; the script prints CPU per request (process time: the emulator's share is the
same in every row) as median (min-max) and the ratio to the model without hooks, then the hook's
own CPU per call measured alone.

    python benchmarks/hooks_overhead.py [--requests 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import vlgate
from vlgate.integrations import otel
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

KEY = "bench-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    # Every request carries a frame never sent before: the emulator caches its image analysis,
    # so a reused frame would make whichever model came second look cheaper.
    n = args.requests
    frames = [make_scene(i, size=(320, 240)).to_png_bytes() for i in range(n * 3 * args.rounds + 1)]
    with Emulator(api_key=KEY) as emu:

        def build() -> vlgate.VlModel:
            return vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emu.openai_base)

        plain = build()
        noop = build()
        otel.instrument(noop)  # the API's default providers: no SDK configured
        sdk = build()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        otel.instrument(sdk, tracer_provider=provider)
        models = {"no hook": plain, "otel, no provider": noop, "otel + SDK (in-memory)": sdk}
        for m in models.values():
            m.query(frames[-1], "warm up")

        cpu: dict[str, list[float]] = {name: [] for name in models}
        for r in range(args.rounds):
            for k, (name, model) in enumerate(models.items()):
                start = (r * 3 + k) * n
                batch = frames[start : start + n]
                t0 = time.process_time()
                for frame in batch:
                    model.query(frame, "How many shapes?")
                cpu[name].append((time.process_time() - t0) / n * 1000)
                emu.clear()

    # The hook alone, without the emulator's share: CPU per call (a request + a response event).
    from vlgate.runtime.hooks import ImageInfo, RequestEvent, ResponseEvent

    info = (ImageInfo(320, 240, "image/png", 20_000, "0" * 16),)
    hook_cost = {}
    for name, hook in (
        ("otel, no provider", otel.OTelHook()),
        ("otel + SDK (in-memory)", otel.OTelHook(provider)),
    ):
        t0 = time.process_time()
        for i in range(5000):
            hook(
                RequestEvent(
                    i,
                    "query",
                    "openai/gpt-4o-mini",
                    "openai",
                    1,
                    1,
                    300,
                    "http://127.0.0.1:8000/v1",
                    info,
                )
            )
            hook(
                ResponseEvent(
                    i,
                    "query",
                    "openai/gpt-4o-mini",
                    "openai",
                    1,
                    0.1,
                    300,
                    20,
                    255,
                    0.001,
                    False,
                    "gpt-4o-mini",
                    "stop",
                )
            )
        hook_cost[name] = (time.process_time() - t0) / 5000 * 1000

    base = statistics.median(cpu["no hook"])
    print(f"{args.requests} requests x {args.rounds} interleaved rounds; CPU ms per request")
    print(f"{'model':26} {'median (min-max)':>22} {'ratio':>7}")
    for name, samples in cpu.items():
        med = statistics.median(samples)
        print(f"{name:26} {med:8.3f} ({min(samples):.3f}-{max(samples):.3f}) {med / base:6.2f}x")
    print("the hook alone, CPU ms per call (request + response event):")
    for name, ms in hook_cost.items():
        print(f"  {name:24} {ms:.4f} ms = {ms / base:.1%} of a plain request's client CPU")


if __name__ == "__main__":
    main()
