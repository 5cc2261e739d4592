"""The in-process ``local/`` provider, on a tiny random-weight VLM built by the tests themselves.

Nothing is downloaded: ``_tiny_vlm.build_tiny_vlm`` writes a LLaVA (Pixtral vision + Llama text)
checkpoint with a byte-level tokenizer to a temporary directory, and vlgate loads it with
``AutoProcessor`` / ``AutoModelForImageTextToText`` like any hub checkpoint. Random weights give
gibberish, so the tests assert what generation must guarantee: token counts, the image's token
grid, determinism, stop strings, and that different images change the answer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vlgate
from vlgate import ConfigError, ResponseError, VlModel
from vlgate.config import ModelConfig
from vlgate.errors import TimeoutError as VlTimeoutError
from vlgate.providers.local import LocalProvider
from vlgate.registry import resolve

from ._tiny_vlm import build_tiny_vlm, expected_image_tokens, force_short_answers

PROMPT = "What is this?"
BLACK, RED, BLUE = (0, 0, 0), (255, 0, 0), (0, 0, 255)
# <s> [INST] <image tokens> <prompt, one token per byte> [/INST]
TEMPLATE_TOKENS = 3


def solid(color: tuple[int, int, int], size: tuple[int, int] = (40, 24)) -> np.ndarray[Any, Any]:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = color
    return img


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = "needs the optional local lock (torch CPU build); see README Development"
    pytest.importorskip("torch", reason=f"torch is not installed: {why}")
    pytest.importorskip("transformers", reason=f"transformers is not installed: {why}")
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="module")
def model(tiny_dir: Path) -> VlModel:
    m = vlgate.create(f"local/{tiny_dir}", max_retries=0)
    yield m
    m.stop()


def ask(model: VlModel, image: Any = None, **kwargs: Any) -> vlgate.Answer:
    kwargs.setdefault("max_tokens", 5)
    kwargs.setdefault("temperature", 0)
    return model.query(solid(RED) if image is None else image, PROMPT, **kwargs)


def test_query_is_generated_from_the_image_and_the_prompt(model: VlModel, tiny_dir: Path) -> None:
    answer = ask(model)
    assert isinstance(answer, str) and answer
    n_image = expected_image_tokens(40, 24)
    assert n_image == 40
    assert answer.usage.image_tokens == n_image
    assert answer.usage.input_tokens == n_image + len(PROMPT.encode()) + TEMPLATE_TOKENS
    assert answer.usage.output_tokens == 5
    assert answer.finish_reason == "length"
    assert answer.usage.cost == 0.0
    assert answer.model == str(tiny_dir)
    assert model.route.provider.name == "local"


@pytest.mark.parametrize("size", [(8, 8), (24, 40), (100, 30), (12, 5)])
def test_image_token_grid_follows_the_image_size(model: VlModel, size: tuple[int, int]) -> None:
    answer = ask(model, solid(BLUE, size), max_tokens=1)
    assert answer.usage.image_tokens == expected_image_tokens(*size)
    assert answer.usage.input_tokens == (
        expected_image_tokens(*size) + len(PROMPT.encode()) + TEMPLATE_TOKENS
    )


def test_different_images_give_different_answers(model: VlModel) -> None:
    answers = [ask(model, solid(c)) for c in (BLACK, RED, BLUE)]
    assert len(set(answers)) == 3
    assert ask(model, solid(RED)) == answers[1]  # greedy decoding is deterministic


def test_seed_makes_sampling_repeatable(model: VlModel) -> None:
    first = ask(model, temperature=1.0, seed=7, max_tokens=8)
    again = ask(model, temperature=1.0, seed=7, max_tokens=8)
    other = ask(model, temperature=1.0, seed=8, max_tokens=8)
    assert first == again
    assert first != other
    assert first.usage.output_tokens == other.usage.output_tokens == 8


@pytest.mark.parametrize("n", [1, 3])
def test_max_tokens_caps_the_answer(model: VlModel, n: int) -> None:
    assert ask(model, max_tokens=n).usage.output_tokens == n
    newer = model.query(solid(RED), PROMPT, max_completion_tokens=n, max_tokens=n + 4)
    assert newer.usage.output_tokens == n


def test_options_from_params_set_defaults_and_are_not_dropped(tiny_dir: Path) -> None:
    params = {"max_new_tokens": 3, "device": "cpu", "dtype": "float32", "temperature": 0}
    with vlgate.create(f"local/{tiny_dir}", params=params) as m:
        answer = m.query(solid(RED), PROMPT, presence_penalty=0.5)
    assert answer.usage.output_tokens == 3
    assert answer.dropped_params == ("presence_penalty",)


def test_query_batch_answers_each_image_in_order(model: VlModel) -> None:
    images = [solid(BLACK), solid(RED, (8, 8)), solid(BLUE)]
    one_by_one = [ask(model, img) for img in images]
    batch = model.query_batch(images, PROMPT, max_tokens=5, temperature=0)
    assert batch == one_by_one
    assert [a.usage.image_tokens for a in batch] == [40, 4, 40]  # type: ignore[union-attr]


async def test_concurrent_async_queries_share_one_model(model: VlModel) -> None:
    expected = [ask(model, solid(c)) for c in (BLACK, RED, BLUE)]
    answers = await asyncio.gather(
        *(model.aquery(solid(c), PROMPT, max_tokens=5, temperature=0) for c in (BLACK, RED, BLUE))
    )
    assert answers == expected


def test_stream_yields_the_same_text_as_query(model: VlModel) -> None:
    full = ask(model, max_tokens=12)
    deltas = list(model.stream(solid(RED), PROMPT, max_tokens=12, temperature=0))
    assert deltas and all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas) == full


async def test_astream_on_the_caller_loop(model: VlModel) -> None:
    full = ask(model, solid(BLUE), max_tokens=6)
    deltas = [d async for d in model.astream(solid(BLUE), PROMPT, max_tokens=6, temperature=0)]
    assert "".join(deltas) == full


def test_stop_string_cuts_the_answer(model: VlModel) -> None:
    full = ask(model, max_tokens=12)
    # A two-character stop string from inside the answer, with text before its first occurrence.
    stop, expected = next(
        (full[i : i + 2], full[: full.index(full[i : i + 2])])
        for i in range(1, len(full) - 1)
        if full[: full.index(full[i : i + 2])].strip()
    )
    answer = ask(model, max_tokens=12, stop=[stop])
    assert answer == expected
    assert answer.finish_reason == "stop"
    streamed = "".join(model.stream(solid(RED), PROMPT, max_tokens=12, temperature=0, stop=stop))
    assert streamed == expected


def test_timeout_stops_generation(model: VlModel) -> None:
    with pytest.raises(VlTimeoutError, match="did not finish"):
        ask(model, max_tokens=50, timeout=1e-6)
    assert ask(model).usage.output_tokens == 5  # the model is free again


def test_empty_answer_is_a_response_error(tiny_dir: Path, tmp_path: Path) -> None:
    mute = tmp_path / "mute"
    shutil.copytree(tiny_dir, mute)
    force_short_answers(mute, 0)
    with vlgate.create(f"local/{mute}", max_retries=0) as m, pytest.raises(ResponseError):
        m.query(solid(RED), PROMPT, max_tokens=5)


@pytest.mark.filterwarnings("ignore:Unfeasible length constraints")  # the max_tokens=2 call
def test_end_of_turn_is_a_stop_not_the_length_limit(tiny_dir: Path, tmp_path: Path) -> None:
    terse = tmp_path / "terse"
    shutil.copytree(tiny_dir, terse)
    force_short_answers(terse, 3)
    with vlgate.create(f"local/{terse}", max_retries=0) as m:
        ended = m.query(solid(RED), PROMPT, max_tokens=4)  # 3 tokens + </s> = exactly 4
        cut = m.query(solid(RED), PROMPT, max_tokens=2)
    assert (ended, ended.usage.output_tokens, ended.finish_reason) == ("!!!", 4, "stop")
    assert (cut, cut.usage.output_tokens, cut.finish_reason) == ("!!", 2, "length")


def test_warmup_loads_once(tiny_dir: Path) -> None:
    cfg = ModelConfig(model=f"local/{tiny_dir}")
    provider = LocalProvider(resolve(cfg.model), cfg, None, None)
    asyncio.run(provider.warmup())
    assert provider.load() is provider.load()


def test_bad_temperature_is_a_config_error(model: VlModel) -> None:
    with pytest.raises(ConfigError, match="temperature"):
        ask(model, temperature="hot")


def test_missing_model_directory_is_a_config_error() -> None:
    # Without torch, create() names the missing extra first (test_missing_torch_names_the_extra).
    pytest.importorskip("torch", reason="torch is not installed: needs the optional local lock")
    with pytest.raises(ConfigError, match="/no/such/vlm"):
        vlgate.create("local//no/such/vlm")


def test_directory_without_a_model_is_a_config_error(tiny_dir: Path, tmp_path: Path) -> None:
    # `with model:` loads the weights up front (start() warms up), so the error comes from there.
    with pytest.raises(ConfigError) as err, vlgate.create(f"local/{tmp_path}", max_retries=0) as m:
        m.query(solid(RED), PROMPT)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"dtype": "float99"}, "dtype"),
        ({"max_new_tokens": 0}, "positive"),
        ({"device": "warp-drive"}, "warp-drive"),
    ],
)
def test_bad_options_are_config_errors(
    tiny_dir: Path, option: dict[str, Any], message: str
) -> None:
    # A bad dtype fails when the model loads, on the first query.
    with (
        pytest.raises(ConfigError, match=message),
        vlgate.create(f"local/{tiny_dir}", params=option, max_retries=0) as m,
    ):
        m.query(solid(RED), PROMPT)


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'vlgate\[local\]'"):
        vlgate.create(f"local/{tmp_path}")


def test_import_and_create_do_not_import_torch(tiny_dir: Path) -> None:
    code = (
        "import sys, vlgate\n"
        f"vlgate.create({f'local/{tiny_dir}'!r})\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_several_images_in_one_request(model: VlModel) -> None:
    # Same-size images: the tiny model's LLaVA processor counts tokens from the padded batch.
    images = [solid(RED), solid(BLUE), solid(BLACK)]
    answer = model.query_images(images, PROMPT, max_tokens=4, temperature=0)
    n_image = 3 * expected_image_tokens(40, 24)
    assert answer.usage.image_tokens == n_image
    assert answer.usage.input_tokens == n_image + len(PROMPT.encode()) + TEMPLATE_TOKENS
    assert answer.usage.output_tokens == 4
    all_black = model.query_images([solid(BLACK)] * 3, PROMPT, max_tokens=4, temperature=0)
    assert all_black != answer


def test_stream_yields_token_by_token(model: VlModel) -> None:
    deltas = list(model.stream(solid(RED), PROMPT, max_tokens=30, temperature=0))
    assert len(deltas) > 5  # not one chunk at the end
    assert "".join(deltas) == ask(model, max_tokens=30)


def test_closing_a_stream_early_stops_generation(model: VlModel) -> None:
    # 2000 tokens take seconds on CPU; closing after the first delta must stop the worker and
    # free the model at once (the next query waits for the model lock otherwise).
    stream = model.stream(solid(RED), PROMPT, max_tokens=2000, temperature=0)
    assert next(iter(stream))
    started = time.perf_counter()
    stream.close()  # type: ignore[attr-defined]
    assert ask(model).usage.output_tokens == 5
    assert time.perf_counter() - started < 1.5


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed"
)
def test_processor_needing_torchvision_says_so(tiny_dir: Path, tmp_path: Path) -> None:
    # Transformers 5's Qwen2-VL processor needs a torchvision video processor.
    qwen_like = tmp_path / "qwen-like"
    shutil.copytree(tiny_dir, qwen_like)
    config_path = qwen_like / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["processor_class"] = "Qwen2VLProcessor"
    config_path.write_text(json.dumps(config))
    with (
        pytest.raises(ConfigError, match="needs torchvision") as err,
        vlgate.create(f"local/{qwen_like}", max_retries=0) as m,
    ):
        m.query(solid(RED), PROMPT)
    assert str(qwen_like) in str(err.value)


def test_start_loads_the_weights_before_the_first_query(tiny_dir: Path) -> None:
    model = vlgate.create(f"local/{tiny_dir}")
    provider = model._primary.provider
    assert getattr(provider, "_loaded", None) is None
    model.start()
    assert getattr(provider, "_loaded", None) is not None
    model.stop()


def test_hub_id_without_cached_weights_is_a_config_error_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    started = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        vlgate.create("local/nobody/no-such-vlm")
    message = str(err.value)
    assert "nobody/no-such-vlm" in message and "hf download nobody/no-such-vlm" in message
    assert time.perf_counter() - started < 10  # generous: no hub retries, no network
