"""In-process local models: a Hugging Face transformers VLM on this machine's GPU or CPU.

``vlgate.create("local/Qwen/Qwen2.5-VL-3B-Instruct")`` or ``create("local//models/my-vlm")`` runs
the model inside the Python process: no server, never any network: a directory is read as it is
and a hub id must already be in the Hugging Face cache (``hf download <id>``), else ``create()``
raises :class:`~vlgate.ConfigError` at once. torch and transformers are imported on the first
request or on :meth:`LocalProvider.warmup`, never by ``import vlgate`` or ``create()``; the model is
loaded once per provider, and generation runs in a worker thread, one at a time, so the event
loop stays free while the GPU works.

Options go in ``params={...}`` (consumed here, never reported as dropped) or, once
:class:`~vlgate.ModelConfig` has the field, ``local_options={...}``: ``device`` (``"cuda"``,
``"cuda:1"``, ``"mps"``, ``"cpu"``; default: the best available), ``dtype`` (``"auto"``,
``"bfloat16"``, ``"float16"``, ``"float32"``), ``device_map`` (e.g. ``"auto"``, needs
``accelerate``), ``trust_remote_code`` (default ``False``), ``revision``, ``attn_implementation``,
``max_new_tokens`` (default answer length, 512) and ``processor_kwargs``. vlgate pre-resizes
Qwen2.5-VL images with the processor's default ``min_pixels``/``max_pixels``; other values there
make the model see another size than vlgate assumes, and ``detect``/``point`` boxes drift.

In transformers 5 the Qwen-VL processors need torchvision (their video processor does).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .. import errors
from ..image import EncodedImage, Image
from ..runtime.loop import PerLoop
from .base import ChatRequest, Completion, Provider, Usage, split_params

if TYPE_CHECKING:
    from ..config import ModelConfig
    from ..registry import Route

__all__ = ["INSTALL_HINT", "LocalOptions", "LocalProvider"]

log = logging.getLogger("vlgate")

INSTALL_HINT = (
    "the local provider needs torch and transformers; "
    "install the extra: pip install 'vlgate[local]'"
)

# Auto classes tried in order: the standard VLM head first; remote-code VLMs (Phi-3.5-vision,
# Moondream 2, Florence-2) register themselves as causal LMs instead.
_AUTO_MODEL_CLASSES = ("AutoModelForImageTextToText", "AutoModelForCausalLM")

# Generation parameters, in vlgate's (OpenAI-style) names, that ``model.generate`` can honour.
_GEN_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "max_new_tokens",
        "repetition_penalty",
        "no_repeat_ngram_size",
        "num_beams",
    }
)
# Names of the answer length, least specific first; ``generate`` calls it ``max_new_tokens``.
_LENGTH_NAMES = ("max_tokens", "max_completion_tokens", "max_new_tokens")
_DEFAULT_MAX_NEW_TOKENS = 512


@dataclass(frozen=True)
class LocalOptions:
    """How the local model is loaded and how long its answers are by default."""

    device: str | None = None
    """``cuda``, ``cuda:1``, ``mps``, ``cpu``; ``None`` picks CUDA, then MPS, then CPU."""
    dtype: str = "auto"
    """Weights dtype: ``auto`` (the checkpoint's), ``bfloat16``, ``float16``, ``float32``."""
    device_map: str | dict[str, Any] | None = None
    """Passed to ``from_pretrained`` (e.g. ``"auto"`` to split across GPUs); needs accelerate."""
    trust_remote_code: bool = False
    revision: str | None = None
    attn_implementation: str | None = None
    max_new_tokens: int = _DEFAULT_MAX_NEW_TOKENS
    processor_kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: ModelConfig) -> LocalOptions:
        """Options from top-level config fields, then ``params``, then ``local_options``.

        Example:
            >>> from vlgate.config import ModelConfig
            >>> cfg = ModelConfig(model="local/x", params={"device": "cpu"})
            >>> LocalOptions.from_config(cfg).device
            'cpu'
        """
        names = _OPTION_NAMES
        raw: dict[str, Any] = {}
        for name in names:
            value = getattr(config, name, None)
            if value is not None:
                raw[name] = value
        raw.update({k: v for k, v in config.params.items() if k in names})
        extra = getattr(config, "local_options", None) or {}
        unknown = sorted(set(extra) - names)
        if unknown:
            raise errors.ConfigError(
                f"unknown local option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        raw.update(extra)
        opts = cls(**raw)
        opts._check()
        return opts

    def _check(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise errors.ConfigError("max_new_tokens must be a positive integer")
        if not isinstance(self.processor_kwargs, dict):
            raise errors.ConfigError("processor_kwargs must be a dict")
        if not isinstance(self.dtype, str):
            raise errors.ConfigError("dtype must be a string such as 'bfloat16' or 'auto'")


_OPTION_NAMES = frozenset(LocalOptions.__dataclass_fields__)
# Load-time options that arrive through ``params`` are consumed here, not "dropped".
_LOAD_ONLY = _OPTION_NAMES - {"max_new_tokens"}


def _require_installed() -> None:
    for name in ("torch", "transformers"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ValueError:  # a module whose __spec__ is unset: treat as missing
            found = False
        if not found:
            raise ImportError(f"{INSTALL_HINT} ({name} is missing)")


@lru_cache(maxsize=1)
def _libs() -> SimpleNamespace:
    """Import torch and transformers once, and build the small classes that subclass them."""
    try:
        torch = importlib.import_module("torch")
        transformers = importlib.import_module("transformers")
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc

    stopping_base: Any = transformers.StoppingCriteria
    streamer_base: Any = importlib.import_module("transformers.generation.streamers").BaseStreamer

    class Deadline(stopping_base):  # type: ignore[misc]
        """Stops generation when the caller went away or the time is up."""

        def __init__(self, cancel: threading.Event, deadline: float) -> None:
            self.cancel = cancel
            self.deadline = deadline
            self.expired = False

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            self.expired = time.monotonic() > self.deadline
            stop = self.expired or self.cancel.is_set()
            return torch.full(
                (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
            )

    class DeltaStreamer(streamer_base):  # type: ignore[misc]
        """Hands the new text to a callback after every token.

        transformers' ``TextStreamer`` waits for whole words (a space or a newline); a robot
        wants every token as soon as it exists. Text ending in an incomplete UTF-8 sequence
        (U+FFFD) waits for the next token.
        """

        def __init__(self, tokenizer: Any, callback: Callable[[str], None]) -> None:
            self.tokenizer = tokenizer
            self.callback = callback
            self.ids: list[int] = []
            self.sent = 0
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate() first pushes the prompt
                self.prompt_seen = True
                return
            self.ids.extend(int(i) for i in value.reshape(-1).tolist())
            self._emit(final=False)

        def end(self) -> None:
            self._emit(final=True)

        def _emit(self, *, final: bool) -> None:
            text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
            if (final or not text.endswith("\ufffd")) and len(text) > self.sent:
                self.callback(text[self.sent :])
                self.sent = len(text)

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return SimpleNamespace(
        torch=torch,
        transformers=transformers,
        Deadline=Deadline,
        DeltaStreamer=DeltaStreamer,
        # ``torch_dtype=`` was renamed ``dtype=`` in transformers 4.56.
        dtype_kwarg="dtype" if (major, minor) >= (4, 56) else "torch_dtype",
    )


def _local_dir(model_id: str) -> Path | None:
    """The directory ``model_id`` names, or ``None`` for a hub id like ``Qwen/Qwen2.5-VL-3B``.

    Raises ConfigError when ``model_id`` is clearly a path (absolute, ``./``, ``~``, or more than
    one ``/``) that does not exist: a hub id is always ``owner/name``.
    """
    path = Path(model_id).expanduser()
    if path.is_dir():
        return path
    looks_like_path = (
        path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") > 1
    )
    if looks_like_path or path.exists():
        raise errors.ConfigError(f"local model directory {model_id!r} does not exist")
    return None


def _check_cached(model_id: str, revision: str | None) -> None:
    """Raise ConfigError at once when a hub id has no weights in the local Hugging Face cache.

    Loading never downloads: a missing model would otherwise retry the hub for minutes.
    """
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # an invalid repo id; from_pretrained reports it on load
        return
    if not isinstance(found, str):
        rev = f" --revision {revision}" if revision else ""
        raise errors.ConfigError(
            f"local model {model_id!r} is not in the Hugging Face cache and vlgate never "
            f"downloads at run time; fetch it first: hf download {model_id}{rev} "
            "(or pass local/<directory>)"
        )


@dataclass
class _Loaded:
    processor: Any
    tokenizer: Any
    model: Any
    device: str
    image_token_ids: tuple[int, ...]


class _StopFilter:
    """Cuts a text stream at the first stop string, holding back a possible partial match."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.buffer += text
        cut = _first_stop(self.buffer, self.stops)
        if cut is not None:
            self.stopped = True
            out, self.buffer = self.buffer[:cut], ""
            return out
        keep = min(self.hold, len(self.buffer))
        out = self.buffer[: len(self.buffer) - keep]
        self.buffer = self.buffer[len(self.buffer) - keep :]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    stops = tuple(s for s in value if isinstance(s, str) and s)
    if len(stops) != len(list(value)):
        raise errors.ConfigError("stop must be a string or a list of non-empty strings")
    return stops


def _chat_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The transformers multimodal chat format, images decoded to PIL from the bytes sent."""
    out: list[dict[str, Any]] = []
    for msg in request.messages:
        content: list[dict[str, Any]] = []
        for part in msg.parts:
            if isinstance(part, str):
                content.append({"type": "text", "text": part})
            else:
                content.append({"type": "image", "image": _pil(part)})
        out.append({"role": msg.role, "content": content})
    return out


def _pil(image: EncodedImage) -> Any:
    pil = Image.load(image.data).to_pil()
    return pil if pil.mode == "RGB" else pil.convert("RGB")


class LocalProvider(Provider):
    """A transformers image-text-to-text model run in this process (``local/<id-or-path>``)."""

    def __init__(
        self, route: Route, config: ModelConfig, api_key: str | None, api_base: str | None
    ) -> None:
        _require_installed()
        super().__init__(route, config, api_key, api_base)
        self.options = LocalOptions.from_config(config)
        self.model_id = route.model
        self._dir = _local_dir(self.model_id)
        if self._dir is None:
            _check_cached(self.model_id, self.options.revision)
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()
        # A GPU model is not reentrant: one generation at a time, across every event loop.
        self._generate_lock = threading.Lock()
        self._gates = PerLoop(asyncio.Lock)

    def __repr__(self) -> str:
        return f"LocalProvider(model={self.model_id!r}, device={self.options.device!r})"

    # --- loading ------------------------------------------------------------------------------

    def _error(self, message: str) -> errors.ProviderError:
        return errors.ProviderError(message, provider="local", model=self.model_id)

    def load(self) -> _Loaded:
        """Load the processor and the model (once; later calls return the loaded pair).

        Blocking: async code calls it through ``asyncio.to_thread``.
        """
        with self._load_lock:
            if self._loaded is None:
                self._loaded = self._load_uncached()
            return self._loaded

    def _load_uncached(self) -> _Loaded:
        libs = _libs()
        torch, tf = libs.torch, libs.transformers
        opts = self.options
        source = str(self._dir) if self._dir is not None else self.model_id
        common: dict[str, Any] = {"trust_remote_code": opts.trust_remote_code}
        if opts.revision is not None:
            common["revision"] = opts.revision
        # Never ask the hub at run time (what HF_HUB_OFFLINE=1 does, per call): a directory is
        # read as it is, a hub id from the local cache create() found it in.
        common["local_files_only"] = True
        started = time.perf_counter()
        try:
            processor = tf.AutoProcessor.from_pretrained(source, **common, **opts.processor_kwargs)
        except Exception as exc:  # from_pretrained fails in many ways on a bad checkpoint
            raise errors.ConfigError(
                f"could not load the processor of local model {self.model_id!r}: "
                f"{type(exc).__name__}: {exc}{_missing_torchvision(exc)}"
            ) from None
        tokenizer = getattr(processor, "tokenizer", processor)
        if not (
            getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
        ):
            raise errors.ConfigError(
                f"local model {self.model_id!r} has no chat template; vlgate needs an "
                "instruction-tuned (chat) checkpoint"
            )
        device = opts.device or _best_device(torch)
        kwargs: dict[str, Any] = dict(common)
        kwargs[libs.dtype_kwarg] = opts.dtype if opts.dtype == "auto" else _dtype(torch, opts.dtype)
        if opts.attn_implementation is not None:
            kwargs["attn_implementation"] = opts.attn_implementation
        if opts.device_map is not None:
            kwargs["device_map"] = opts.device_map
        model = self._load_model(tf, source, kwargs)
        try:
            if opts.device_map is None:
                model = model.to(device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise errors.ConfigError(
                f"could not move local model {self.model_id!r} to {device!r}: {exc}"
            ) from None
        model.eval()
        log.debug(
            "local model %s loaded on %s (%s) in %.1fs",
            self.model_id,
            getattr(model, "device", device),
            getattr(model, "dtype", "?"),
            time.perf_counter() - started,
        )
        return _Loaded(
            processor=processor,
            tokenizer=tokenizer,
            model=model,
            device=str(getattr(model, "device", device)),
            image_token_ids=_image_token_ids(processor, model),
        )

    def _load_model(self, tf: Any, source: str, kwargs: dict[str, Any]) -> Any:
        problems: list[str] = []
        for name in _AUTO_MODEL_CLASSES:
            auto = getattr(tf, name, None)
            if auto is None:
                continue
            try:
                return auto.from_pretrained(source, **kwargs)
            except ValueError as exc:
                # Usually "Unrecognized configuration class": this head does not fit, try the next.
                problems.append(f"{name}: {exc}")
            except Exception as exc:  # a broken checkpoint, a missing remote-code dependency...
                problems.append(f"{name}: {type(exc).__name__}: {exc}")
                break
        raise errors.ConfigError(
            f"could not load local model {self.model_id!r} as an image-text-to-text model; "
            + "; ".join(problems)
        ) from None

    # --- generation ---------------------------------------------------------------------------

    def _gate(self) -> asyncio.Lock:
        """Per-event-loop lock so queued requests wait here instead of holding worker threads."""
        return self._gates.get()

    def _generation_kwargs(
        self, params: dict[str, Any], loaded: _Loaded
    ) -> tuple[dict[str, Any], tuple[str, ...], int | None]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.options.max_new_tokens}
        seed = params.pop("seed", None)
        stops = _stops(params.pop("stop", None))
        temperature = params.pop("temperature", None)
        # The most specific length name wins, whatever the order the caller wrote them in.
        for name in _LENGTH_NAMES:
            if params.get(name) is not None:
                kwargs["max_new_tokens"] = params[name]
        for key, value in params.items():
            if key not in _LENGTH_NAMES:
                kwargs[key] = value
        if not isinstance(kwargs["max_new_tokens"], int) or kwargs["max_new_tokens"] < 1:
            raise errors.ConfigError("max_tokens must be a positive integer")
        if temperature is not None:
            if not isinstance(temperature, int | float) or temperature < 0:
                raise errors.ConfigError("temperature must be a number >= 0")
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=float(temperature))
            else:
                kwargs["do_sample"] = False
                for key in ("top_p", "top_k", "min_p"):
                    kwargs.pop(key, None)
        if stops:
            kwargs.update(stop_strings=list(stops), tokenizer=loaded.tokenizer)
        return kwargs, stops, seed

    def _generate(
        self,
        request: ChatRequest,
        cancel: threading.Event,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Blocking: load once, build the inputs, generate under the lock, decode the new tokens."""
        loaded = self.load()
        libs = _libs()
        torch = libs.torch
        params = {k: v for k, v in request.params.items() if k not in _LOAD_ONLY}
        params, dropped = split_params(params, _GEN_PARAMS, "local")
        kwargs, stops, seed = self._generation_kwargs(params, loaded)
        messages = _chat_messages(request)
        with self._generate_lock:
            if cancel.is_set():
                raise errors.ProviderError("cancelled", provider="local", model=self.model_id)
            try:
                inputs = loaded.processor.apply_chat_template(
                    messages,
                    add_generation_prompt=True,
                    tokenize=True,
                    return_dict=True,
                    return_tensors="pt",
                )
            except Exception as exc:  # template errors, image errors, processor quirks
                raise self._error(
                    f"the processor could not prepare the request: {type(exc).__name__}: {exc}"
                ) from None
            inputs = _to_device(inputs, loaded.model)
            input_ids = inputs["input_ids"]
            n_in = int(input_ids.shape[1])
            deadline = libs.Deadline(cancel, time.monotonic() + request.timeout)
            kwargs["stopping_criteria"] = libs.transformers.StoppingCriteriaList([deadline])
            if on_text is not None:
                kwargs["streamer"] = libs.DeltaStreamer(loaded.tokenizer, on_text)
            if seed is not None:
                torch.manual_seed(int(seed))
            try:
                with torch.inference_mode():
                    output = loaded.model.generate(**inputs, **kwargs)
            except Exception as exc:
                raise self._generation_error(exc, torch) from None
        if deadline.expired:
            raise errors.TimeoutError(
                f"the local model did not finish within {request.timeout}s",
                provider="local",
                model=self.model_id,
            )
        new = output[0, n_in:]
        gen_config = loaded.model.generation_config
        pad = getattr(gen_config, "pad_token_id", None)
        n_out = int(new.shape[0])
        while n_out and pad is not None and int(new[n_out - 1]) == pad:
            n_out -= 1
        text = loaded.tokenizer.decode(new[:n_out], skip_special_tokens=True)
        cut = _first_stop(text, stops)
        ended = n_out > 0 and int(new[n_out - 1]) in _ids(getattr(gen_config, "eos_token_id", None))
        finish = "length" if n_out >= kwargs["max_new_tokens"] and not ended else "stop"
        if cut is not None:
            text, finish = text[:cut], "stop"
        if not text.strip():
            # Greedy decoding would give the same empty answer again; sampling may not.
            raise errors.ResponseError(
                "the local model returned an empty answer",
                raw=text,
                retryable=bool(kwargs.get("do_sample")),
            )
        image_tokens = sum(int((input_ids == i).sum()) for i in loaded.image_token_ids)
        usage = Usage(
            input_tokens=n_in,
            output_tokens=n_out,
            image_tokens=image_tokens if loaded.image_token_ids else None,
            cost=0.0,
            requests=1,
        )
        return Completion(
            text=text,
            usage=usage,
            model=self.model_id,
            finish_reason=finish,
            dropped_params=dropped,
        )

    def _generation_error(self, exc: Exception, torch: Any) -> errors.VlgateError:
        oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", ())
        if isinstance(exc, oom) or "out of memory" in str(exc).lower():
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return self._error(
                f"out of memory running local model {self.model_id!r}: lower max_tokens, send "
                "smaller images (auto_resize=...), or load with dtype='bfloat16'"
            )
        if isinstance(exc, errors.VlgateError):
            return exc
        return self._error(f"local generation failed: {type(exc).__name__}: {exc}")

    async def warmup(self) -> None:
        """Load the model now rather than on the first request (loading can take minutes).

        Example:
            >>> await model._primary.provider.warmup()  # doctest: +SKIP
        """
        async with self._gate():
            await asyncio.to_thread(self.load)

    async def complete(self, request: ChatRequest) -> Completion:
        async with self._gate():
            await asyncio.to_thread(self.load)
            cancel = threading.Event()
            try:
                return await asyncio.to_thread(self._generate, request, cancel)
            except asyncio.CancelledError:
                cancel.set()  # the worker stops at its next token and frees the model
                raise

    async def stream(self, request: ChatRequest) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def push(text: str | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def run(cancel: threading.Event) -> Completion:
            try:
                return self._generate(request, cancel, on_text=push)
            finally:
                push(None)

        stops = _stops(request.params.get("stop"))
        cut = _StopFilter(stops)
        async with self._gate():
            await asyncio.to_thread(self.load)
            cancel = threading.Event()
            worker = asyncio.ensure_future(asyncio.to_thread(run, cancel))
            try:
                while (delta := await queue.get()) is not None:
                    out = cut.feed(delta)
                    if out:
                        yield out
                    if cut.stopped:
                        break
                await worker  # raises the worker's error, if any
                tail = cut.flush()
                if tail:
                    yield tail
            finally:
                if not worker.done():
                    cancel.set()
                    await asyncio.wait([worker])
                if worker.done() and not worker.cancelled():
                    worker.exception()  # retrieved: a late error must not be logged as lost

    async def aclose(self) -> None:
        self._gates.pop()


def _missing_torchvision(exc: Exception) -> str:
    """A hint when a processor failed for want of torchvision.

    In transformers 5 the Qwen-VL processors (and others with a video processor, or Pixtral's)
    need torchvision; without it loading fails with an unhelpful message about video processors.
    """
    text = str(exc).lower()
    related = "video" in text or "torchvision" in text or isinstance(exc, ImportError)
    if related and importlib.util.find_spec("torchvision") is None:
        return " (this processor needs torchvision: pip install torchvision, matching your torch)"
    return ""


def _best_device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _dtype(torch: Any, name: str) -> Any:
    value = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise errors.ConfigError(f"unknown dtype {name!r}; use 'auto', 'bfloat16', 'float16' ...")
    return value


def _ids(value: Any) -> frozenset[int]:
    """Token ids from a config value that may be an int, a list of ints or ``None``."""
    if isinstance(value, int):
        return frozenset({value})
    if isinstance(value, list | tuple):
        return frozenset(int(v) for v in value if isinstance(v, int))
    return frozenset()


def _to_device(inputs: Any, model: Any) -> Any:
    """Move the processor's tensors to the model; pixel values also take the model's dtype."""
    try:
        return inputs.to(model.device, dtype=model.dtype)
    except TypeError:  # a tokenizer's BatchEncoding moves devices only
        return inputs.to(model.device)


def _image_token_ids(processor: Any, model: Any) -> tuple[int, ...]:
    """The placeholder token ids that stand for image patches in this model's input."""
    ids: set[int] = set()
    for owner, name in (
        (processor, "image_token_id"),
        (model.config, "image_token_id"),
        (model.config, "image_token_index"),
    ):
        value = getattr(owner, name, None)
        if isinstance(value, int) and value >= 0:
            ids.add(value)
    return tuple(sorted(ids))
