"""vlgate's offline provider emulator, synthetic scenes and pytest fixtures.

Public API::

    from vlgate.testing import Emulator, RecordedRequest, RecordedImage
    from vlgate.testing.scenes import make_scene, Scene, Shape

    with Emulator(api_key="emu-key", latency=0.0, seed=0) as emu:
        emu.url            # http://127.0.0.1:PORT
        emu.openai_base    # emu.url + "/v1"         (OpenAI, vLLM, DashScope-style)
        emu.ollama_base    # emu.url + "/ollama/v1"  (Ollama's OpenAI-compatible API)
        emu.moondream_base # emu.url + "/moondream/v1" (Moondream's caption/query/detect/point)
        emu.requests       # list[RecordedRequest], a thread-safe copy
        emu.script("gpt-4o", ["429", "500", "ok"])
        emu.script("moondream", ["429", "ok"])   # Moondream calls name no model
        emu.set_faults(rate=0.3, kinds=["429", "503"], seed=1)
        emu.rate_limit("gpt-4o", rpm=60)
        emu.latency = 0.2

Modules: :mod:`.emulator` (server, public API, routes), :mod:`.handlers` (the request path:
auth, parsing, faults, answering), :mod:`.render` (response bodies and streams per protocol),
:mod:`.wire` (protocols), :mod:`.rules` (image limits),
:mod:`.faults` (outcome syntax), :mod:`.answers` (intent rules), :mod:`.families` (coordinate
conventions), :mod:`.vision` (shape finder), :mod:`.scenes` (test images),
:mod:`.pytest_plugin` (fixtures ``emulator``, ``emulator_session``); the Batch APIs:
:mod:`.batches` (OpenAI, ``emu.batches``), :mod:`.batches_native` (Anthropic Message Batches,
Gemini batch mode; ``native_batches(emu)``) and :mod:`.gemini_files` (Gemini Files API);
:mod:`.proxy` starts a real LiteLLM Proxy in front of it (the gateway tests and
``benchmarks/gateway.py``).

Importing this package is light: the server (aiohttp) loads on first use of ``Emulator``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .records import RecordedImage, RecordedRequest

if TYPE_CHECKING:
    from .emulator import Emulator, serve

__all__ = ["Emulator", "RecordedImage", "RecordedRequest", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Emulator", "serve"):
        from . import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module 'vlgate.testing' has no attribute {name!r}")
