"""Settings: flag > env > config file > default, and what is refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vlgate import ConfigError
from vlgate.cli.settings import (
    DEFAULTS,
    config_files,
    load_settings,
    model_options,
    setting_sources,
)


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_defaults_when_nothing_is_set() -> None:
    settings = load_settings(env={}, files=[])
    assert settings == DEFAULTS
    assert settings["model"] == "openai/gpt-4o-mini"
    assert setting_sources(env={}, files=[])["model"] == "default"


@pytest.mark.parametrize(
    ("flag", "env", "file", "expected", "source"),
    [
        pytest.param(None, None, None, 60.0, "default", id="default"),
        pytest.param(None, None, 30, 30.0, "file", id="file-over-default"),
        pytest.param(None, "20", 30, 20.0, "env", id="env-over-file"),
        pytest.param(5, "20", 30, 5.0, "flag", id="flag-over-env"),
        pytest.param(5, None, None, 5.0, "flag", id="flag-alone"),
    ],
)
def test_precedence(
    tmp_path: Path,
    flag: float | None,
    env: str | None,
    file: int | None,
    expected: float,
    source: str,
) -> None:
    files = []
    if file is not None:
        files = [(_write(tmp_path / "vlgate.toml", f"timeout = {file}\n"), None)]
    environ = {"VLGATE_TIMEOUT": env} if env is not None else {}
    settings = load_settings({"timeout": flag}, env=environ, files=files)
    assert settings["timeout"] == expected
    origin = setting_sources({"timeout": flag}, env=environ, files=files)["timeout"]
    assert origin == (str(tmp_path / "vlgate.toml") if source == "file" else source)


def test_discovery_order_cwd_over_pyproject_over_user(tmp_path: Path) -> None:
    user = _write(
        tmp_path / "xdg" / "vlgate" / "vlgate.toml", 'model = "openai/user"\ntimeout = 7\n'
    )
    _write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n[tool.vlgate]\nmodel = "openai/pyproject"\nmax_retries = 1\n',
    )
    _write(tmp_path / "vlgate.toml", '[vlgate]\nmodel = "openai/cwd"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    import os

    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = env["XDG_CONFIG_HOME"]
    try:
        found = config_files(tmp_path, env={})
        settings = load_settings(env={}, cwd=tmp_path)
    finally:
        if old is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = old
    assert [p for p, _ in found] == [user, tmp_path / "pyproject.toml", tmp_path / "vlgate.toml"]
    assert settings["model"] == "openai/cwd"
    assert settings["max_retries"] == 1
    assert settings["timeout"] == 7.0


def test_vlgate_config_env_names_one_file(tmp_path: Path) -> None:
    only = _write(tmp_path / "elsewhere.toml", 'model = "qwen/qwen-vl-max"\n')
    _write(tmp_path / "vlgate.toml", 'model = "openai/ignored"\n')
    env = {"VLGATE_CONFIG": str(only)}
    assert config_files(tmp_path, env=env) == [(only, None)]
    assert load_settings(env=env, cwd=tmp_path)["model"] == "qwen/qwen-vl-max"
    with pytest.raises(ConfigError, match="VLGATE_CONFIG"):
        config_files(tmp_path, env={"VLGATE_CONFIG": str(tmp_path / "missing.toml")})


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "vlgate.toml", "max_concurency = 4\n")
    with pytest.raises(ConfigError, match="unknown setting 'max_concurency'"):
        load_settings(env={}, files=[(path, None)])


@pytest.mark.parametrize(
    ("env", "match"),
    [
        pytest.param({"VLGATE_MAX_CONCURRENCY": "many"}, "max_concurrency", id="not-int"),
        pytest.param({"VLGATE_MAX_CONCURRENCY": "0"}, "at least 1", id="zero"),
        pytest.param({"VLGATE_TIMEOUT": "-1"}, "greater than 0", id="negative-timeout"),
        pytest.param({"VLGATE_MAX_RETRIES": "-2"}, "0 or more", id="negative-retries"),
    ],
)
def test_bad_env_values(env: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        load_settings(env=env, files=[])
    assert "$VLGATE_" in str(info.value)


def test_broken_toml_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "vlgate.toml", "model = \n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(env={}, files=[(path, None)])


def test_keys_never_come_from_vlgate_env() -> None:
    settings = load_settings(env={"VLGATE_API_KEY": "sk-should-not-be-read"}, files=[])
    assert settings["api_key"] is None


def test_key_from_file_warns_when_world_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-from-file-1234567890"
    loose = _write(tmp_path / "loose.toml", f'api_key = "{secret}"\n', mode=0o644)
    tight = _write(tmp_path / "tight.toml", f'api_key = "{secret}"\n', mode=0o600)
    with caplog.at_level(logging.WARNING, logger="vlgate"):
        assert load_settings(env={}, files=[(tight, None)])["api_key"] == secret
        assert not caplog.records
        load_settings(env={}, files=[(loose, None)])
    assert "readable by other users" in caplog.text
    assert secret not in caplog.text


def test_bad_key_value_is_not_echoed(tmp_path: Path) -> None:
    path = _write(tmp_path / "vlgate.toml", "api_key = 12345678\n")
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, files=[(path, None)])
    assert "12345678" not in str(info.value)


def test_model_options_drop_unset_and_feed_create(tmp_path: Path) -> None:
    import vlgate

    opts = model_options(
        load_settings(
            {"model": "vllm/Qwen2.5-VL-7B", "api_base": "http://127.0.0.1:9/v1"},
            env={"VLGATE_MAX_CONCURRENCY": "3"},
            files=[],
        )
    )
    assert "family" not in opts and "api_key" not in opts
    model = vlgate.create(**opts)
    assert model.config.max_concurrency == 3
    assert model.config.api_base == "http://127.0.0.1:9/v1"


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({"colour": "blue"}, env={}, files=[])


def test_defaults_and_bounds_come_from_model_config() -> None:
    """One set of defaults and validators: the CLI's settings are ModelConfig's fields."""
    from vlgate import ModelConfig

    for name, default in DEFAULTS.items():
        if name != "model":  # the library has no default model; the CLI does
            assert default == ModelConfig.model_fields[name].default, name
    # ModelConfig caps retries at 20 and concurrency at 1024: so does every settings source.
    with pytest.raises(ConfigError, match="at most 20"):
        load_settings(env={"VLGATE_MAX_RETRIES": "21"}, files=[])
    with pytest.raises(ConfigError, match="at most 1024"):
        load_settings({"max_concurrency": 5000}, env={}, files=[])
