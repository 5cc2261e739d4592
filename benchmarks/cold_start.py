"""Cold start, measured side by side against the emulator (in its own process):

1. ``vlgate query IMG PROMPT -m <route>`` as a fresh CLI process: wall time and the child's CPU
   time, for ``openai/``, ``anthropic/``, ``gemini/`` (and ``litellm/anthropic/`` for reference);
   ratios to ``openai/``.
2. In a fresh interpreter: ``import vlgate`` + ``create()`` + first answer, against the openai
   SDK's own cold start (``import openai`` + ``OpenAI()`` + ``chat.completions.create`` with the
   same image as a data URI); time from the first line of the script to the answer.

Runs are interleaved (one of each per round) and repeated; medians with min-max are printed,
and each ratio is paired: the median [min-max] over rounds of a run divided by its reference's
run of the same round.

    python benchmarks/cold_start.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).parent))
from _emu import emulator_process

KEY = "bench-key"
PROMPT = "Describe this image."

CLI_ROUTES = [
    ("openai/gpt-4o-mini", "/v1"),
    ("anthropic/claude-sonnet-4-5", ""),
    ("gemini/gemini-2.5-flash", ""),
    ("litellm/anthropic/claude-sonnet-4-5", ""),
]

VLGATE_SNIPPET = """
import time; t0 = time.perf_counter()
import vlgate
m = vlgate.create({model!r}, api_key={key!r}, api_base={base!r})
answer = m.query({path!r}, {prompt!r})
assert answer
print(time.perf_counter() - t0)
"""

SDK_SNIPPET = """
import time; t0 = time.perf_counter()
import base64, openai
client = openai.OpenAI(api_key={key!r}, base_url={base!r}, max_retries=0)
with open({path!r}, "rb") as f:
    url = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()
content = [{{"type": "image_url", "image_url": {{"url": url}}}},
           {{"type": "text", "text": {prompt!r}}}]
r = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{{"role": "user", "content": content}}])
assert r.choices[0].message.content
print(time.perf_counter() - t0)
"""


def child_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, child CPU seconds, stdout) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out.stdout


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} s [{min(values):.3f}-{max(values):.3f}]"


def paired(values: list[float], ref: list[float]) -> str:
    """Median [min-max] of the per-round ratios ``values[i] / ref[i]``."""
    r = [v / b for v, b in zip(values, ref, strict=True)]
    return f"{statistics.median(r):5.2f}x [{min(r):.2f}-{max(r):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {
        **os.environ,
        "OPENAI_API_KEY": KEY,
        "ANTHROPIC_API_KEY": KEY,
        "GEMINI_API_KEY": KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    with tempfile.TemporaryDirectory() as tmp, emulator_process(KEY) as base:
        path = str(Path(tmp) / "frame.jpg")
        buf = io.BytesIO()
        PILImage.new("RGB", (640, 480), (40, 120, 200)).save(buf, format="JPEG")
        Path(path).write_bytes(buf.getvalue())

        cli: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m, _ in CLI_ROUTES}
        inproc: dict[str, list[float]] = {"openai SDK": []}
        for m, _ in CLI_ROUTES[:3]:
            inproc[f"vlgate {m.split('/')[0]}/"] = []
        for _ in range(args.repeat):
            for model, suffix in CLI_ROUTES:
                cmd = [sys.executable, "-m", "vlgate", "query", path, PROMPT, "-m", model]
                wall, cpu, _ = child_run([*cmd, "--api-base", base + suffix], env)
                cli[model][0].append(wall)
                cli[model][1].append(cpu)
            sdk = SDK_SNIPPET.format(key=KEY, base=base + "/v1", path=path, prompt=PROMPT)
            inproc["openai SDK"].append(float(child_run([sys.executable, "-c", sdk], env)[2]))
            for model, suffix in CLI_ROUTES[:3]:
                code = VLGATE_SNIPPET.format(
                    model=model, key=KEY, base=base + suffix, path=path, prompt=PROMPT
                )
                secs = float(child_run([sys.executable, "-c", code], env)[2])
                inproc[f"vlgate {model.split('/')[0]}/"].append(secs)

    print(f"1. `vlgate query` CLI process, {args.repeat} interleaved runs, median [min-max]")
    ref_wall, ref_cpu = cli["openai/gpt-4o-mini"]
    for model, (walls, cpus) in cli.items():
        print(
            f"  {model:38s} wall {summary(walls)}  {paired(walls, ref_wall)}"
            f"   CPU {summary(cpus)}  {paired(cpus, ref_cpu)}  (vs openai/)"
        )
    print("\n2. import + create + first answer in a fresh interpreter, median [min-max]")
    ref = inproc["openai SDK"]
    for name, values in inproc.items():
        print(f"  {name:38s} {summary(values)}  {paired(values, ref)} SDK")


if __name__ == "__main__":
    main()
