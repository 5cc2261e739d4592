"""One attempt loop under every call shape: query, batch item, stream and detect each retry a
scripted 500, fall back to the fallback model, account usage and report the same hook events.

Everything asserted is what reached the emulator, what the model reports, or the events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest

import vlgate
from vlgate.runtime.hooks import ErrorEvent, Event, RequestEvent, ResponseEvent, RetryEvent
from vlgate.testing import Emulator

from .conftest import KEY, png_bytes

PRIMARY, FALLBACK = "gpt-4o-mini", "gpt-4o"


def make(emu: Emulator, events: list[Event]) -> vlgate.VlModel:
    model = vlgate.create(
        f"openai/{PRIMARY}",
        api_key=KEY,
        api_base=emu.openai_base,
        max_retries=1,
        backoff_base=0.0,
        fallbacks=[{"model": f"openai/{FALLBACK}", "api_key": KEY, "api_base": emu.openai_base}],
    )
    model.add_hook(events.append)
    return model


def _query(m: vlgate.VlModel) -> str:
    return str(m.query(png_bytes(), "Describe this image."))


def _batch_item(m: vlgate.VlModel) -> str:
    [answer] = m.query_batch([png_bytes()], "Describe this image.")
    return str(answer)


def _stream(m: vlgate.VlModel) -> str:
    return "".join(m.stream(png_bytes(), "Describe this image."))


def _detect(m: vlgate.VlModel) -> str:
    return str(m.detect(png_bytes(), "red square").answer)


SHAPES: dict[str, tuple[Callable[[vlgate.VlModel], str], str]] = {
    "query": (_query, "query"),
    "batch item": (_batch_item, "batch"),
    "stream": (_stream, "stream"),
    "detect": (_detect, "detect"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_call_shape_retries_falls_back_and_accounts_alike(
    emulator: Emulator, shape: str
) -> None:
    call, op = SHAPES[shape]
    emulator.script(PRIMARY, ["500", "500"])
    events: list[Event] = []
    model = make(emulator, events)

    text = call(model)

    assert text  # an answer arrived, from the fallback
    assert [(r.model, r.status) for r in emulator.requests] == [
        (PRIMARY, 500),
        (PRIMARY, 500),  # max_retries=1: a retry on the primary, then the fallback
        (FALLBACK, 200),
    ]
    # The same events, in the same order, whatever the call shape.
    kinds = [(type(e).__name__, e.model.split("/")[-1]) for e in events]
    assert kinds == [
        ("RequestEvent", PRIMARY),
        ("RetryEvent", PRIMARY),
        ("RequestEvent", PRIMARY),
        ("ErrorEvent", PRIMARY),
        ("RequestEvent", FALLBACK),
        ("ResponseEvent", FALLBACK),
    ]
    assert {e.op for e in events} == {op}
    assert len({e.call_id for e in events}) == 1
    retry = next(e for e in events if isinstance(e, RetryEvent))
    assert retry.status == 500 and retry.attempt == 1
    error = next(e for e in events if isinstance(e, ErrorEvent))
    assert error.fallback and error.attempts == 2 and error.status == 500
    assert [e.attempt for e in events if isinstance(e, RequestEvent)] == [1, 2, 1]

    # Usage: one answered request, the server's token counts, priced, image tokens counted.
    usage = model.usage
    assert usage.requests == 1
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.image_tokens is not None and 0 < usage.image_tokens <= usage.input_tokens
    assert usage.cost is not None and usage.cost > 0
    [response] = [e for e in events if isinstance(e, ResponseEvent)]
    assert (response.input_tokens, response.output_tokens) == (
        usage.input_tokens,
        usage.output_tokens,
    )
    assert response.attempts == 1 and not response.cached


def test_events_carry_no_image_bytes_prompt_or_key(emulator: Emulator) -> None:
    events: list[Event] = []
    model = make(emulator, events)
    model.query(png_bytes(), "secret prompt text")
    for event in events:
        for f in fields(event):
            value: Any = getattr(event, f.name)
            assert not isinstance(value, bytes | bytearray)
            assert KEY not in str(value) and "secret prompt" not in str(value)


def test_a_failing_hook_does_not_break_the_call(emulator: Emulator) -> None:
    model = make(emulator, [])

    def broken(event: Event) -> None:
        raise RuntimeError("exporter down")

    model.add_hook(broken)
    assert model.query(png_bytes(), "hi")
    assert len(emulator.requests) == 1


def test_stream_falls_back_only_before_the_first_text(emulator: Emulator) -> None:
    """A stream cut after text has flowed raises; nothing is retried or re-sent."""
    emulator.script(PRIMARY, ["truncate"])
    model = make(emulator, [])
    with pytest.raises(vlgate.ConnectionError):
        "".join(model.stream(png_bytes(), "Describe this image."))
    assert [r.model for r in emulator.requests] == [PRIMARY]


async def test_concurrent_calls_keep_their_own_call_ids(emulator: Emulator) -> None:
    events: list[Event] = []
    model = make(emulator, events)
    await asyncio.gather(*(model.aquery(png_bytes(), f"q{i}") for i in range(3)))
    await model.astop()
    by_call: dict[int, list[str]] = {}
    for e in events:
        by_call.setdefault(e.call_id, []).append(type(e).__name__)
    assert sorted(by_call.values()) == [["RequestEvent", "ResponseEvent"]] * 3
