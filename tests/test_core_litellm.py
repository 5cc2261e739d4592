"""Anthropic and Gemini on the wire, both ways: natively (``anthropic/``, ``gemini/``) and through
the LiteLLM gateway (``litellm/anthropic/``, ``litellm/gemini/``). Every test here runs on both
routes, so the gateway stays as tested as the native providers.

The emulator validates like the real services: Anthropic rejects a declared media_type that does
not match the bytes, which is exactly the bug vlgate must never have.
"""

from __future__ import annotations

import base64
import importlib.util

import pytest

import vlgate
from vlgate.testing import Emulator
from vlgate.testing.scenes import make_scene

from .conftest import KEY, jpeg_bytes, png_bytes

CLAUDE = "anthropic/claude-sonnet-4-5"
GEMINI = "gemini/gemini-2.5-flash"


@pytest.fixture(
    params=["", pytest.param("litellm/", marks=pytest.mark.litellm)], ids=["native", "litellm"]
)
def via(request: pytest.FixtureRequest) -> str:
    """The route prefix: '' for the native providers, 'litellm/' to force the gateway."""
    return str(request.param)


def claude(emu: Emulator, via: str, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.url)
    kw.setdefault("backoff_base", 0.0)
    model = vlgate.create(via + CLAUDE, **kw)
    assert model.route.provider.name == ("litellm" if via else "anthropic")
    return model


def gemini(emu: Emulator, via: str, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("api_base", emu.url)
    kw.setdefault("backoff_base", 0.0)
    model = vlgate.create(via + GEMINI, **kw)
    assert model.route.provider.name == ("litellm" if via else "gemini")
    return model


@pytest.mark.parametrize("data", [png_bytes(), jpeg_bytes()], ids=["png", "jpeg"])
def test_anthropic_gets_key_model_kwargs_and_matching_media_type(
    emulator: Emulator, via: str, data: bytes
) -> None:
    answer = claude(emulator, via).query(data, "What colour?", temperature=0.3, max_tokens=64)
    assert answer
    [req] = emulator.requests
    assert req.protocol == "anthropic" and req.path == "/v1/messages"
    assert req.headers["x-api-key"] == KEY
    assert req.body["model"] == "claude-sonnet-4-5"
    assert req.body["temperature"] == 0.3 and req.body["max_tokens"] == 64
    [img] = req.images
    assert img.declared_mime == img.actual_mime
    assert img.data == data  # small upright files in an accepted format are sent untouched


def test_anthropic_mismatch_would_be_rejected(emulator: Emulator) -> None:
    """The emulator itself rejects what Anthropic rejects, so the test above can fail."""
    import httpx

    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": base64.b64encode(jpeg_bytes()).decode(),
                        },
                    },
                    {"type": "text", "text": "hi"},
                ],
            }
        ],
    }
    r = httpx.post(
        emulator.url + "/v1/messages",
        json=body,
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400
    assert "image/jpeg" in r.text


def test_anthropic_big_image_is_fitted_to_its_limits(emulator: Emulator, via: str) -> None:
    scene = make_scene(1, size=(4032, 3024))
    claude(emulator, via).query(scene.image, "describe")
    [img] = emulator.requests[0].images
    assert img.size is not None and max(img.size) <= 1568  # Claude's own resize, done first
    assert img.nbytes * 4 / 3 <= 5 * 1024 * 1024  # the 5 MB cap held against base64
    assert img.declared_mime == img.actual_mime


def test_anthropic_wrong_key_is_auth_error_without_retry(emulator: Emulator, via: str) -> None:
    secret = "sk-ant-wrong-0123456789abcdef"
    with pytest.raises(vlgate.AuthError) as info:
        claude(emulator, via, api_key=secret).query(png_bytes(), "hi")
    assert len(emulator.requests) == 1
    assert secret not in str(info.value)


def test_anthropic_missing_key_names_env_var(emulator: Emulator, via: str) -> None:
    with pytest.raises(vlgate.ConfigError, match="ANTHROPIC_API_KEY"):
        vlgate.create(via + CLAUDE, api_base=emulator.url)
    assert emulator.requests == []


def test_anthropic_key_from_env(
    emulator: Emulator, via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    vlgate.create(via + CLAUDE, api_base=emulator.url).query(png_bytes(), "hi")
    assert emulator.requests[0].headers["x-api-key"] == KEY


def test_anthropic_retries_overloaded_then_succeeds(emulator: Emulator, via: str) -> None:
    emulator.script("claude-sonnet-4-5", ["529", "429", "ok"])
    answer = claude(emulator, via, max_retries=3).query(png_bytes(), "hi")
    assert answer.attempts == 3
    assert [r.status for r in emulator.requests] == [529, 429, 200]


def test_anthropic_batch_one_request_per_image(emulator: Emulator, via: str) -> None:
    scenes = [make_scene(s, size=(300, 200)) for s in range(4)]
    answers = claude(emulator, via).query_batch([s.image for s in scenes], "How many shapes?")
    assert len(answers) == 4 and len(emulator.requests) == 4
    for scene, answer in zip(scenes, answers, strict=True):
        assert str(len(scene.shapes)) in answer


def test_gemini_gets_key_and_inline_image(emulator: Emulator, via: str) -> None:
    answer = gemini(emulator, via).query(jpeg_bytes(), "What colour?", temperature=0.5)
    assert answer
    [req] = emulator.requests
    assert req.protocol == "gemini"
    assert KEY in (req.headers.get("x-goog-api-key", ""), req.query.get("key"))
    assert "gemini-2.5-flash" in req.path
    [img] = req.images
    assert img.declared_mime == img.actual_mime == "image/jpeg"
    assert req.body["generationConfig"]["temperature"] == 0.5


def test_gemini_detect_maps_y_first_boxes_to_pixels(emulator: Emulator, via: str) -> None:
    scene = make_scene(7, size=(800, 600))
    emulator.noise = False  # a truncated last object is legitimately lost; see test_grounding
    dets = gemini(emulator, via).detect(scene.image, "shape")
    assert len(dets) == len(scene.shapes)
    truth = sorted(s.box for s in scene.shapes)
    got = sorted(d.xyxy for d in dets)
    for t, g in zip(truth, got, strict=True):
        assert all(abs(a - b) <= 8 for a, b in zip(t, g, strict=True)), (t, g)


@pytest.mark.litellm
def test_missing_litellm_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "litellm" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"pip install 'vlgate\[litellm\]'"):
        vlgate.create("litellm/" + CLAUDE, api_key=KEY)
    assert vlgate.create(CLAUDE, api_key=KEY).route.provider.name == "anthropic"  # no LiteLLM


def test_gemini_request_cap_is_shared_between_images(emulator: Emulator, via: str) -> None:
    """Four noisy 1500x1500 PNGs (~6.8 MB each) exceed Gemini's 20 MB inline request as they are;
    vlgate re-encodes each to fit its share, so the emulator (which enforces the cap) accepts."""
    import io

    import numpy as np
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    pngs = []
    for _ in range(4):
        buf = io.BytesIO()
        noise = rng.integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
        PILImage.fromarray(noise).save(buf, format="PNG", compress_level=1)
        pngs.append(buf.getvalue())
    assert sum(len(p) for p in pngs) * 4 / 3 > 20 * 1024 * 1024
    assert gemini(emulator, via).query_images(pngs, "compare these")
    [req] = emulator.requests
    assert req.status == 200
    assert sum(i.nbytes for i in req.images) * 4 / 3 <= 20 * 1024 * 1024
    assert all(i.declared_mime == i.actual_mime for i in req.images)


def test_gemini_bad_key_is_an_auth_error(emulator: Emulator, via: str) -> None:
    """Gemini answers a wrong key with 400 INVALID_ARGUMENT, not 401; vlgate calls it AuthError."""
    secret = "AIzaWrongKey0123456789abcdefghij"
    with pytest.raises(vlgate.AuthError) as info:
        gemini(emulator, via, api_key=secret).query(png_bytes(), "hi")
    assert info.value.status == 400  # what Gemini sent (LiteLLM's own exception says 401)
    assert len(emulator.requests) == 1
    assert secret not in str(info.value)


def test_opus_high_resolution_tier_is_sent_and_mapped_at_2576(emulator: Emulator, via: str) -> None:
    """Opus 4.7 sees up to 2576 px on the long edge: vlgate sends that, and boxes map back."""
    scene = make_scene(11, size=(4032, 3024))
    emulator.noise = False
    model = vlgate.create(
        via + "anthropic/claude-opus-4-7", api_key=KEY, api_base=emulator.url, backoff_base=0
    )
    dets = model.detect(scene.image, "shape")
    sent = emulator.requests[0].images[0].size
    assert sent is not None and 1568 < max(sent) <= 2576
    assert len(dets) == len(scene.shapes)
    for t, g in zip(sorted(s.box for s in scene.shapes), sorted(d.xyxy for d in dets), strict=True):
        assert all(abs(a - b) <= 12 for a, b in zip(t, g, strict=True)), (t, g)


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_key_never_in_logs_or_stderr_at_debug(
    model: str,
    via: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At DEBUG (vlgate, LiteLLM with LITELLM_LOG=DEBUG, httpx) the key shows up nowhere."""
    import logging

    secret = "AIzaSecretKey0123456789abcdefghijXYZ"
    monkeypatch.setenv("LITELLM_LOG", "DEBUG")
    caplog.set_level(logging.DEBUG)
    with Emulator(api_key=secret) as emu:
        answer = vlgate.create(via + model, api_key=secret, api_base=emu.url).query(
            png_bytes(), "hi"
        )
        assert answer and emu.requests[0].status == 200
    out, err = capfd.readouterr()
    assert caplog.records
    assert secret not in caplog.text and secret not in out and secret not in err
