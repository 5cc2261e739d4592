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
from dataclasses import dataclass, field

from .errors import ConfigError

__all__ = [
    "FAMILIES",
    "PROVIDERS",
    "SERVICES",
    "ImageLimits",
    "ModelFamily",
    "ProviderSpec",
    "Route",
    "ServiceSpec",
    "family_for",
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
        ),
        ServiceSpec(
            name="vllm",
            limits=ImageLimits(min_side=28),
            source="docs.vllm.ai multimodal inputs (limit-mm-per-prompt is server config)",
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
            target=_OPENAI_COMPAT,
            service="openai",
            key_env=("OPENAI_API_KEY",),
            base_url="https://api.openai.com/v1",
            base_url_env=("OPENAI_BASE_URL",),
            default_model="gpt-4o-mini",
            native_json_schema=True,
            description="OpenAI chat completions (openai SDK)",
        ),
        ProviderSpec(
            name="qwen",
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
            target=_OPENAI_COMPAT,
            service="ollama",
            key_env=("OLLAMA_API_KEY",),
            base_url="http://localhost:11434/v1",
            base_url_env=("OLLAMA_BASE_URL",),
            needs_key=False,
            default_model="qwen2.5vl:7b",
            native_json_schema=True,
            description="Local Ollama server through its OpenAI-compatible /v1",
        ),
        ProviderSpec(
            name="vllm",
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
            description="A Hugging Face transformers VLM run in-process (extra: local)",
        ),
        ProviderSpec(
            name="litellm",
            target="vlgate.providers.litellm:LiteLLMProvider",
            service="generic",
            key_env=("LITELLM_API_KEY",),
            base_url_env=("LITELLM_API_BASE",),
            needs_key=False,  # LiteLLM reads each provider's own env vars; checked per service.
            native_json_schema=True,
            description="Any LiteLLM model: anthropic/, gemini/, bedrock/, azure/, vertex_ai/",
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


LITELLM_SERVICES: dict[str, GatewayRoute] = {
    "anthropic": GatewayRoute("anthropic", ("ANTHROPIC_API_KEY",)),
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
            native_json_schema=False,
            description="Claude on the high-resolution tier (Opus 4.7): long edge 2576 px",
        ),
        ModelFamily(
            name="claude",
            patterns=(r"claude",),
            grounding="claude",
            resize="claude",
            tokens="claude",
            price_per_mtok=(3.0, 15.0),
            # Structured output is asked for in the prompt: LiteLLM emulates json_schema for
            # Anthropic with a forced tool call, which changes the answer's shape.
            native_json_schema=False,
            description="Claude: pixels of the image after Anthropic's resize",
        ),
        ModelFamily(
            name="gpt",
            patterns=(r"gpt-", r"\bo[134]-", r"chatgpt"),
            grounding="gpt",
            resize="openai-tile",
            tokens="openai-tile",
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


# Short names from the design vlgate grew from: create("openai"), create("qwen").
_SHORT_NAMES = {"openai", "qwen", "ollama", "vllm", "litellm", "moondream"}


def resolve(model: str, *, family: str | None = None) -> Route:
    """Resolve a model string to the provider that sends it, the service limits and the family.

    ``openai/gpt-4o`` -> openai provider; ``qwen/...``, ``ollama/...``, ``vllm/...`` likewise;
    ``litellm/<anything>`` forces LiteLLM; any other ``prefix/model`` goes through LiteLLM.

    Example:
        >>> r = resolve("anthropic/claude-sonnet-4-6")
        >>> (r.provider.name, r.service.name, r.family.name, r.model)
        ('litellm', 'anthropic', 'claude', 'anthropic/claude-sonnet-4-6')
    """
    if not model or not isinstance(model, str):
        raise ConfigError("model must be a non-empty string such as 'openai/gpt-4o-mini'")
    prefix, sep, rest = model.partition("/")
    if not sep:
        if model in _SHORT_NAMES and model != "litellm":
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
    litellm_model = rest if prefix == "litellm" else model
    lprefix = litellm_model.partition("/")[0] if "/" in litellm_model else "openai"
    gateway = LITELLM_SERVICES.get(lprefix, _UNKNOWN_GATEWAY_ROUTE)
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
