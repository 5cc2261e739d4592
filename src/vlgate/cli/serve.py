"""``vlgate emulate`` and ``vlgate demo``: the offline emulator, served or shown end to end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import EXIT_USAGE, JsonFlag, echo, errors_to_exit, fail, print_json

if TYPE_CHECKING:
    from ..testing import Emulator


def emulate(
    port: Annotated[int, typer.Option("--port", "-p", help="TCP port to listen on.")] = 8765,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    api_key: Annotated[
        str, typer.Option("--api-key", help="The key clients must send (not a secret).")
    ] = "emu-key",
    latency: Annotated[
        float, typer.Option("--latency", help="Seconds added to each answer.")
    ] = 0.0,
) -> None:
    """Serve the offline provider emulator (OpenAI, Anthropic, Gemini, Ollama wire) until Ctrl-C.

    Examples:

        vlgate emulate --port 8765

        vlgate query photo.png "How many shapes?" -m openai/qwen2.5-vl-7b --api-base http://127.0.0.1:8765/v1
    """
    try:
        from ..testing import serve
    except ImportError:
        fail("the emulator needs aiohttp: pip install 'vlgate[emulator]'", EXIT_USAGE)

    def ready(emu: Emulator) -> None:
        echo(f"vlgate emulator on {emu.url}")
        echo(f"  OpenAI-compatible base: {emu.openai_base}   key: {api_key}")
        echo(
            f"  try: OPENAI_API_KEY={api_key} vlgate query IMAGE 'Describe it' "
            f"-m openai/qwen2.5-vl-7b --api-base {emu.openai_base}"
        )
        echo("Ctrl-C to stop.")

    with errors_to_exit():
        try:
            serve(host=host, port=port, api_key=api_key, latency=latency, on_ready=ready)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_USAGE)


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


def register(app: typer.Typer) -> None:
    app.command()(emulate)
    app.command()(demo)
