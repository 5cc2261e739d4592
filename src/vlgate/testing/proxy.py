"""Run a real LiteLLM Proxy on loopback for tests and benchmarks (in front of the emulator).

The proxy is a separate program (``pip install 'litellm[proxy]'``, usually in its own venv, as
this project's ``.venv-proxy``); this module only starts it from a config written by
:func:`vlgate.gateway.proxy_config`, waits until it answers, and stops it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..gateway import to_yaml

__all__ = ["litellm_proxy"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def litellm_proxy(
    executable: str | Path,
    config: Mapping[str, Any],
    workdir: Path,
    *,
    env: Mapping[str, str],
    master_key: str,
    start_timeout: float = 300.0,
) -> Iterator[tuple[str, int]]:
    """Start ``executable --config …`` on a free loopback port; yield ``(base_url, pid)``.

    ``env`` adds to the environment (provider key variables are dropped from the inherited one,
    so only what the config names is used); LiteLLM's cost map stays local and its telemetry
    off. The proxy's output goes to ``workdir/proxy.log``; a proxy that exits or does not answer
    within ``start_timeout`` raises ``RuntimeError`` with the log's tail.

    Example:
        >>> with litellm_proxy(".venv-proxy/bin/litellm", cfg, tmp, env={"EMU_KEY": "k"},
        ...                    master_key="sk-m") as (base, pid):   # doctest: +SKIP
        ...     vlgate.create("litellm_proxy/robot", api_key="sk-m", api_base=base + "/v1")
    """
    (workdir / "config.yaml").write_text(to_yaml(dict(config)))
    port = _free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))},
        **env,
        "LITELLM_MASTER_KEY": master_key,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "NO_DOCS": "True",
    }
    cmd = [str(executable), "--config", str(workdir / "config.yaml"), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--num_workers", "1"]
    log_path = workdir / "proxy.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                urllib.request.urlopen(base + "/health/liveliness", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the LiteLLM Proxy did not start:\n{tail}") from None
                time.sleep(0.5)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
