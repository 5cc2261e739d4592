"""Live frame streams: latest frame only, steady rate, bounded in-flight, flat memory."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

import vlgate
from vlgate.testing import Emulator

from .conftest import KEY, SIZE_PROMPT, size_in


def make(emu: Emulator, **kw: object) -> vlgate.VlModel:
    kw.setdefault("api_key", KEY)
    kw.setdefault("backoff_base", 0.0)
    return vlgate.create("openai/generic-vlm", api_base=emu.openai_base, **kw)


def frame(width: int, height: int = 48) -> np.ndarray:
    arr = np.full((height, width, 3), 128, np.uint8)
    arr[10:30, 10:30] = (220, 30, 30)
    return arr


class Camera:
    """A 30 fps source whose frame i is (64 + i) px wide, so an answer names its frame."""

    def __init__(self, n: int | None, fps: float = 30.0, height: int = 48) -> None:
        self.n, self.fps, self.height = n, fps, height
        self.produced = 0
        self.stamps: dict[float, int] = {}
        self.live: dict[int, weakref.ref[np.ndarray]] = {}
        self.peak_live = 0

    def _forget(self, key: int) -> Callable[[object], None]:
        def forget(_ref: object) -> None:
            self.live.pop(key, None)

        return forget

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        i = 0
        while self.n is None or i < self.n:
            arr = frame(64 + i % 400, self.height)
            self.live[i] = weakref.ref(arr, self._forget(i))
            self.peak_live = max(self.peak_live, len(self.live))
            ts = time.time()
            self.stamps[ts] = 64 + i % 400
            self.produced += 1
            yield ts, arr
            del arr
            i += 1
            time.sleep(1 / self.fps)


def width_in(answer: str) -> int:
    """The width of the frame the emulator received, from its answer to ``SIZE_PROMPT``."""
    return size_in(answer)[0]


def test_watch_sends_the_latest_frame_at_the_rate(emulator: Emulator) -> None:
    model = make(emulator)
    model.query(frame(64), "warm up")  # open the client before the clock matters
    emulator.clear()
    emulator.latency = 0.15
    cam = Camera(60)
    watch = model.watch(cam, SIZE_PROMPT, hz=4)
    results = list(watch)
    stats = watch.stats
    assert stats.frames == 60 == cam.produced
    assert stats.peak_in_flight == 1
    assert len(results) == stats.sent == stats.answered == len(emulator.requests)
    assert 5 <= stats.sent <= 12
    assert stats.frames == stats.sent + stats.dropped
    stamps = [ts for ts, _ in results]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for ts, answer in results:
        assert isinstance(answer, str) and width_in(answer) == cam.stamps[ts]
    arrivals = [r.t_received for r in emulator.requests]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 4 Hz at most (starts are paced on the client; arrival times carry some jitter).
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) <= 4.2
    assert min(gaps) >= 0.1
    # Fresh: each request carried a frame taken moments before it left.
    for (ts, _), req in zip(results[:-1], emulator.requests, strict=False):
        assert req.t_received - ts < 0.2
    # The last frame is answered when the source ends.
    assert width_in(str(results[-1][1])) == 64 + 59


async def test_awatch_async_source_with_timestamps_and_parallel_requests(
    emulator: Emulator,
) -> None:
    emulator.latency = 0.3

    async def source() -> AsyncIterator[tuple[float, np.ndarray]]:
        for i in range(40):
            yield 1000.0 + i, frame(64 + i)
            await asyncio.sleep(1 / 30)

    model = make(emulator)
    watch = model.awatch(source(), SIZE_PROMPT, hz=20, max_in_flight=2)
    results = [item async for item in watch]
    assert watch.stats.peak_in_flight == 2
    assert all(1000.0 <= ts < 1040.0 for ts, _ in results)
    for ts, answer in results:
        assert width_in(str(answer)) == 64 + int(ts - 1000.0)
    stamps = [ts for ts, _ in results]
    assert stamps == sorted(stamps)
    await model.astop()


def test_plain_images_are_stamped_on_arrival(emulator: Emulator) -> None:
    before = time.time()
    results = list(make(emulator).watch([frame(70), frame(71)], SIZE_PROMPT, hz=50))
    assert results and all(before <= ts <= time.time() for ts, _ in results)
    assert width_in(str(results[-1][1])) == 71


def test_stopping_early_stops_reading_frames(emulator: Emulator) -> None:
    cam = Camera(None)
    watch = make(emulator).watch(cam, SIZE_PROMPT, hz=10)
    got = [next(watch), next(watch)]
    watch.close()
    assert len(got) == 2
    time.sleep(0.15)
    produced = cam.produced
    time.sleep(0.3)
    assert cam.produced <= produced + 1
    assert not any(t.name == "vlgate-watch-frames" for t in threading.enumerate())


def test_memory_holds_a_bounded_number_of_frames(emulator: Emulator) -> None:
    emulator.latency = 0.3
    cam = Camera(75, height=480)  # 2.5 s of 640-ish x 480 frames at 30 fps
    watch = make(emulator).watch(cam, SIZE_PROMPT, hz=5)
    results = list(watch)
    assert len(results) >= 4
    # One in the slot, one in flight, the one being produced (and one being handed over).
    assert cam.peak_live <= 4, cam.peak_live
    assert watch.stats.dropped >= 75 - len(results) - 1


def test_failed_request_ends_the_stream_or_is_yielded(emulator: Emulator) -> None:
    emulator.script("generic-vlm", ["400"])
    with pytest.raises(vlgate.ProviderError):
        list(make(emulator).watch([frame(64), frame(65)], SIZE_PROMPT, hz=100))
    emulator.script("generic-vlm", ["400"])
    out = list(make(emulator).watch(Camera(4), SIZE_PROMPT, hz=100, return_exceptions=True))
    assert any(isinstance(a, vlgate.ProviderError) for _, a in out)
    assert isinstance(out[-1][1], str)


def test_source_error_is_raised(emulator: Emulator) -> None:
    def broken() -> Iterator[np.ndarray]:
        yield frame(64)
        raise OSError("camera unplugged")

    with pytest.raises(OSError, match="camera unplugged"):
        list(make(emulator).watch(broken(), SIZE_PROMPT, hz=100))


@pytest.mark.parametrize(
    "kwargs",
    [{"hz": 0}, {"hz": -1.0}, {"max_in_flight": 0}, {"prompt": ""}, {"frames": "video.mp4"}],
)
def test_bad_arguments_are_config_errors(emulator: Emulator, kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"frames": [frame(64)], "prompt": SIZE_PROMPT}
    args.update(kwargs)
    with pytest.raises(vlgate.ConfigError):
        make(emulator).watch(**args)  # type: ignore[arg-type]
    assert emulator.requests == []


def test_watch_can_detect_on_each_frame(emulator: Emulator) -> None:
    frames = [frame(200, 150), frame(201, 150)]
    out = list(make(emulator).watch(frames, "red square", hz=50, task="detect"))
    assert out
    for _, boxes in out:
        assert isinstance(boxes, vlgate.Detections) and len(boxes) == 1
        x0, y0, x1, y1 = boxes[0].xyxy
        # The red square is drawn at pixels 10..30 of every frame.
        assert abs(x0 - 10) <= 3 and abs(y0 - 10) <= 3 and abs(x1 - 30) <= 3 and abs(y1 - 30) <= 3


def test_unknown_task_is_a_config_error(emulator: Emulator) -> None:
    with pytest.raises(vlgate.ConfigError, match="task"):
        make(emulator).watch([frame(64)], "x", task="segment")
