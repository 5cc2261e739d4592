"""OpenTelemetry for vlgate: GenAI-convention spans and metrics from the attempt loop's events.

:func:`instrument` adds one hook (:mod:`vlgate.runtime.hooks`) that turns each call into a
``chat {model}`` span (kind CLIENT) following the OpenTelemetry GenAI semantic conventions, with
one child span per attempt (its status, the retry delay, the fallback target), and records the
``gen_ai.client.operation.duration`` and ``gen_ai.client.token.usage`` histograms plus vlgate's
own counters (requests, retries, cache hits, cost).

Images, prompts and answers are not recorded unless ``capture_content=True`` (the conventions'
opt-in), and an image is never its bytes: it is its size, type, byte count and a short hash. Keys
are in no event, so they cannot reach any attribute.

Example:
    >>> from opentelemetry.sdk.trace import TracerProvider                 # doctest: +SKIP
    >>> from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    >>> provider = TracerProvider()                                        # doctest: +SKIP
    >>> provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))  # doctest: +SKIP
    >>> vlgate.integrations.otel.instrument(tracer_provider=provider)      # doctest: +SKIP

Without arguments :func:`instrument` uses the global tracer and meter providers; with no SDK
configured those are no-ops and so is the hook. Without :func:`instrument` there is no hook at
all and the attempt loop skips building events.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..runtime.hooks import (
    ErrorEvent,
    Event,
    RequestEvent,
    ResponseEvent,
    RetryEvent,
    add_global_hook,
    remove_global_hook,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..model import VlModel

__all__ = ["OTelHook", "instrument", "uninstrument"]

# vlgate provider -> gen_ai.provider.name (the conventions' shared values where one exists; a
# custom value otherwise, with gen_ai.request.model and server.address naming the backend).
PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "qwen": "alibaba.dashscope",
    "ollama": "ollama",
    "vllm": "vllm",
    "moondream": "moondream",
    "local": "transformers",
    "litellm": "litellm",
    "litellm_proxy": "litellm",
}

# Bucket advice from the conventions (gen-ai-metrics): 14 doublings from 10 ms; powers of 4.
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]
_TOKEN_BUCKETS = [float(4**i) for i in range(14)]


def _import_otel() -> tuple[Any, Any]:
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise ImportError(
            "vlgate.integrations.otel needs the OpenTelemetry API: pip install 'vlgate[otel]'"
        ) from None
    return trace, metrics


@dataclass
class _CallState:
    span: Any
    started: float
    attrs: dict[str, Any]
    attempt: Any = None
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)


class OTelHook:
    """The hook :func:`instrument` installs: events in, spans and metrics out.

    One instance may serve many models and event loops (state is keyed by call id, under a
    lock).
    """

    def __init__(
        self,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        capture_content: bool = False,
    ) -> None:
        trace, metrics = _import_otel()
        from .. import __version__

        self._trace = trace
        self._tracer = trace.get_tracer("vlgate", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("vlgate", __version__, meter_provider=meter_provider)
        self.capture_content = capture_content
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._requests = meter.create_counter(
            "vlgate.client.requests", unit="{request}", description="Attempts sent"
        )
        self._retries = meter.create_counter(
            "vlgate.client.retries", unit="{retry}", description="Attempts retried"
        )
        self._cache_hits = meter.create_counter(
            "vlgate.client.cache.hits", unit="{hit}", description="Answers from the cache"
        )
        self._cost = meter.create_counter(
            "vlgate.client.cost", unit="{USD}", description="Cost of answers, when priced"
        )
        self._calls: dict[int, _CallState] = {}
        self._lock = threading.Lock()

    # --- events -----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestEvent):
            self._on_request(event)
        elif isinstance(event, RetryEvent):
            self._on_retry(event)
        elif isinstance(event, ErrorEvent):
            self._on_error(event)
        elif isinstance(event, ResponseEvent):
            self._on_response(event)

    def _base_attrs(self, model: str, provider: str, server: str | None) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
            "gen_ai.request.model": model.partition("/")[2] or model,
        }
        if server:
            parts = urlsplit(server)
            if parts.hostname:
                attrs["server.address"] = parts.hostname
                attrs["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
        return attrs

    def _start_call(self, event: RequestEvent | ResponseEvent, server: str | None) -> _CallState:
        attrs = self._base_attrs(event.model, event.provider, server)
        span = self._tracer.start_span(
            f"chat {attrs['gen_ai.request.model']}",
            kind=self._trace.SpanKind.CLIENT,
            attributes={**attrs, "vlgate.task": event.op},
        )
        return _CallState(span, time.perf_counter(), attrs)

    def _on_request(self, event: RequestEvent) -> None:
        with self._lock:
            state = self._calls.get(event.call_id)
            if state is None:
                state = self._calls[event.call_id] = self._start_call(event, event.server)
            elif event.model.partition("/")[2] != state.attrs["gen_ai.request.model"]:
                # A fallback route: the call span keeps the model first asked for.
                state.span.set_attribute("vlgate.fallback.model", event.model)
        span = state.span
        info = event.image_info
        span.set_attribute("vlgate.image.count", event.images)
        span.set_attribute("vlgate.image_tokens.estimated", event.estimated_tokens)
        if info:
            span.set_attribute("vlgate.image.width", [i.width for i in info])
            span.set_attribute("vlgate.image.height", [i.height for i in info])
            span.set_attribute("vlgate.image.mime_type", [i.mime for i in info])
            span.set_attribute("vlgate.image.bytes", [i.nbytes for i in info])
            span.set_attribute("vlgate.image.sha256", [i.sha256 for i in info])
        if self.capture_content and event.prompt is not None:
            parts: list[dict[str, Any]] = [{"type": "text", "content": event.prompt}]
            parts += [
                {
                    "type": "image",
                    "mime_type": i.mime,
                    "width": i.width,
                    "height": i.height,
                    "bytes": i.nbytes,
                    "sha256": i.sha256,
                }
                for i in info
            ]
            span.set_attribute(
                "gen_ai.input.messages", json.dumps([{"role": "user", "parts": parts}])
            )
        context = self._trace.set_span_in_context(span)
        attempt = self._tracer.start_span(
            f"attempt {event.attempt} {event.model}",
            context=context,
            kind=self._trace.SpanKind.CLIENT,
            attributes={
                "vlgate.attempt": event.attempt,
                "vlgate.model": event.model,
                "gen_ai.provider.name": PROVIDER_NAMES.get(event.provider, event.provider),
            },
        )
        with self._lock:
            state.attempt = attempt
        self._requests.add(1, self._metric_attrs(state.attrs))

    def _end_attempt(self, state: _CallState, error: str | None, **attrs: Any) -> None:
        attempt, state.attempt = state.attempt, None
        if attempt is None:
            return
        for key, value in attrs.items():
            if value is not None:
                attempt.set_attribute(key, value)
        if error is not None:
            attempt.set_attribute("error.type", error)
            attempt.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        attempt.end()

    def _on_retry(self, event: RetryEvent) -> None:
        with self._lock:
            state = self._calls.get(event.call_id)
        if state is None:
            return
        state.retries += 1
        self._end_attempt(
            state,
            event.error,
            **{"http.response.status_code": event.status, "vlgate.retry.delay": event.delay},
        )
        self._retries.add(1, self._metric_attrs(state.attrs))

    def _on_error(self, event: ErrorEvent) -> None:
        with self._lock:
            state = self._calls.get(event.call_id)
            if state is not None and not event.fallback:
                del self._calls[event.call_id]
        if state is None:
            return
        self._end_attempt(
            state,
            event.error,
            **{"http.response.status_code": event.status, "vlgate.fallback.to": event.fallback_to},
        )
        if event.fallback:
            state.fallbacks.append(event.fallback_to or "")
            state.span.add_event(
                "vlgate.fallback",
                {"from": event.model, "to": event.fallback_to or "", "error.type": event.error},
            )
            return
        span = state.span
        span.set_attribute("error.type", event.error)
        span.set_attribute("vlgate.attempts", event.attempts)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.error))
        span.end()
        self._duration.record(
            time.perf_counter() - state.started,
            {**self._metric_attrs(state.attrs), "error.type": event.error},
        )

    def _on_response(self, event: ResponseEvent) -> None:
        with self._lock:
            state = self._calls.pop(event.call_id, None)
        if state is None:  # a cache hit: no attempt was sent
            state = self._start_call(event, None)
        self._end_attempt(state, None)
        span = state.span
        response_model = event.response_model or state.attrs["gen_ai.request.model"]
        values: dict[str, Any] = {
            "gen_ai.response.model": response_model,
            "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
            "vlgate.attempts": event.attempts,
            "vlgate.cache_hit": event.cached,
            "vlgate.retries": state.retries,
        }
        if event.finish_reason:
            values["gen_ai.response.finish_reasons"] = [event.finish_reason]
        if event.image_tokens is not None:
            values["vlgate.usage.image_tokens"] = event.image_tokens
        if event.cost is not None:
            values["vlgate.cost"] = event.cost
        span.set_attributes(values)
        if self.capture_content and event.text is not None:
            message = {"role": "assistant", "parts": [{"type": "text", "content": event.text}]}
            if event.finish_reason:
                message["finish_reason"] = event.finish_reason
            span.set_attribute("gen_ai.output.messages", json.dumps([message]))
        span.end()
        attrs = {**self._metric_attrs(state.attrs), "gen_ai.response.model": response_model}
        self._duration.record(time.perf_counter() - state.started, attrs)
        if not event.cached:
            for kind, count in (("input", event.input_tokens), ("output", event.output_tokens)):
                if count:
                    self._tokens.record(count, {**attrs, "gen_ai.token.type": kind})
            if event.cost:
                self._cost.add(event.cost, attrs)
        else:
            self._cache_hits.add(1, attrs)

    @staticmethod
    def _metric_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
        # The call span's creation attributes are also the metrics' (server.port only ever
        # comes with server.address, as the conventions require).
        return dict(attrs)


def instrument(
    model: VlModel | None = None,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool = False,
) -> OTelHook:
    """Trace vlgate calls with OpenTelemetry: one model's, or (``model=None``) every model's.

    Args:
        model: the model to trace; ``None`` traces every model in this process.
        tracer_provider, meter_provider: where spans and metrics go (default: the global ones).
        capture_content: also record prompts and answers (``gen_ai.input.messages`` /
            ``gen_ai.output.messages``); images are recorded as size, type and hash only.

    Returns:
        The hook; pass it to :func:`uninstrument` to stop.

    Example:
        >>> hook = vlgate.integrations.otel.instrument()   # doctest: +SKIP
    """
    hook = OTelHook(tracer_provider, meter_provider, capture_content=capture_content)
    if model is None:
        add_global_hook(hook, content=capture_content)
    else:
        model.add_hook(hook, content=capture_content)
    return hook


def uninstrument(hook: OTelHook) -> None:
    """Stop a process-wide :func:`instrument` (a model's own hook ends with the model)."""
    remove_global_hook(hook)
