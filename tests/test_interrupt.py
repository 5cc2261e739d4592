"""Issue 9 item 6: interrupting a sync call (Ctrl-C, or an exception raised into the caller's
thread) cancels its work on vlgate's background loop: no request is sent afterwards."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import png_bytes

KEY = "emu-key"
N = 120
GRACE = 1.0  # in-flight requests may still land this long after the interrupt
QUIET = 2.5  # then nothing may arrive for this long


def wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def assert_quiet_after_grace(emu: Emulator) -> int:
    time.sleep(GRACE)
    settled = len(emu.requests)
    time.sleep(QUIET)
    assert len(emu.requests) == settled, "requests kept arriving after the interrupt"
    return settled


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_in_sync_batch_stops_sending(tmp_path: Path) -> None:
    with Emulator(api_key=KEY, latency=0.3) as emu:
        code = textwrap.dedent(
            f"""
            import io, sys, time
            from PIL import Image
            import vlgate
            def png(i):
                buf = io.BytesIO(); Image.new("RGB", (40 + i, 30)).save(buf, "PNG")
                return buf.getvalue()
            model = vlgate.create("openai/gpt-4o", api_key={KEY!r},
                                  api_base={emu.openai_base!r}, max_concurrency=6)
            images = [png(i) for i in range({N})]
            print("ready", flush=True)
            try:
                model.query_batch(images, "Describe this image.")
                print("finished", flush=True)
            except KeyboardInterrupt:
                print("interrupted", flush=True)
            time.sleep({GRACE + QUIET + 1.0})  # the process lives on, as a REPL or robot would
            print("exiting", flush=True)
            """
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            wait_for(lambda: len(emu.requests) >= 6)
            proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline().strip() == "interrupted"
            settled = assert_quiet_after_grace(emu)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert out.strip() == "exiting", err
        assert settled < N // 2


def _raise_in_thread(thread: threading.Thread, exc: type[BaseException]) -> None:
    assert thread.ident is not None
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(exc)
    )
    assert done == 1


@pytest.mark.timeout(60)
def test_interrupting_the_callers_thread_cancels_the_batch() -> None:
    outcome: list[str] = []
    with Emulator(api_key=KEY, latency=0.3) as emu:
        model = vlgate.create(
            "openai/gpt-4o", api_key=KEY, api_base=emu.openai_base, max_concurrency=6
        )
        images = [png_bytes((40 + i, 30)) for i in range(N)]

        def run() -> None:
            try:
                model.query_batch(images, "Describe this image.")
                outcome.append("finished")
            except KeyboardInterrupt:
                outcome.append("interrupted")

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        wait_for(lambda: len(emu.requests) >= 6)
        _raise_in_thread(worker, KeyboardInterrupt)
        worker.join(timeout=10)
        assert not worker.is_alive() and outcome == ["interrupted"]
        settled = assert_quiet_after_grace(emu)
        assert settled < N // 2
        # The model still works afterwards: cancellation left nothing stuck.
        assert "image" in model.query(png_bytes(), "Describe this image.")
        model.stop()


def test_keyboard_interrupt_leaves_no_pending_task() -> None:
    # The signal-free core of the contract: a BaseException in the waiting thread cancels.
    from vlgate.runtime import loop

    started = threading.Event()
    cancelled = threading.Event()

    async def slow() -> None:
        import asyncio

        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def run() -> None:
        with contextlib.suppress(KeyboardInterrupt):
            loop.run_sync(slow())

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert started.wait(10)
    _raise_in_thread(worker, KeyboardInterrupt)
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert cancelled.wait(5)
