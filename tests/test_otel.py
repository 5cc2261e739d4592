"""OpenTelemetry spans and metrics (vlgate.integrations.otel), hooks, and `vlgate -v`, on the wire.

The SDK's in-memory exporters collect what a real exporter would send; the tests read every
exported span, event and metric point.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK (dev extra) is missing")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import vlgate
from vlgate.integrations import otel
from vlgate.runtime.hooks import (
    ErrorEvent,
    Event,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
)
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

KEY = "emu-key-otel-SECRET-0123"
PROMPT = "How many shapes are there? (secret prompt text)"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def dump(self) -> str:
        """Everything exported, as text: span names, attributes, events, metric points."""
        parts = []
        for s in self.finished():
            parts.append(s.to_json())
        for name, points in self.metrics().items():
            parts.append(name)
            parts.extend(repr(dict(p.attributes or {})) for p in points)
        return "\n".join(parts)


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(api_key=KEY) as e:
        yield e


def _model(emu: Emulator, telemetry: Telemetry, **kw: Any) -> vlgate.VlModel:
    model = vlgate.create(
        "openai/gpt-4o-mini",
        api_key=KEY,
        api_base=emu.openai_base,
        backoff_base=0.01,
        backoff_max=0.05,
        **kw,
    )
    otel.instrument(
        model, tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    return model


def test_span_tree_for_two_retries_and_a_fallback(emu: Emulator, telemetry: Telemetry) -> None:
    model = _model(
        emu,
        telemetry,
        max_retries=2,
        fallbacks=[{"model": "openai/gpt-4o", "api_key": KEY, "api_base": emu.openai_base}],
    )
    emu.script("gpt-4o-mini", ["500", "503", "500"])  # every attempt of the primary fails
    scene = make_scene(5, size=(640, 480), n_shapes=2)
    answer = model.query(scene.to_png_bytes(), PROMPT)
    assert len(emu.requests) == 4

    spans = telemetry.finished()
    calls = [s for s in spans if s.name.startswith("chat ")]
    attempts = [s for s in spans if s.name.startswith("attempt ")]
    assert len(calls) == 1 and len(attempts) == 4
    call = calls[0]
    assert call.name == "chat gpt-4o-mini"
    assert call.kind.name == "CLIENT"
    assert all(a.parent.span_id == call.context.span_id for a in attempts)
    assert all(a.context.trace_id == call.context.trace_id for a in attempts)
    attempts.sort(key=lambda s: s.start_time)
    assert [a.attributes["vlgate.model"] for a in attempts] == ["openai/gpt-4o-mini"] * 3 + [
        "openai/gpt-4o"
    ]
    # The first two failures were retried after a delay; the third gave up and fell back.
    assert [a.attributes.get("http.response.status_code") for a in attempts] == [
        500,
        503,
        500,
        None,
    ]
    assert "vlgate.retry.delay" in attempts[0].attributes
    assert attempts[2].attributes["vlgate.fallback.to"] == "openai/gpt-4o"
    assert [a.status.status_code.name for a in attempts] == ["ERROR"] * 3 + ["UNSET"]
    assert [e.name for e in call.events] == ["vlgate.fallback"]

    a = call.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == "gpt-4o"
    assert a["gen_ai.usage.input_tokens"] == answer.usage.input_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == answer.usage.output_tokens > 0
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == int(emu.url.rsplit(":", 1)[1])
    assert a["vlgate.task"] == "query"
    assert a["vlgate.image.count"] == 1
    sent = emu.requests[-1].images[0]
    assert list(a["vlgate.image.width"]) == [sent.size[0]]
    assert list(a["vlgate.image.height"]) == [sent.size[1]]
    assert list(a["vlgate.image.mime_type"]) == [sent.actual_mime]
    assert list(a["vlgate.image.bytes"]) == [sent.nbytes]
    assert a["vlgate.retries"] == 2
    assert a["vlgate.cache_hit"] is False
    assert a["vlgate.cost"] == pytest.approx(answer.usage.cost)
    assert a["vlgate.fallback.model"] == "openai/gpt-4o"

    m = telemetry.metrics()
    assert sum(p.value for p in m["vlgate.client.requests"]) == 4
    assert sum(p.value for p in m["vlgate.client.retries"]) == 2
    (duration,) = m["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.attributes["gen_ai.provider.name"] == "openai"
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in m["gen_ai.client.token.usage"]}
    assert tokens == {"input": answer.usage.input_tokens, "output": answer.usage.output_tokens}


def test_a_failed_call_has_error_type(emu: Emulator, telemetry: Telemetry) -> None:
    model = _model(emu, telemetry, max_retries=0)
    emu.script("gpt-4o-mini", ["401"])
    with pytest.raises(vlgate.AuthError):
        model.query(make_scene(1, size=(320, 240)).to_png_bytes(), PROMPT)
    (call,) = [s for s in telemetry.finished() if s.name.startswith("chat ")]
    assert call.attributes["error.type"] == "AuthError"
    assert call.status.status_code.name == "ERROR"
    (duration,) = telemetry.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "AuthError"


def _scan_for_leaks(text: str, image: bytes) -> None:
    assert KEY not in text
    b64 = base64.b64encode(image).decode()
    for i in range(0, len(b64) - 64, 997):  # any 64-char run of the image's base64
        assert b64[i : i + 64] not in text
    assert "data:image" not in text and ";base64," not in text


def test_nothing_private_is_exported_by_default(emu: Emulator, telemetry: Telemetry) -> None:
    model = _model(emu, telemetry, max_retries=1)
    emu.script("gpt-4o-mini", ["429"])
    image = make_scene(2, size=(320, 240)).to_png_bytes()
    model.query(image, PROMPT)
    model.detect(image, "red circle")
    list(model.stream(image, PROMPT))
    dump = telemetry.dump()
    _scan_for_leaks(dump, image)
    sent = [img.data for r in emu.requests for img in r.images]
    for data in sent:
        _scan_for_leaks(dump, data)
    assert "secret prompt text" not in dump
    assert "gen_ai.input.messages" not in dump and "gen_ai.output.messages" not in dump
    tasks = sorted(
        s.attributes["vlgate.task"] for s in telemetry.finished() if s.name.startswith("chat ")
    )
    assert tasks == ["detect", "query", "stream"]


def test_capture_content_records_text_but_never_base64(emu: Emulator) -> None:
    telemetry = Telemetry()
    model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emu.openai_base)
    otel.instrument(
        model,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        capture_content=True,
    )
    image = make_scene(3, size=(320, 240)).to_png_bytes()
    answer = model.query(image, PROMPT)
    (call,) = [s for s in telemetry.finished() if s.name.startswith("chat ")]
    inputs = json.loads(call.attributes["gen_ai.input.messages"])
    assert inputs[0]["parts"][0] == {"type": "text", "content": PROMPT}
    assert inputs[0]["parts"][1]["type"] == "image" and "sha256" in inputs[0]["parts"][1]
    outputs = json.loads(call.attributes["gen_ai.output.messages"])
    assert outputs[0]["parts"][0]["content"] == str(answer)
    _scan_for_leaks(telemetry.dump(), image)
    for r in emu.requests:
        _scan_for_leaks(telemetry.dump(), r.images[0].data)


def test_cache_hit_is_a_span_and_a_counter(
    emu: Emulator, telemetry: Telemetry, tmp_path: Any
) -> None:
    model = _model(emu, telemetry, cache=tmp_path / "cache")
    image = make_scene(4, size=(320, 240)).to_png_bytes()
    model.query(image, PROMPT)
    model.query(image, PROMPT)
    assert len(emu.requests) == 1
    calls = [s for s in telemetry.finished() if s.name.startswith("chat ")]
    assert [c.attributes["vlgate.cache_hit"] for c in calls] == [False, True]
    assert sum(p.value for p in telemetry.metrics()["vlgate.client.cache.hits"]) == 1


def test_process_wide_instrument_and_uninstrument(emu: Emulator, telemetry: Telemetry) -> None:
    hook = otel.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    try:
        model = vlgate.create("openai/gpt-4o-mini", api_key=KEY, api_base=emu.openai_base)
        model.query(make_scene(6, size=(320, 240)).to_png_bytes(), PROMPT)
    finally:
        otel.uninstrument(hook)
    model.query(make_scene(7, size=(320, 240)).to_png_bytes(), PROMPT)
    assert len([s for s in telemetry.finished() if s.name.startswith("chat ")]) == 1


def test_hooks_option_gets_typed_events_without_payloads(emu: Emulator) -> None:
    seen: list[Event] = []
    model = vlgate.create(
        "openai/gpt-4o-mini",
        api_key=KEY,
        api_base=emu.openai_base,
        hooks=[seen.append],
        max_retries=1,
        backoff_base=0.01,
        fallbacks=[{"model": "openai/gpt-4o", "api_key": KEY, "api_base": emu.openai_base}],
    )
    emu.script("gpt-4o-mini", ["500", "500"])
    model.query(make_scene(8, size=(320, 240)).to_png_bytes(), PROMPT)
    kinds = [type(e).__name__ for e in seen]
    assert kinds == [
        "RequestEvent",
        "RetryEvent",
        "RequestEvent",
        "ErrorEvent",
        "RequestEvent",
        "ResponseEvent",
    ]
    assert isinstance(seen[0], RequestEvent) and seen[0].image_info[0].mime == "image/png"
    assert isinstance(seen[1], RetryEvent) and seen[1].status == 500
    assert isinstance(seen[3], ErrorEvent) and seen[3].fallback_to == "openai/gpt-4o"
    assert isinstance(seen[5], ResponseEvent) and seen[5].response_model == "gpt-4o"
    assert all(
        getattr(e, "prompt", None) is None and getattr(e, "text", None) is None for e in seen
    )
    assert KEY not in repr(seen)
    with pytest.raises(vlgate.ConfigError, match="hooks"):
        vlgate.create("openai/gpt-4o-mini", api_key=KEY, hooks=print)


def test_cli_verbose_logs_each_request_and_retry(emu: Emulator, tmp_path: Any) -> None:
    image = tmp_path / "scene.png"
    image.write_bytes(make_scene(9, size=(320, 240)).to_png_bytes())
    emu.script("gpt-4o-mini", ["503"])
    env = {"OPENAI_API_KEY": KEY, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    import os

    env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "VIRTUAL_ENV")})

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "vlgate",
                *flags,
                "query",
                str(image),
                "How many shapes?",
                "-m",
                "openai/gpt-4o-mini",
                "--api-base",
                emu.openai_base,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )

    one = run("-v")
    assert one.returncode == 0, one.stderr
    lines = [ln for ln in one.stderr.splitlines() if "openai/gpt-4o-mini" in ln]
    assert any("-> openai/gpt-4o-mini query attempt 1" in ln for ln in lines)
    assert any("retry openai/gpt-4o-mini attempt 1 failed: ProviderError 503" in ln for ln in lines)
    assert any("<- openai/gpt-4o-mini query" in ln and "tokens" in ln for ln in lines)
    assert "images=[" not in one.stderr
    two = run("-vv")
    assert two.returncode == 0, two.stderr
    assert "images=[320x240 image/" in two.stderr or "images=[" in two.stderr
    for out in (one, two):
        assert KEY not in out.stderr and KEY not in out.stdout
