"""``vlgate emulate`` and ``vlgate demo``: the offline emulator, served or shown end to end."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import EXIT_USAGE, JsonFlag, echo, errors_to_exit, fail, print_json

if TYPE_CHECKING:
    from ..testing import Emulator


@dataclass(frozen=True)
class Protocol:
    """One protocol the emulator speaks, and how vlgate reaches it there."""

    name: str
    base: str
    """The emulator property that gives the ``api_base`` (``url``, ``openai_base``, ...)."""
    model: str
    """An example model string."""
    key_env: str | None
    """The env var vlgate reads this route's key from; ``None``: no key is sent."""
    note: str = ""


PROTOCOLS: tuple[Protocol, ...] = (
    Protocol("OpenAI", "openai_base", "openai/qwen2.5-vl-7b", "OPENAI_API_KEY"),
    Protocol("vLLM", "openai_base", "vllm/Qwen/Qwen2.5-VL-7B-Instruct", "VLLM_API_KEY"),
    Protocol("Anthropic", "url", "anthropic/claude-sonnet-4-6", "ANTHROPIC_API_KEY"),
    Protocol("Gemini", "url", "gemini/gemini-2.5-flash", "GEMINI_API_KEY"),
    Protocol("Ollama /v1", "ollama_base", "ollama/qwen2.5vl:7b", None),
    Protocol("Ollama native", "url", "ollama_chat/qwen2.5vl:7b", None, "/api/chat, via LiteLLM"),
    Protocol("Moondream", "moondream_base", "moondream/moondream-3", "MOONDREAM_API_KEY"),
)
"""What ``vlgate emulate`` prints, and docs/emulator.md shows (a test keeps them in step)."""


def banner(emu: Emulator, key: str | None) -> list[str]:
    """The lines ``vlgate emulate`` prints when it is ready.

    Example:
        >>> from vlgate.testing import Emulator
        >>> with Emulator(port=0) as emu:                                      # doctest: +SKIP
        ...     lines = banner(emu, "emu-key")
        >>> lines[0]                                                           # doctest: +SKIP
        'vlgate emulator on http://127.0.0.1:41234   key: emu-key   (Ctrl-C to stop)'
    """
    lines = [
        f"vlgate emulator on {emu.url}   key: {key or 'none needed'}   (Ctrl-C to stop)",
        "",
        f"  {'protocol':<14} {'--api-base':<36} -m",
    ]
    for proto in PROTOCOLS:
        prefix = proto.model.split("/", 1)[0] + "/..."
        note = f"  ({proto.note})" if proto.note else ""
        lines.append(f"  {proto.name:<14} {getattr(emu, proto.base):<36} {prefix}{note}")
    envs = list(dict.fromkeys(p.key_env for p in PROTOCOLS if p.key_env))
    if key:
        lines += [
            "",
            f"  key: {key} in {', '.join(envs[:3])},",
            f"       {', '.join(envs[3:])} (Ollama: no key)",
        ]
    first = PROTOCOLS[0]
    env = f"{first.key_env}={key or 'any'} "  # vlgate's openai/ route wants some key
    lines += [
        "",
        f"  try: {env}vlgate query scene.png 'How many shapes?' \\",
        f"           -m {first.model} --api-base {getattr(emu, first.base)}",
        "       (scene.png: a test image, written by --scene scene.png)",
    ]
    return lines


def emulate(
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    api_key: Annotated[
        str, typer.Option("--api-key", help="The key clients must send (not a secret).")
    ] = "emu-key",
    no_key: Annotated[
        bool,
        typer.Option("--no-key", help="Accept requests with any key or none, like a local server."),
    ] = False,
    latency: Annotated[
        float,
        typer.Option("--latency", help="Response time of each answer in seconds (work included)."),
    ] = 0.0,
    scene: Annotated[
        Path | None,
        typer.Option("--scene", metavar="PNG", help="Also write a test image with known shapes."),
    ] = None,
) -> None:
    """Serve the offline provider emulator until Ctrl-C (exit code 130).

    It speaks the OpenAI, vLLM, Anthropic, Gemini, Ollama (native and /v1) and Moondream wire
    formats, and prints the base URL (--api-base) of each with the key to send. See
    docs/emulator.md for a snippet per protocol.

    Examples:

        vlgate emulate --port 8765 --scene scene.png

        OPENAI_API_KEY=emu-key vlgate query scene.png "How many shapes?" \\
            -m openai/qwen2.5-vl-7b --api-base http://127.0.0.1:8765/v1
    """
    try:
        from ..testing import Emulator
    except ImportError:
        fail("the emulator needs aiohttp: pip install 'vlgate[emulator]'", EXIT_USAGE)

    key = None if no_key else api_key
    with errors_to_exit():
        if scene is not None:
            from ..testing.scenes import make_scene

            scene.write_bytes(make_scene(seed=1, size=(1280, 720)).to_png_bytes())
        # Nobody reads a served emulator's records: keep a few, not every request body.
        emu = Emulator(api_key=key, latency=latency, host=host, port=port, keep_requests=64)
        try:
            emu.start()
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE)
        try:
            for line in banner(emu, key):
                echo(line)
            if scene is not None:
                echo(f"  wrote {scene}")
            sys.stdout.flush()
            while True:
                time.sleep(3600)
        finally:
            emu.stop()


def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the annotated image.")
    ] = Path("vlgate-demo.png"),
    as_json: JsonFlag = False,
) -> None:
    """Try vlgate right after install: no key, no network (uses the built-in emulator).

    Examples:

        vlgate demo

        vlgate demo -o /tmp/demo.png --json
    """
    from ..demo import run_demo

    with errors_to_exit():
        result = run_demo(output)
    if as_json:
        print_json(
            {
                "model": result.model,
                "endpoint": result.endpoint,
                "image_size": list(result.image_size),
                "caption": result.caption,
                "question": result.question,
                "answer": result.count_answer,
                "true_count": result.true_count,
                "detections": result.detections.to_dict()["items"],
                "ground_truth": [{"label": lb, "xyxy": list(b)} for lb, b in result.ground_truth],
                "ious": result.ious,
                "mean_iou": result.mean_iou,
                "output": str(result.output) if result.output else None,
            }
        )
        return
    w, h = result.image_size
    echo(f"model     {result.model} (emulated at {result.endpoint}, no key, no network)")
    echo(f"image     synthetic scene {w}x{h} with {result.true_count} shapes")
    echo(f"caption   {result.caption}")
    echo(f"question  {result.question}")
    echo(f"answer    {result.count_answer}   (truth: {result.true_count})")
    echo(f"detect    'shapes' -> {len(result.detections)} boxes, in original pixels:")
    for (label, box), score in zip(result.ground_truth, result.ious, strict=True):
        echo(f"  {label:<18} truth {box}  best IoU {score:.2f}")
    echo(f"mean IoU  {result.mean_iou:.3f} over {result.requests} requests")
    if result.output:
        echo(f"wrote     {result.output}")
    echo("next      vlgate query IMAGE 'your question' -m openai/gpt-4o-mini  (needs a key)")


def register(app: typer.Typer, cls: type[Any]) -> None:
    app.command(cls=cls)(emulate)
    app.command(cls=cls)(demo)
