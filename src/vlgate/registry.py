"""What vlgate knows about providers, services and model families — as data.

Three tables, each a plain dict of frozen records:

* ``PROVIDERS`` — *how* vlgate talks: which module implements the wire, which env vars hold the key,
  the default endpoint. A provider is one module plus one row here.
* ``SERVICES`` — *whose rules* apply to the images: the limits of the service that finally receives
  the request (Anthropic, Bedrock, Gemini, OpenAI, ...). A LiteLLM model string ``bedrock/...`` is
  sent by the ``litellm`` provider but must meet Bedrock's limits.
* ``FAMILIES`` — *which model* answers: grounding convention, the provider-side resize rule, prices.

``resolve(model)`` turns a model string into a :class:`Route` joining the three.

Limits come from ``coords.md`` Part B (provider docs as of 2026); each row cites its source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import ConfigError

__all__ = [
    "BATCH_APIS",
    "FAMILIES",
    "PARAMS",
    "PROVIDERS",
    "SERVICES",
    "BatchSpec",
    "ImageLimits",
    "ModelFamily",
    "Param",
    "ParamTable",
    "ProviderSpec",
    "Route",
    "ServiceSpec",
    "family_for",
    "gateway_route",
    "known_prefixes",
    "param_table",
    "resolve",
]

MB = 1024 * 1024
_STANDARD_FORMATS = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


@dataclass(frozen=True, kw_only=True)
class ImageLimits:
    """What one service accepts per image and per request. ``None`` means no stated limit."""

    max_bytes: int | None = None
    """Largest image in raw (decoded) bytes. Base64 adds a third on the wire."""
    max_side: int | None = None
    """Largest width or height in pixels."""
    min_side: int | None = None
    """Smallest width or height in pixels (Qwen-family servers reject smaller)."""
    max_images: int | None = None
    """Most images in one request."""
    many_images: tuple[int, int] | None = None
    """``(threshold, max_side)``: above ``threshold`` images per request, each side must be at
    most ``max_side`` (Anthropic: more than 20 images -> 2000 px)."""
    max_request_bytes: int | None = None
    """Largest request on the wire (base64 images included): Gemini's inline 20 MB."""
    formats: frozenset[str] = _STANDARD_FORMATS
    """MIME types accepted; anything else is transcoded before sending."""

    def side_cap(self, n_images: int) -> int | None:
        """The largest side allowed when a request holds ``n_images`` images."""
        cap = self.max_side
        if self.many_images and n_images > self.many_images[0]:
            many = self.many_images[1]
            cap = many if cap is None else min(cap, many)
        return cap


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """The service that finally receives the request, and its image rules."""

    name: str
    limits: ImageLimits
    source: str = ""
    rule_map: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    """Resize rules and token formulas this service replaces with its own: a self-hosted
    server runs the model's released processor, not DashScope's caps."""


@dataclass(frozen=True, kw_only=True)
class ProviderSpec:
    """How vlgate reaches a model: the module implementing the wire protocol and its defaults."""

    name: str
    target: str
    """``module:Class`` of the implementation, imported on first use."""
    service: str
    """Default service (key of ``SERVICES``) whose image limits apply."""
    key_env: tuple[str, ...] = ()
    """Env vars tried in order for the API key."""
    base_url: str | None = None
    base_url_env: tuple[str, ...] = ()
    needs_key: bool = True
    needs_base_url: bool = False
    keyless_on_loopback: bool = False
    """The service also runs as a local server that takes no key (Moondream Station): no key is
    required when ``api_base`` is a loopback address."""
    default_model: str | None = None
    native_json_schema: bool = False
    """Whether ``response_format={"type": "json_schema", ...}`` is honoured."""
    concurrency: int = 64
    """Requests in flight when ``max_concurrency`` is not set: hosted APIs take many at once
    (their limits are per minute, and 429s are retried); a local server or an in-process model
    works through a few at a time, and more would only queue into timeouts."""
    litellm_prefix: str | None = None
    """LiteLLM's provider prefix for this provider's models (gateway configs); ``None``: the
    LiteLLM Proxy cannot serve them."""
    params: str | None = None
    """Key of the ``PARAMS`` table this wire takes, when it is not the service's own (a
    gateway speaks one wire whatever service is behind it)."""
    batch: str | None = None
    """Key of the ``BATCH_APIS`` row of the provider's Batch API (``None``: it has none)."""
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class ModelFamily:
    """A family of models that share a grounding convention and a provider-side resize rule."""

    name: str
    patterns: tuple[str, ...]
    """Regexes matched (case-insensitively, with ``re.search``) against the model string."""
    grounding: str
    """Name of the coordinate convention in ``vlgate.grounding.conventions``."""
    resize: str | None = None
    """Name of the resize rule in ``vlgate.sizing`` the service applies before the model sees the
    image, or ``None`` when the convention is resize-invariant."""
    tokens: str | None = None
    """Name of the image-token formula in ``vlgate.tokens.TOKEN_FORMULAS``."""
    token_rules: tuple[tuple[str, str], ...] = ()
    """``(regex, formula)``: models of this family that count image tokens differently from
    ``tokens`` (matched like ``patterns``; the first match wins)."""
    price_per_mtok: tuple[float, float] | None = None
    """(input, output) US dollars per million tokens, when known."""
    native_json_schema: bool | None = None
    description: str = ""


@dataclass(frozen=True)
class Route:
    """A model string resolved against the tables: who sends, whose limits, which family."""

    model: str
    """The model name as sent on the wire (provider prefix removed where the provider wants)."""
    provider: ProviderSpec
    service: ServiceSpec
    family: ModelFamily
    requested: str = field(default="", compare=False)
    """The model string the caller wrote."""
    key_env: tuple[str, ...] = ()
    """Env vars tried in order for the key (a LiteLLM route adds the provider's own)."""
    needs_key: bool = True
    """Whether a missing key is an error before sending."""
    keyless_on_loopback: bool = False
    """Whether an ``api_base`` on loopback lifts the key requirement."""


# --- parameters ---------------------------------------------------------------------------------
# Where each provider takes the parameters callers pass (``query(..., top_k=5)``). One table per
# receiving API (keyed like ``SERVICES``); ``vlgate.providers.params.place`` puts a call's
# parameters into a body with it, whichever module builds the rest of the body.

BODY = "body"
"""Top-level key of the JSON body (what the openai SDK calls ``extra_body`` for non-OpenAI keys)."""
IMAGE = "image"
"""A key on every image part (OpenAI ``image_url.detail``)."""
GENERATION = "generationConfig"
"""A key inside Gemini's ``generationConfig``."""
OPTIONS = "options"
"""A key inside Ollama's ``options``."""
SETTINGS = "settings"
"""A key inside Moondream's ``settings``."""


@dataclass(frozen=True)
class Param:
    """Where one caller parameter goes on the wire: ``where`` (``BODY``, ``IMAGE``, a nested
    object such as ``GENERATION``) and the wire ``key`` when it differs from the caller's name."""

    where: str = BODY
    key: str | None = None


@dataclass(frozen=True, kw_only=True)
class ParamTable:
    """The parameters one API takes natively, where each goes, and what it is known to reject."""

    name: str
    params: dict[str, Param]
    rejects: dict[str, str] = field(default_factory=dict)
    """Parameters the API is known to reject, with the reason (reported in ``dropped_params``)."""
    unknown: str | None = None
    """Why a parameter in neither table is dropped, for APIs that reject unknown keys; ``None``:
    the server ignores or takes extra keys, so unknown parameters are sent top-level."""
    strict_json_schema: bool = False
    """Whether the API takes OpenAI's ``json_schema.strict`` (sent when the schema allows)."""
    variants: dict[str, dict[str, str]] = field(default_factory=dict)
    """``{param: {value: variant}}`` for parameters that change what the model sees: the resize
    rule and token formula named ``"<rule>@<variant>"`` apply instead (``detail="low"``)."""
    source: str = ""

    def accepts(self, name: str) -> bool:
        """Whether ``name`` is sent (natively, or top-level on an API that takes extra keys)."""
        return name in self.params or (name not in self.rejects and self.unknown is None)

    def reason(self, name: str) -> str | None:
        """Why ``name`` is dropped, or ``None`` when it is sent."""
        if name in self.params:
            return None
        return self.rejects.get(name) or self.unknown


def _same(where: str, *names: str) -> dict[str, Param]:
    return {n: Param(where) for n in names}


_OPENAI_BODY = _same(
    BODY,
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "service_tier",
    "reasoning_effort",
    "verbosity",
    "metadata",
    "store",
    "response_format",
    "prediction",
    "prompt_cache_key",
    "safety_identifier",
)
_OPENAI_REJECTS = {
    "top_k": "OpenAI chat completions has no top_k (400 unrecognized request argument)",
    "min_p": "OpenAI chat completions has no min_p (400 unrecognized request argument)",
    "repetition_penalty": "OpenAI has no repetition_penalty; use frequency_penalty",
}
_NO_ANTHROPIC = "Anthropic Messages has no {}; the API rejects extra inputs (400)"
_NO_GEMINI = "Gemini generateContent has no {} (400 Unknown name)"

PARAMS: dict[str, ParamTable] = {
    t.name: t
    for t in [
        ParamTable(
            name="openai",
            params={**_OPENAI_BODY, "detail": Param(IMAGE)},
            rejects=_OPENAI_REJECTS,
            unknown="not an OpenAI chat-completions parameter (400 unrecognized request argument)",
            strict_json_schema=True,
            variants={"detail": {"low": "low"}},
            source="openai-openapi CreateChatCompletionRequest; image_url.detail auto/low/high",
        ),
        ParamTable(
            name="azure",
            params={**_OPENAI_BODY, "detail": Param(IMAGE)},
            rejects=_OPENAI_REJECTS,
            unknown="not an Azure OpenAI chat-completions parameter",
            strict_json_schema=True,
            variants={"detail": {"low": "low"}},
            source="Azure OpenAI follows OpenAI's chat-completions schema",
        ),
        ParamTable(
            name="dashscope",
            params={
                **_OPENAI_BODY,
                **_same(
                    BODY,
                    "top_k",
                    "repetition_penalty",
                    "vl_high_resolution_images",
                    "enable_thinking",
                    "thinking_budget",
                ),
            },
            variants={"vl_high_resolution_images": {"True": "high"}},
            source="alibabacloud.com model-studio/vision (vl_high_resolution_images) and "
            "compatible-mode extra_body parameters",
        ),
        ParamTable(
            name="vllm",
            params={
                **_OPENAI_BODY,
                "detail": Param(IMAGE),
                **_same(
                    BODY,
                    "top_k",
                    "min_p",
                    "repetition_penalty",
                    "min_tokens",
                    "mm_processor_kwargs",
                    "guided_json",
                    "guided_regex",
                    "guided_choice",
                    "guided_grammar",
                    "structured_outputs",
                    "chat_template_kwargs",
                    "skip_special_tokens",
                ),
            },
            source="docs.vllm.ai OpenAI-compatible server, extra parameters (extra keys ignored)",
        ),
        ParamTable(
            name="ollama",
            params={
                **_OPENAI_BODY,
                **_same(BODY, "options", "keep_alive", "think", "top_k", "min_p", "num_ctx"),
            },
            source="ollama openai-compatibility docs; /v1 ignores keys it does not know",
        ),
        ParamTable(
            name="anthropic",
            params={
                **_same(
                    BODY,
                    "temperature",
                    "top_p",
                    "top_k",
                    "max_tokens",
                    "thinking",
                    "metadata",
                    "service_tier",
                    "output_config",
                    "stop_sequences",
                ),
                "stop": Param(BODY, "stop_sequences"),
                "max_completion_tokens": Param(BODY, "max_tokens"),
            },
            rejects={
                n: _NO_ANTHROPIC.format(n)
                for n in (
                    "seed",
                    "n",
                    "presence_penalty",
                    "frequency_penalty",
                    "logit_bias",
                    "logprobs",
                    "top_logprobs",
                    "min_p",
                )
            }
            | {"detail": "Anthropic has no per-image detail; use auto_resize to send fewer pixels"},
            unknown="not an Anthropic Messages parameter (400 extra inputs are not permitted)",
            source="anthropic-sdk-python types/message_create_params.py",
        ),
        ParamTable(
            name="gemini",
            params={
                "temperature": Param(GENERATION),
                "top_p": Param(GENERATION, "topP"),
                "top_k": Param(GENERATION, "topK"),
                "max_tokens": Param(GENERATION, "maxOutputTokens"),
                "max_completion_tokens": Param(GENERATION, "maxOutputTokens"),
                "stop": Param(GENERATION, "stopSequences"),
                "seed": Param(GENERATION),
                "n": Param(GENERATION, "candidateCount"),
                "presence_penalty": Param(GENERATION, "presencePenalty"),
                "frequency_penalty": Param(GENERATION, "frequencyPenalty"),
                "media_resolution": Param(GENERATION, "mediaResolution"),
                "thinking_config": Param(GENERATION, "thinkingConfig"),
                "safety_settings": Param(BODY, "safetySettings"),
                "cached_content": Param(BODY, "cachedContent"),
            },
            rejects={
                n: _NO_GEMINI.format(n) for n in ("logit_bias", "user", "min_p", "service_tier")
            }
            | {"detail": "Gemini has no per-image detail; use media_resolution"},
            unknown="not a Gemini generateContent parameter (400 Unknown name)",
            variants={
                "media_resolution": {
                    "MEDIA_RESOLUTION_LOW": "low",
                    "MEDIA_RESOLUTION_MEDIUM": "medium",
                    "MEDIA_RESOLUTION_HIGH": "high",
                }
            },
            source="python-genai types.py GenerationConfig / GenerateContentConfig",
        ),
        ParamTable(
            name="moondream",
            params={
                "temperature": Param(SETTINGS),
                "top_p": Param(SETTINGS),
                "max_tokens": Param(SETTINGS),
                "max_completion_tokens": Param(SETTINGS, "max_tokens"),
                "max_new_tokens": Param(SETTINGS, "max_tokens"),
                "max_objects": Param(SETTINGS),
                "settings": Param(BODY),
                "length": Param(BODY),
                "reasoning": Param(BODY),
            },
            unknown="not a Moondream skill parameter (settings: temperature, top_p, max_tokens)",
            source="moondream-python types.py SamplingSettings; docs api caption (length)",
        ),
    ]
}
"""Parameter tables by API name (the service, or ``None`` for LiteLLM's own list)."""


def param_table(service: str) -> ParamTable | None:
    """The parameter table of a service, or ``None`` when vlgate has none (LiteLLM decides).

    Example:
        >>> param_table("anthropic").reason("seed")
        'Anthropic Messages has no seed; the API rejects extra inputs (400)'
    """
    return PARAMS.get(service)


# Self-hosted Qwen servers (vLLM, Ollama, in-process transformers) apply the released
# processor's min/max pixels; DashScope's ~1280-token cap is its own.
_QWEN_PROCESSOR = {
    "qwen-smart-28": "qwen-proc-28",
    "qwen-28": "qwen-proc-28",
    "qwen-smart-32": "qwen-proc-32",
    "qwen-32": "qwen-proc-32",
}

# --- services ---------------------------------------------------------------------------------

SERVICES: dict[str, ServiceSpec] = {
    s.name: s
    for s in [
        ServiceSpec(
            name="openai",
            # 20 MB per image, 500 images, 50 MB of images per request (OpenAI vision guide).
            limits=ImageLimits(
                max_bytes=20 * MB, max_images=500, max_request_bytes=50 * MB, max_side=None
            ),
            source="OpenAI Images and vision guide",
        ),
        ServiceSpec(
            name="azure",
            limits=ImageLimits(max_bytes=20 * MB, max_images=50, max_request_bytes=50 * MB),
            source="Azure OpenAI follows OpenAI's per-image limit",
        ),
        ServiceSpec(
            name="anthropic",
            # 5 MB per image, 8000 px, 2000 px when > 20 images, 600 images, 32 MB request.
            # The 5 MB is held against the base64 text, so raw bytes stay <= 3.75 MB: safe
            # whichever way the service counts.
            limits=ImageLimits(
                max_bytes=5 * MB * 3 // 4,
                max_side=8000,
                many_images=(20, 2000),
                max_images=600,
                max_request_bytes=32 * MB,
            ),
            source="platform.claude.com build-with-claude/vision",
        ),
        ServiceSpec(
            name="bedrock",
            # <= 20 images per message, each <= 3.75 MB and <= 8000 px (Converse ImageBlock).
            limits=ImageLimits(max_bytes=int(3.75 * MB), max_side=8000, max_images=20),
            source="AWS Bedrock API_runtime_Message / ImageBlock",
        ),
        ServiceSpec(
            name="gemini",
            # Inline data: the whole request <= 20 MB; up to 3600 images. No GIF.
            limits=ImageLimits(
                max_request_bytes=20 * MB,
                max_images=3600,
                formats=frozenset({"image/jpeg", "image/png", "image/webp"}),
            ),
            source="ai.google.dev gemini-api/docs/vision, file-input-methods",
        ),
        ServiceSpec(
            name="vertex_ai",
            limits=ImageLimits(
                max_request_bytes=20 * MB,
                max_images=3000,
                formats=frozenset({"image/jpeg", "image/png", "image/webp"}),
            ),
            source="Vertex AI Gemini inline data",
        ),
        ServiceSpec(
            name="dashscope",
            # Qwen servers reject sides under 10 px ("must be larger than 10"); smart_resize needs
            # at least one 28/32-px patch, so vlgate keeps sides >= 28. Per-file ~10 MB (U).
            limits=ImageLimits(max_bytes=10 * MB, min_side=28, max_images=100),
            source="alibabacloud.com model-studio/vision; QwenLM/qwen-code#2505",
        ),
        ServiceSpec(
            name="ollama",
            # /v1 takes only jpeg/png/webp data URIs (ollama openai/openai.go decodeImageURL).
            limits=ImageLimits(
                min_side=28, formats=frozenset({"image/jpeg", "image/png", "image/webp"})
            ),
            source="ollama openai/openai.go decodeImageURL; ollama#11297 (< 28 px crash)",
            rule_map=_QWEN_PROCESSOR,
        ),
        ServiceSpec(
            name="vllm",
            limits=ImageLimits(min_side=28),
            source="docs.vllm.ai multimodal inputs (limit-mm-per-prompt is server config)",
            rule_map=_QWEN_PROCESSOR,
        ),
        ServiceSpec(
            name="moondream",
            limits=ImageLimits(formats=frozenset({"image/jpeg", "image/png"}), max_images=1),
            source="moondream.ai/c/docs/advanced/api (one image per call, base64 data URI)",
        ),
        ServiceSpec(
            name="local",
            # In-process: PNG avoids a lossy JPEG round trip before the processor sees pixels.
            limits=ImageLimits(formats=frozenset({"image/png"})),
            source="vlgate.providers.local (no wire)",
            rule_map=_QWEN_PROCESSOR,
        ),
        ServiceSpec(name="generic", limits=ImageLimits(), source="no stated limits"),
    ]
}

# --- providers --------------------------------------------------------------------------------

_OPENAI_COMPAT = "vlgate.providers.openai:OpenAICompatProvider"

PROVIDERS: dict[str, ProviderSpec] = {
    p.name: p
    for p in [
        ProviderSpec(
            name="openai",
            litellm_prefix="openai",
            target=_OPENAI_COMPAT,
            service="openai",
            key_env=("OPENAI_API_KEY",),
            base_url="https://api.openai.com/v1",
            base_url_env=("OPENAI_BASE_URL",),
            default_model="gpt-4o-mini",
            native_json_schema=True,
            batch="openai",
            description="OpenAI chat completions (HTTP, no SDK)",
        ),
        ProviderSpec(
            name="qwen",
            litellm_prefix="dashscope",
            target=_OPENAI_COMPAT,
            service="dashscope",
            key_env=("DASHSCOPE_API_KEY", "ALIBABA_API_KEY"),
            base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            base_url_env=("DASHSCOPE_BASE_URL",),
            default_model="qwen-vl-max",
            native_json_schema=False,
            description="Qwen-VL on Alibaba DashScope, OpenAI-compatible endpoint",
        ),
        ProviderSpec(
            name="ollama",
            litellm_prefix="ollama_chat",
            target=_OPENAI_COMPAT,
            service="ollama",
            key_env=("OLLAMA_API_KEY",),
            base_url="http://localhost:11434/v1",
            base_url_env=("OLLAMA_BASE_URL",),
            needs_key=False,
            default_model="qwen2.5vl:7b",
            native_json_schema=True,
            concurrency=4,
            description="Local Ollama server through its OpenAI-compatible /v1",
        ),
        ProviderSpec(
            name="vllm",
            litellm_prefix="hosted_vllm",
            target=_OPENAI_COMPAT,
            service="vllm",
            key_env=("VLLM_API_KEY",),
            base_url=None,
            base_url_env=("VLLM_BASE_URL",),
            needs_key=False,
            needs_base_url=True,
            native_json_schema=True,
            description="A vLLM OpenAI-compatible server (api_base required)",
        ),
        ProviderSpec(
            name="anthropic",
            litellm_prefix="anthropic",
            target="vlgate.providers.anthropic:AnthropicProvider",
            service="anthropic",
            key_env=("ANTHROPIC_API_KEY",),
            base_url="https://api.anthropic.com",
            base_url_env=("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"),
            native_json_schema=True,
            batch="anthropic",
            description="Anthropic Messages API, native (litellm/anthropic/... for the gateway)",
        ),
        ProviderSpec(
            name="gemini",
            litellm_prefix="gemini",
            target="vlgate.providers.gemini:GeminiProvider",
            service="gemini",
            key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            base_url="https://generativelanguage.googleapis.com/v1beta",
            base_url_env=("GEMINI_API_BASE",),
            native_json_schema=True,
            batch="gemini",
            description="Gemini API generateContent, native (litellm/gemini/... for the gateway)",
        ),
        ProviderSpec(
            name="moondream",
            target="vlgate.providers.moondream:MoondreamProvider",
            service="moondream",
            key_env=("MOONDREAM_API_KEY",),
            base_url="https://api.moondream.ai/v1",
            base_url_env=("MOONDREAM_BASE_URL",),
            default_model="moondream-3",
            keyless_on_loopback=True,
            description="Moondream cloud or Station: native caption, query, detect, point",
        ),
        ProviderSpec(
            name="local",
            target="vlgate.providers.local:LocalProvider",
            service="local",
            needs_key=False,
            concurrency=1,
            description="A Hugging Face transformers VLM run in-process (extra: local)",
        ),
        ProviderSpec(
            name="litellm_proxy",
            litellm_prefix="litellm_proxy",
            target=_OPENAI_COMPAT,
            service="generic",
            key_env=("LITELLM_PROXY_API_KEY",),
            base_url_env=("LITELLM_PROXY_API_BASE",),
            needs_base_url=True,
            native_json_schema=True,
            # The proxy takes OpenAI's parameters and passes provider extras (top_k...) on to
            # LiteLLM, which translates them for the model behind the alias.
            params="vllm",
            description="A LiteLLM Proxy (fleet gateway) by alias; family/service from the "
            "proxy's model info or family=/service=",
        ),
        ProviderSpec(
            name="litellm",
            target="vlgate.providers.litellm:LiteLLMProvider",
            service="generic",
            key_env=("LITELLM_API_KEY",),
            base_url_env=("LITELLM_API_BASE",),
            needs_key=False,  # LiteLLM reads each provider's own env vars; checked per service.
            native_json_schema=True,
            description="Any LiteLLM model: bedrock/, azure/, vertex_ai/, litellm/anthropic/, ...",
        ),
    ]
}


@dataclass(frozen=True, kw_only=True)
class BatchSpec:
    """A provider's Batch API: its limits per job and its price (``VlModel.submit_batch``)."""

    name: str
    max_requests: int
    """Requests per job; more are split across several jobs."""
    max_bytes: int
    """Bytes per job as uploaded (the JSONL file, or the JSON body of an inline batch)."""
    inline_max_bytes: int | None = None
    """Bytes up to which the requests go inline in the create call; above, the adapter uploads
    an input file instead (``None``: the API takes one way only)."""
    discount: float = 0.5
    """Price factor of the batch price against the live price (cost = live cost x discount)."""
    description: str = ""


BATCH_APIS: dict[str, BatchSpec] = {
    b.name: b
    for b in [
        # OpenAI Batch API FAQ / openapi.yaml: 50,000 requests and 200 MB per input file,
        # 50% of the synchronous price, 24 h completion window.
        BatchSpec(
            name="openai",
            max_requests=50_000,
            max_bytes=200 * MB,
            description="POST /v1/files (purpose=batch, JSONL) + /v1/batches",
        ),
        # Anthropic Message Batches: 100,000 requests or 256 MB, whichever first; 50% price.
        BatchSpec(
            name="anthropic",
            max_requests=100_000,
            max_bytes=256 * MB,
            description="POST /v1/messages/batches (inline requests)",
        ),
        # Gemini batch mode: inline requests under 20 MB in total (larger input: a JSONL file
        # through the Files API, up to 2 GB); 50% price. A request-count cap is not documented.
        # Jobs are cut at 512 MB, not 2 GB: submit_batch holds one job in memory while building
        # it (a smaller job costs the same per request).
        BatchSpec(
            name="gemini",
            max_requests=100_000,
            max_bytes=512 * MB,
            inline_max_bytes=20 * MB,
            description="POST models/{model}:batchGenerateContent (inline, or a Files API JSONL)",
        ),
    ]
}


# LiteLLM prefixes -> the service whose image limits apply, and the env vars its key lives in.
@dataclass(frozen=True)
class GatewayRoute:
    """What a LiteLLM prefix (``anthropic/``, ``bedrock/``...) means for limits and keys."""

    service: str
    key_env: tuple[str, ...] = ()
    needs_key: bool = True
    """False where the credentials come from a chain (AWS, Google Cloud) or a local server."""
    keyless_on_loopback: bool = False
    """A server on this machine (``api_base`` on loopback) needs no key."""
    extra_body_as_kwargs: bool = False
    """LiteLLM sends ``extra_body`` literally for this provider: pass its keys as kwargs."""


LITELLM_SERVICES: dict[str, GatewayRoute] = {
    "anthropic": GatewayRoute("anthropic", ("ANTHROPIC_API_KEY",), extra_body_as_kwargs=True),
    "gemini": GatewayRoute("gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    "vertex_ai": GatewayRoute("vertex_ai", needs_key=False),
    "bedrock": GatewayRoute("bedrock", ("AWS_ACCESS_KEY_ID",), needs_key=False),
    "azure": GatewayRoute("azure", ("AZURE_API_KEY",)),
    "openai": GatewayRoute("openai", ("OPENAI_API_KEY",), keyless_on_loopback=True),
    "openrouter": GatewayRoute("generic", ("OPENROUTER_API_KEY",)),
    "hosted_vllm": GatewayRoute("vllm", needs_key=False),
    "ollama": GatewayRoute("ollama", needs_key=False),
    "ollama_chat": GatewayRoute("ollama", needs_key=False),
    "dashscope": GatewayRoute("dashscope", ("DASHSCOPE_API_KEY",)),
}
_UNKNOWN_GATEWAY_ROUTE = GatewayRoute("generic", needs_key=False)


def gateway_route(litellm_model: str) -> GatewayRoute:
    """What a LiteLLM model string's prefix means for limits, keys and parameters."""
    prefix = litellm_model.partition("/")[0] if "/" in litellm_model else "openai"
    return LITELLM_SERVICES.get(prefix, _UNKNOWN_GATEWAY_ROUTE)


# --- model families ---------------------------------------------------------------------------
# Order matters only where patterns overlap: the first match wins, so specific rows come first.

FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in [
        ModelFamily(
            name="qwen2.5-vl",
            patterns=(r"qwen2[._]5-?vl", r"qwen2\.5vl", r"qwen-vl-(max|plus)"),
            grounding="qwen2.5-vl",
            resize="qwen-smart-28",
            tokens="qwen-28",
            description="Qwen2.5-VL and DashScope qwen-vl-max/plus: pixels of the resized image",
        ),
        ModelFamily(
            name="qwen3-vl",
            patterns=(r"qwen3(\.\d+)?-?vl", r"qwen3vl", r"qwen3\.\d"),
            grounding="qwen3-vl",
            tokens="qwen-32",
            description="Qwen3-VL: 0-1000 of the full image",
        ),
        ModelFamily(
            name="qwen2-vl",
            patterns=(r"qwen2-?vl",),
            grounding="qwen2-vl",
            tokens="qwen-28",
            description="Qwen2-VL: 0-1000 special tokens",
        ),
        ModelFamily(
            name="gemini",
            patterns=(r"gemini", r"gemma-3"),
            grounding="gemini",
            tokens="gemini",
            token_rules=((r"gemini-3", "gemini-3"),),
            price_per_mtok=(0.30, 2.50),
            description="Gemini: box_2d [ymin,xmin,ymax,xmax] 0-1000, points [y,x]",
        ),
        ModelFamily(
            name="claude-hires",
            patterns=(r"claude-opus-4[.-]7",),
            grounding="claude",
            resize="claude-hires",
            tokens="claude-hires",
            price_per_mtok=(15.0, 75.0),
            description="Claude on the high-resolution tier (Opus 4.7): long edge 2576 px",
        ),
        ModelFamily(
            name="claude",
            patterns=(r"claude",),
            grounding="claude",
            resize="claude",
            tokens="claude",
            price_per_mtok=(3.0, 15.0),
            # Native structured output (output_config.format) on the anthropic/ provider.
            description="Claude: pixels of the image after Anthropic's resize",
        ),
        ModelFamily(
            name="gpt-patch",
            patterns=(r"gpt-4\.1-(mini|nano)", r"gpt-5(\.\d+)?-(mini|nano)", r"\bo4-mini"),
            grounding="gpt",
            resize="openai-patch",
            tokens="openai-patch-1.62",
            token_rules=(
                (r"gpt-4\.1-nano|gpt-5(\.\d+)?-nano", "openai-patch-2.46"),
                (r"\bo4-mini", "openai-patch-1.72"),
            ),
            price_per_mtok=(0.40, 1.60),
            description="OpenAI patch models (gpt-4.1-mini/nano, gpt-5 mini/nano, o4-mini): "
            "32-px patches, at most 1536",
        ),
        ModelFamily(
            name="gpt",
            patterns=(r"gpt-", r"\bo[134]-", r"chatgpt"),
            grounding="gpt",
            resize="openai-tile",
            tokens="openai-tile",
            token_rules=((r"gpt-4o-mini", "openai-tile-mini"),),
            price_per_mtok=(0.15, 0.60),
            description="GPT-4o/4.1/5: no trained convention; pixels of the resized image",
        ),
        ModelFamily(
            name="moondream",
            patterns=(r"moondream",),
            grounding="moondream",
            description="Moondream: 0-1 of the full image",
        ),
        ModelFamily(
            name="florence-2",
            patterns=(r"florence",),
            grounding="florence-2",
            description="Florence-2: <loc_N> 1000 bins",
        ),
        ModelFamily(
            name="paligemma",
            patterns=(r"paligemma",),
            grounding="paligemma",
            description="PaliGemma: <locNNNN> 1024 bins, y first",
        ),
        ModelFamily(
            name="deepseek-vl2",
            patterns=(r"deepseek-?vl",),
            grounding="deepseek-vl2",
            description="DeepSeek-VL2: <|det|> 0-999",
        ),
        ModelFamily(
            name="internvl",
            patterns=(r"internvl",),
            grounding="internvl",
            description="InternVL: <box> 0-1000",
        ),
        ModelFamily(
            name="glm-4v",
            patterns=(r"glm-?4(\.\d)?v",),
            grounding="glm-4v",
            description="GLM-4.1V/4.5V: 0-1000",
        ),
        ModelFamily(
            name="molmo",
            patterns=(r"molmo",),
            grounding="molmo",
            description="Molmo: <point> percent 0-100",
        ),
        ModelFamily(
            name="kimi-vl",
            patterns=(r"kimi-?vl",),
            grounding="kimi-vl",
            description="Kimi-VL: 0-1 floats (observed)",
        ),
        ModelFamily(
            name="generic",
            patterns=(),
            grounding="pixel",
            description="Unknown model: ask for pixels of the image sent",
        ),
    ]
}


def family_for(model: str, override: str | None = None) -> ModelFamily:
    """The family of ``model`` by pattern, or ``override`` when given.

    Example:
        >>> family_for("anthropic/claude-sonnet-4-6").name
        'claude'
    """
    if override:
        try:
            return FAMILIES[override]
        except KeyError:
            known = ", ".join(sorted(FAMILIES))
            raise ConfigError(f"unknown model family {override!r}; known: {known}") from None
    for fam in FAMILIES.values():
        if any(re.search(p, model, re.IGNORECASE) for p in fam.patterns):
            return fam
    return FAMILIES["generic"]


def known_prefixes() -> list[str]:
    """Model-string prefixes vlgate routes itself (``litellm/`` reaches any other LiteLLM model).

    Example:
        >>> "anthropic" in known_prefixes() and "litellm" in known_prefixes()
        True
    """
    return sorted(set(PROVIDERS) | set(LITELLM_SERVICES))


def resolve(model: str, *, family: str | None = None, service: str | None = None) -> Route:
    """Resolve a model string to the provider that sends it, the service limits and the family.

    ``openai/gpt-4o`` -> openai provider; ``anthropic/...``, ``gemini/...``, ``qwen/...``,
    ``ollama/...``, ``vllm/...`` likewise (each prefix in ``PROVIDERS``);
    ``litellm/<anything>`` forces LiteLLM; any other ``prefix/model`` goes through LiteLLM.

    Example:
        >>> r = resolve("anthropic/claude-sonnet-4-6")
        >>> (r.provider.name, r.service.name, r.family.name, r.model)
        ('anthropic', 'anthropic', 'claude', 'claude-sonnet-4-6')
        >>> resolve("litellm/anthropic/claude-sonnet-4-6").provider.name
        'litellm'

    ``service`` overrides whose image limits apply (a gateway alias whose real model is known).
    """
    route = _resolve(model, family)
    if service is None:
        return route
    if service not in SERVICES:
        known = ", ".join(sorted(SERVICES))
        raise ConfigError(f"unknown service {service!r}; known: {known}")
    return replace(route, service=SERVICES[service])


def _resolve(model: str, family: str | None) -> Route:
    if not model or not isinstance(model, str):
        raise ConfigError("model must be a non-empty string such as 'openai/gpt-4o-mini'")
    prefix, sep, rest = model.partition("/")
    if not sep:
        # A bare provider name (create("openai"), create("qwen")) means its default model.
        if model in PROVIDERS and model != "litellm":
            spec = PROVIDERS[model]
            if spec.default_model is None:
                raise ConfigError(f"{model!r} needs a model name: '{model}/<model>'")
            prefix, rest = model, spec.default_model
        elif model == "litellm":
            raise ConfigError("'litellm' needs a model: create('litellm', model_name='...')")
        else:
            raise ConfigError(
                f"model {model!r} has no provider prefix; write e.g. 'openai/{model}' or "
                f"'anthropic/{model}'"
            )
    if not rest:
        raise ConfigError(f"model {model!r} has an empty model name after '{prefix}/'")
    if prefix in PROVIDERS and prefix != "litellm":
        spec = PROVIDERS[prefix]
        return Route(
            model=rest,
            provider=spec,
            service=SERVICES[spec.service],
            family=family_for(rest, family),
            requested=model,
            key_env=spec.key_env,
            needs_key=spec.needs_key,
            keyless_on_loopback=spec.keyless_on_loopback,
        )
    if prefix != "litellm" and prefix not in LITELLM_SERVICES:
        raise ConfigError(
            f"unknown provider prefix {prefix!r} in {model!r}; known prefixes: "
            f"{', '.join(known_prefixes())}. Any other LiteLLM model: 'litellm/{model}'"
        )
    litellm_model = rest if prefix == "litellm" else model
    gateway = gateway_route(litellm_model)
    spec = PROVIDERS["litellm"]
    return Route(
        model=litellm_model,
        provider=spec,
        service=SERVICES[gateway.service],
        family=family_for(litellm_model, family),
        requested=model,
        key_env=spec.key_env + gateway.key_env,
        needs_key=gateway.needs_key,
        keyless_on_loopback=gateway.keyless_on_loopback,
    )
