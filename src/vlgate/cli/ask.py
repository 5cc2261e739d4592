"""``vlgate query``, ``caption``, ``detect``, ``point``: one image, one answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..batchrecord import BatchRecord
from ._common import (
    HtmlOpt,
    JsonFlag,
    ModelFlags,
    build_model,
    dropped_note,
    echo,
    errors_to_exit,
    model_flags,
    print_json,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..grounding import Detections, Points
    from ..model import Answer, VlModel

T = TypeVar("T")

ImageArg = Annotated[
    str, typer.Argument(help="Image path, URL, data URI, or - for stdin.", show_default=False)
]


def _source(image: str) -> str | bytes:
    """``-`` reads the image bytes from stdin (``cat photo.jpg | vlgate query - "..."``)."""
    return sys.stdin.buffer.read() if image == "-" else image


def _title(image: str) -> str:
    return "stdin" if image == "-" else image


def _ask(
    flags: ModelFlags, image: str, call: Callable[[VlModel, str | bytes], T]
) -> tuple[str | bytes, T, str]:
    """``(source, call(model, source), model name)``: the model built from ``flags`` (and the
    settings below them), the image read (``-``: stdin), the model closed before returning."""
    vl = build_model(flags.overrides())
    with vl:
        source = _source(image)
        return source, call(vl, source), vl.config.model


def _answer_out(
    answer: Answer,
    image: str,
    source: str | bytes,
    task: str,
    prompt: str | None,
    as_json: bool,
    html: Path | None,
) -> None:
    if html is not None:
        from ..report import ReportItem, write_report

        item = ReportItem(image=source, title=_title(image), prompt=prompt, answer=str(answer))
        write_report(html, [item], title=f"vlgate {task}", subtitle=answer.model)
    if as_json:
        record = BatchRecord(
            image=image,
            task=task,
            prompt=prompt,
            answer=str(answer),
            model=answer.model,
            usage=answer.usage,
            attempts=answer.attempts,
            latency=round(answer.latency, 4),
        )
        print_json(record.to_dict())
    else:
        echo(str(answer))


@model_flags
def query(
    image: ImageArg,
    prompt: Annotated[str, typer.Argument(help="The question.", show_default=False)],
    flags: ModelFlags,
    as_json: JsonFlag = False,
    html: HtmlOpt = None,
) -> None:
    """Ask one question about one image and print the answer.

    --json prints one record of the same shape as a batch line (answer, model, usage,
    attempts, ...).

    Examples:

        vlgate query photo.jpg "How many people are there?"

        vlgate query photo.jpg "What is on the table?" --json \\
            -m anthropic/claude-sonnet-4-6

        vlgate query http://192.168.1.20/snapshot.jpg "Is the door open?" \\
            --allow-private-urls

        vlgate query frame.png "Describe it" -m vllm/Qwen2.5-VL-7B \\
            --api-base http://gpu:8000/v1
    """
    with errors_to_exit():
        source, answer, _ = _ask(flags, image, lambda vl, src: vl.query(src, prompt))
        _answer_out(answer, image, source, "query", prompt, as_json, html)


@model_flags
def caption(
    image: ImageArg,
    flags: ModelFlags,
    as_json: JsonFlag = False,
    html: HtmlOpt = None,
) -> None:
    """Describe an image in a sentence or two.

    Examples:

        vlgate caption photo.jpg

        vlgate caption https://example.com/cat.jpg -m gemini/gemini-2.5-flash --json
    """
    with errors_to_exit():
        source, answer, _ = _ask(flags, image, lambda vl, src: vl.caption(src))
        _answer_out(answer, image, source, "caption", None, as_json, html)


def _grounding_out(
    found: Detections | Points,
    image: str,
    source: str | bytes,
    target: str,
    output: Path | None,
    as_json: bool,
    html: Path | None,
    model_name: str,
) -> None:
    from ..grounding import Points

    task = "point" if isinstance(found, Points) else "detect"
    record = BatchRecord(
        image=image,
        task=task,
        prompt=target,
        model=getattr(found.answer, "model", None),
        usage=found.usage,
        attempts=found.attempts,
        latency=round(found.answer.latency, 4) if found.answer is not None else None,
    )
    record.set_found(found)
    items = (record.detections if task == "detect" else record.points) or []
    if output is not None:
        found.annotate(source).save(output, format="PNG")
    if html is not None:
        from ..report import item_from_record, write_report

        item = item_from_record(record)
        item.image, item.title = source, _title(image)
        write_report(html, [item], title=f"vlgate {task}", subtitle=record.model or model_name)
    if as_json:
        print_json(record.to_dict())
        return
    unread = dropped_note(found.dropped)
    if not items:
        why = f"{unread}" if unread else f"no {target!r} in {_title(image)}"
        echo(f"0 found: {why}", err=True)
    elif unread:
        noun = "point" if task == "point" else "object"
        echo(f"{len(items)} {noun}{'s' if len(items) != 1 else ''}, {unread}", err=True)
    for it in items:
        coords = it.get("xyxy") or it.get("xy") or []
        score = f"  {it['score']:.2f}" if it.get("score") is not None else ""
        echo(f"{it['label']}\t{', '.join(f'{v:.1f}' for v in coords)}{score}")
    if output is not None:
        echo(f"wrote {output}", err=True)


OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the annotated image here (PNG).")
]


@model_flags
def detect(
    image: ImageArg,
    target: Annotated[str, typer.Argument(help="What to find, e.g. 'person'.", show_default=False)],
    flags: ModelFlags,
    output: OutputOpt = None,
    as_json: JsonFlag = False,
    html: HtmlOpt = None,
) -> None:
    """Find boxes of TARGET; print one line per box (label, x1, y1, x2, y2 in pixels).

    --json prints one record of the same shape as a batch line (detections, image_size,
    model, usage, ...).

    Examples:

        vlgate detect street.jpg person -o boxes.png

        vlgate detect shelf.jpg "red mug" -m qwen/qwen-vl-max --json

        vlgate detect table.jpg cup --html cups.html
    """
    with errors_to_exit():
        source, found, name = _ask(flags, image, lambda vl, src: vl.detect(src, target))
        _grounding_out(found, image, source, target, output, as_json, html, name)


@model_flags
def point(
    image: ImageArg,
    target: Annotated[
        str, typer.Argument(help="What to point at, e.g. 'cup'.", show_default=False)
    ],
    flags: ModelFlags,
    output: OutputOpt = None,
    as_json: JsonFlag = False,
    html: HtmlOpt = None,
) -> None:
    """Point at TARGET; print one line per point (label, x, y in pixels).

    Examples:

        vlgate point table.jpg "cup handle" -o points.png

        vlgate point shelf.jpg apple -m gemini/gemini-2.5-flash --json
    """
    with errors_to_exit():
        source, found, name = _ask(flags, image, lambda vl, src: vl.point(src, target))
        _grounding_out(found, image, source, target, output, as_json, html, name)


def register(app: typer.Typer, cls: type[Any]) -> None:
    for command in (query, caption, detect, point):
        app.command(cls=cls)(command)
