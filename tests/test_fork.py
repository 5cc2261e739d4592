"""A forked child (multiprocessing's default start method on Linux, DataLoader workers, a
pre-forking server) uses vlgate as if fresh: the parent's worker threads, strip-encoding threads
and background loop do not exist there and must not be waited on."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_a_forked_child_queries_after_the_parent_did(emulator: Emulator) -> None:
    frame = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    model = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emulator.openai_base)
    assert model.query(frame, "describe")  # the parent's pools and loop now exist
    vlgate.Image.load(frame).encode()  # and the strip encoder's threads
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        code = 1
        try:
            signal.alarm(20)  # a hang becomes a failure, not a stuck suite
            again = vlgate.create("openai/gpt-4o", api_key=KEY, api_base=emulator.openai_base)
            answer = again.query(frame, "describe")
            reused = model.query(frame, "describe")  # the parent's model object works too
            os.write(write, f"{len(answer) > 0 and len(reused) > 0}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    got = os.read(read, 100)
    os.close(read)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert got == b"True"
    assert len(emulator.requests) == 3
    model.stop()
