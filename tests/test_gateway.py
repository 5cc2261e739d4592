"""The fleet gateway: LiteLLM Proxy config from vlgate model strings, and aliases on the wire.

The proxy tests start a real LiteLLM Proxy process on loopback in front of the emulator. It
lives in its own venv (``.venv-proxy``, from ``requirements-proxy.lock``, made by
``scripts/test``) because the proxy pins versions the rest of the suite does not share.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import vlgate
from vlgate.cli import app
from vlgate.gateway import Alias, alias_info, proxy_config, to_yaml
from vlgate.sizing import provider_size
from vlgate.testing import Emulator
from vlgate.testing.proxy import litellm_proxy
from vlgate.testing.scenes import make_scene

ROOT = Path(__file__).resolve().parents[1]
PROXY_BIN = Path(os.environ.get("VLGATE_LITELLM_PROXY", ROOT / ".venv-proxy" / "bin" / "litellm"))
MASTER = "sk-fleet-master-0123"
EMU_KEY = "emu-key"
# Starting the proxy (a heavy import) takes ~10 s on an idle machine, minutes on a loaded one.
pytestmark = pytest.mark.timeout(420)


# --- config (pure) ----------------------------------------------------------------------------


def test_config_maps_each_provider_and_never_writes_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-real-secret")
    cfg = proxy_config(
        [
            Alias("vision", "anthropic/claude-sonnet-4-6", rpm=100, fallbacks=("backup",)),
            Alias("backup", "openai/gpt-4o", tpm=10_000),
            Alias("qwen", "qwen/qwen-vl-max"),
            Alias("gpu", "vllm/Qwen/Qwen2.5-VL-7B-Instruct", api_base="http://gpu:8000/v1"),
            Alias("flash", "gemini/gemini-2.5-flash"),
            Alias("bedrock", "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0"),
        ]
    )
    text = to_yaml(cfg)
    assert "sk-ant-real-secret" not in text
    assert yaml.safe_load(text) == cfg  # the writer's YAML reads back as the same config
    by_name = {m["model_name"]: m for m in cfg["model_list"]}
    assert by_name["vision"]["litellm_params"] == {
        "model": "anthropic/claude-sonnet-4-6",
        "api_key": "os.environ/ANTHROPIC_API_KEY",
        "rpm": 100,
    }
    assert by_name["qwen"]["litellm_params"]["model"] == "dashscope/qwen-vl-max"
    assert by_name["gpu"]["litellm_params"] == {
        "model": "hosted_vllm/Qwen/Qwen2.5-VL-7B-Instruct",
        "api_base": "http://gpu:8000/v1",
    }
    assert by_name["flash"]["litellm_params"]["api_key"] == "os.environ/GEMINI_API_KEY"
    assert by_name["bedrock"]["litellm_params"]["model"].startswith("bedrock/")
    assert {k: by_name[k]["model_info"]["vlgate_family"] for k in by_name} == {
        "vision": "claude",
        "backup": "gpt",
        "qwen": "qwen2.5-vl",
        "gpu": "qwen2.5-vl",
        "flash": "gemini",
        "bedrock": "claude",
    }
    assert by_name["vision"]["model_info"]["vlgate_service"] == "anthropic"
    assert cfg["router_settings"] == {
        "num_retries": 0,  # the robots' vlgate retries, once
        "fallbacks": [{"vision": ["backup"]}],
        "enable_pre_call_checks": True,  # rpm/tpm are enforced, not only weighed
        "routing_strategy": "usage-based-routing-v2",
    }
    assert cfg["general_settings"] == {"master_key": "os.environ/LITELLM_MASTER_KEY"}


@pytest.mark.parametrize(
    ("aliases", "match"),
    [
        ([], "at least one alias"),
        ([Alias("a", "openai/gpt-4o"), Alias("a", "openai/gpt-4o-mini")], "duplicate"),
        ([Alias("a", "openai/gpt-4o", fallbacks=("nope",))], "unknown nope"),
        ([Alias("a", "local/some/model")], "cannot serve local"),
        ([Alias("a", "nosuch/model")], "unknown provider prefix"),
    ],
)
def test_config_refuses_what_the_proxy_cannot_serve(aliases: list[Alias], match: str) -> None:
    with pytest.raises(vlgate.ConfigError, match=match):
        proxy_config(aliases)


def test_yaml_strings_cannot_change_the_structure() -> None:
    nasty = {"a": "x\n- evil: 1", "b: c": ["#not a comment", "key: value"], "n": None}
    assert yaml.safe_load(to_yaml(nasty)) == nasty


def test_cli_gateway_init_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "config.yaml"
    result = CliRunner().invoke(
        app,
        [
            "gateway",
            "init",
            "-a",
            "vision=anthropic/claude-sonnet-4-6,rpm=100,fallback=b",
            "-a",
            "b=openai/gpt-4o",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(out.read_text())
    assert [m["model_name"] for m in cfg["model_list"]] == ["vision", "b"]
    bad = CliRunner().invoke(app, ["gateway", "init", "-a", "vision"])
    assert bad.exit_code == 2 and "NAME=MODEL" in bad.output


def test_alias_needs_an_endpoint() -> None:
    with pytest.raises(vlgate.ConfigError, match="LITELLM_PROXY_API_BASE"):
        vlgate.create("litellm_proxy/vision", api_key="k")


def test_family_and_service_options_skip_the_lookup() -> None:
    # Nothing listens on this port: no lookup may happen when both are given.
    model = vlgate.create(
        "litellm_proxy/vision",
        api_key="k",
        api_base="http://127.0.0.1:9/v1",
        family="claude",
        service="anthropic",
    )
    assert (model.route.family.name, model.route.service.name) == ("claude", "anthropic")
    with pytest.raises(vlgate.ConnectionError, match=r"family=\.\.\. and service="):
        vlgate.create("litellm_proxy/vision", api_key="k", api_base="http://127.0.0.1:9/v1")


# --- a real LiteLLM Proxy in front of the emulator --------------------------------------------


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Emulator]]:
    if not PROXY_BIN.exists():
        pytest.skip(
            f"no LiteLLM Proxy at {PROXY_BIN}: scripts/test installs requirements-proxy.lock "
            "into .venv-proxy (set VLGATE_LITELLM_PROXY to another `litellm` executable)"
        )
    tmp = tmp_path_factory.mktemp("proxy")
    with Emulator(api_key=EMU_KEY) as emu, contextlib.ExitStack() as stack:
        cfg = proxy_config(
            [
                Alias("robot-gpt", "openai/gpt-4o", api_base=emu.url + "/v1", key_env="EMU_KEY"),
                Alias(
                    "robot-claude",
                    "anthropic/claude-sonnet-4-6",
                    api_base=emu.url,
                    key_env="EMU_KEY",
                ),
                Alias(
                    "robot-limited",
                    "openai/gpt-4o-mini",
                    api_base=emu.url + "/v1",
                    key_env="EMU_KEY",
                    rpm=1,
                ),
            ]
        )
        try:
            base, _ = stack.enter_context(
                litellm_proxy(
                    PROXY_BIN,
                    cfg,
                    tmp,
                    env={"EMU_KEY": EMU_KEY},
                    master_key=MASTER,
                    start_timeout=360,
                )
            )
        except RuntimeError as exc:
            pytest.fail(str(exc))
        yield base, emu


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.parametrize(
    ("alias", "family", "service"),
    [
        ("robot-gpt", "gpt", "openai"),
        ("robot-claude", "claude", "anthropic"),
    ],
)
def test_alias_learns_its_family_and_boxes_match_ground_truth(
    proxy: tuple[str, Emulator], alias: str, family: str, service: str
) -> None:
    base, emu = proxy
    model = vlgate.create(f"litellm_proxy/{alias}", api_key=MASTER, api_base=base + "/v1")
    assert (model.route.family.name, model.route.service.name) == (family, service)
    scene = make_scene(11, size=(1600, 1200), n_shapes=3)
    emu.clear()
    dets = model.detect(scene.to_jpeg_bytes(), "shapes")
    assert len(emu.requests) == 1
    sent = emu.requests[0].images[0]
    # Through the proxy the image still arrives as what it is, at the real model's pre-resize.
    assert sent.declared_mime == sent.actual_mime == "image/jpeg"
    assert sent.size == provider_size(model.route.family.resize, (1600, 1200))
    assert len(dets) >= 2
    for d in dets:
        shape = next(s for s in scene.shapes if s.label == d.label)
        assert _iou(shape.box, d.xyxy) > 0.9, (d, shape)


def test_proxy_rate_limit_is_retried_and_typed(proxy: tuple[str, Emulator]) -> None:
    base, _ = proxy
    model = vlgate.create(
        "litellm_proxy/robot-limited",
        api_key=MASTER,
        api_base=base + "/v1",
        family="gpt",
        service="openai",
        max_retries=1,
        backoff_base=0.05,
        backoff_max=0.2,
    )
    png = make_scene(3, size=(320, 240)).to_png_bytes()
    # rpm=1 at the gateway: within a few requests the proxy answers 429 (it counts usage
    # asynchronously, so the very next request may still pass).
    limited = None
    for _ in range(6):
        try:
            model.query(png, "How many shapes?")
        except vlgate.RateLimitError as exc:
            limited = exc
            break
    assert limited is not None, "the proxy never rate limited"
    assert limited.attempts == 2  # the proxy's 429 was retried once, then reported
    assert limited.status == 429


def test_wrong_key_is_an_auth_error(proxy: tuple[str, Emulator]) -> None:
    base, emu = proxy
    with pytest.raises(vlgate.AuthError):  # asking the proxy what the alias is (not cached yet)
        vlgate.create("litellm_proxy/robot-limited", api_key="sk-wrong", api_base=base + "/v1")
    model = vlgate.create(
        "litellm_proxy/robot-gpt",
        api_key="sk-wrong",
        api_base=base + "/v1",
        family="gpt",
        service="openai",
    )
    emu.clear()
    with pytest.raises(vlgate.AuthError) as info:
        model.query(make_scene(4, size=(320, 240)).to_png_bytes(), "Hi")
    assert info.value.attempts == 1 and not emu.requests  # refused at the gateway
    assert "sk-wrong" not in str(info.value)


def test_alias_info_is_asked_once_per_process(proxy: tuple[str, Emulator]) -> None:
    base, _ = proxy
    assert alias_info(base, "robot-gpt", MASTER) == ("gpt", "openai")
    with pytest.raises(vlgate.ConfigError, match="serves no alias 'nope'"):
        alias_info(base, "nope", MASTER)


def test_proxy_lock_pins_the_same_litellm_as_the_dev_lock() -> None:
    def pin(lock: str) -> str:
        text = (ROOT / lock).read_text()
        return next(ln.split()[0] for ln in text.splitlines() if ln.startswith("litellm=="))

    assert pin("requirements-proxy.lock") == pin("requirements-dev.lock")
    version = pin("requirements-proxy.lock").partition("==")[2]
    assert f"litellm[proxy]=={version}" in (ROOT / "requirements-proxy.in").read_text()
