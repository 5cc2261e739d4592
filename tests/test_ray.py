"""vlgate on Ray Data (``vlgate.integrations.ray``), on a local Ray against the emulator.

One local Ray (2 CPUs) serves the whole module; each test starts its own emulator so request
counts and timestamps belong to that test alone.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

import vlgate  # noqa: E402
import vlgate.integrations.ray as vray  # noqa: E402
from vlgate.testing import Emulator  # noqa: E402
from vlgate.testing.scenes import Scene, make_scene  # noqa: E402

KEY = "emu-key"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # Other processes on a shared test machine must not make Ray kill our workers.
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _scenes(tmp_path: Path, n: int, size: tuple[int, int] = (96, 72)) -> list[tuple[str, Scene]]:
    out = []
    for i in range(n):
        scene = make_scene(1000 + i, size=size, n_shapes=2)
        path = tmp_path / f"{i:05d}.png"
        scene.image.save(path)
        out.append((str(path), scene))
    return out


def _dataset(scenes: list[tuple[str, Scene]]) -> Any:
    return ray.data.from_items([{"image": p, "n": i} for i, (p, _) in enumerate(scenes)])


def test_thousand_images_each_answer_matches_its_own_scene(local_ray: None, tmp_path: Path) -> None:
    scenes = _scenes(tmp_path, 1000)
    with Emulator(api_key=KEY) as emu:
        out = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_key=KEY,
            api_base=emu.url + "/v1",
            max_concurrency=16,
            batch_size=50,
        )
        rows = out.take_all()
        assert len(emu.requests) == 1000  # one request per image, none repeated
    assert len(rows) == 1000
    assert sorted(r["n"] for r in rows) == list(range(1000))
    for r in rows:
        scene = scenes[r["n"]][1]
        assert r["error"] is None, r["error"]
        # The emulator names what it saw: every shape of this row's own scene, nothing else.
        for shape in scene.shapes:
            assert shape.label in r["answer"] or f"{shape.colour} {shape.shape}s" in r["answer"]
        assert r["attempts"] == 1 and r["input_tokens"] > 0 and r["output_tokens"] > 0
    assert len({r["_vlgate_id"] for r in rows}) == 1000


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "qwen/qwen2.5-vl-72b-instruct"])
def test_detect_rows_match_ground_truth(local_ray: None, tmp_path: Path, model: str) -> None:
    scenes = _scenes(tmp_path, 12, size=(640, 480))
    with Emulator(api_key=KEY) as emu:
        rows = vray.query_dataset(
            _dataset(scenes),
            model,
            "shapes",
            task="detect",
            api_key=KEY,
            api_base=emu.url + "/v1",
            num_actors=1,
        ).take_all()
    found = total = dropped = 0
    for r in rows:
        scene = scenes[r["n"]][1]
        assert r["error"] is None
        total += len(scene.shapes)
        dropped += r["dropped"]
        # Every box is right, in original pixels; the emulator (like real models) sometimes
        # truncates its answer before the last object, so recall is checked over the job.
        for d in r["detections"]:
            shape = next(s for s in scene.shapes if s.label == d["label"])
            assert _iou(shape.box, (d["x1"], d["y1"], d["x2"], d["y2"])) > 0.9
            found += 1
    assert found >= 0.9 * total
    # The objects a truncated answer was cut off in are counted, not silently lost.
    assert found + dropped == total


def test_json_rows_carry_usage_and_attempts(local_ray: None, tmp_path: Path) -> None:
    scenes = _scenes(tmp_path, 4, size=(320, 240))
    schema = {"type": "object", "properties": {"count": {"type": "integer"}}}
    with Emulator(api_key=KEY) as emu:
        rows = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "Count the shapes.",
            task="json",
            schema=schema,
            api_key=KEY,
            api_base=emu.url + "/v1",
            num_actors=1,
        ).take_all()
        assert len(emu.requests) == 4
    for r in rows:
        assert json.loads(r["json"]) == {"count": len(scenes[r["n"]][1].shapes)}
        assert r["attempts"] == 1 and r["input_tokens"] > 0 and r["output_tokens"] > 0
        assert r["cost"] is not None and r["cost"] > 0


def test_point_and_bytes_column(local_ray: None, tmp_path: Path) -> None:
    scenes = _scenes(tmp_path, 6, size=(320, 240))
    ds = ray.data.from_items(
        [{"image": Path(p).read_bytes(), "n": i} for i, (p, _) in enumerate(scenes)]
    )
    with Emulator(api_key=KEY) as emu:
        rows = vray.query_dataset(
            ds,
            "openai/gpt-4o",
            "shapes",
            task="point",
            api_key=KEY,
            api_base=emu.url + "/v1",
            num_actors=1,
        ).take_all()
    assert "image" not in rows[0]  # bytes are not copied to the output
    assert sum(len(r["points"]) for r in rows) >= 0.8 * sum(len(s.shapes) for _, s in scenes)
    for r in rows:
        scene = scenes[r["n"]][1]
        for p in r["points"]:
            shape = next(s for s in scene.shapes if s.label == p["label"])
            x1, y1, x2, y2 = shape.box
            assert x1 <= p["x"] <= x2 and y1 <= p["y"] <= y2


def test_rpm_is_one_budget_for_the_whole_job(local_ray: None, tmp_path: Path) -> None:
    # rpm=60 allows a burst of one minute's budget (60), then one request a second. With one
    # limiter per actor, two actors would send all 66 at once.
    scenes = _scenes(tmp_path, 66)
    with Emulator(api_key=KEY) as emu:
        rows = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_key=KEY,
            api_base=emu.url + "/v1",
            rpm=60,
            num_actors=2,
            batch_size=8,
        ).take_all()
        times = sorted(r.t_received for r in emu.requests)
    assert len(rows) == 66 and all(r["error"] is None for r in rows)
    assert len(times) == 66
    # The 6 past the burst wait about a second each.
    assert times[-1] - times[0] >= 4.5
    # And never more than the budget within one minute (burst + refill).
    assert sum(1 for t in times if t - times[0] < 1.0) <= 61


def test_failed_row_is_data_and_resume_skips_done_rows(local_ray: None, tmp_path: Path) -> None:
    scenes = _scenes(tmp_path, 40)
    out_dir = tmp_path / "out.jsonl"
    opts: dict[str, Any] = {"api_key": KEY, "max_retries": 0, "num_actors": 1}
    with Emulator(api_key=KEY) as emu:
        # First run: the first 3 requests fail (400 is never retried).
        emu.script("gpt-4o-mini", ["400", "400", "400"])
        first = vray.query_dataset(
            _dataset(scenes[:30]),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_base=emu.url + "/v1",
            write_to=out_dir,
            **opts,
        ).take_all()
        assert len(first) == 30 and len(emu.requests) == 30
        failed = [r for r in first if r["error"]]
        assert len(failed) == 3 and {r["error_type"] for r in failed} == {"ProviderError"}

        # Second run over all 40: only the 10 new rows are asked.
        emu.clear()
        second = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_base=emu.url + "/v1",
            write_to=out_dir,
            **opts,
        ).take_all()
        assert len(emu.requests) == 10
        assert len(second) == 40

        # Third run, re-asking failures: exactly the 3 failed rows go out again.
        emu.clear()
        third = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_base=emu.url + "/v1",
            write_to=out_dir,
            retry_failed=True,
            **opts,
        ).take_all()
        assert len(emu.requests) == 3
    assert len(third) == 40 and all(r["error"] is None for r in third)
    assert sorted(r["n"] for r in third) == list(range(40))


def _asker_pids() -> list[int]:
    # Ray titles its worker processes after the actor class ("ray::MapWorker(...(_Asker))").
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"_Asker" in cmdline and b"MapWorker" in cmdline:
                pids.append(int(proc.name))
    return pids


def test_killed_actor_loses_and_duplicates_nothing(local_ray: None, tmp_path: Path) -> None:
    scenes = _scenes(tmp_path, 200)
    out_dir = tmp_path / "out"
    killed: list[int] = []
    with Emulator(api_key=KEY, latency=0.02) as emu:

        def kill_one() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(emu.requests) < 40:
                time.sleep(0.05)
            pids = _asker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        rows = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_key=KEY,
            api_base=emu.url + "/v1",
            write_to=out_dir,
            num_actors=2,
            batch_size=10,
            max_concurrency=4,
        ).take_all()
        killer.join()
    assert killed, "no actor was found to kill"
    counts = Counter(r["n"] for r in rows)
    assert sorted(counts) == list(range(200)) and set(counts.values()) == {1}
    assert all(r["error"] is None for r in rows)
    # What is on disk holds each row once too (the re-run batch replaced the lost one).
    import pyarrow.parquet as pq

    on_disk = pq.read_table(out_dir, columns=["n"]).column("n").to_pylist()
    assert Counter(on_disk) == Counter(range(200))


def test_key_never_reaches_ray_names_logs_or_errors(local_ray: None, tmp_path: Path) -> None:
    secret = "sk-ray-secret-0123456789abcdef"
    scenes = _scenes(tmp_path, 8)
    with Emulator(api_key=KEY) as emu:  # the emulator refuses this key: errors are rows
        rows = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_key=secret,
            api_base=emu.url + "/v1",
            num_actors=1,
        ).take_all()
        assert emu.requests and all(
            r.headers.get("authorization") == f"Bearer {secret}" for r in emu.requests
        )  # it did arrive where it belongs
    assert all(r["error_type"] == "AuthError" for r in rows)
    assert not any(secret in json.dumps(r, default=str) for r in rows)
    dump = repr(ray._private.state.actors()) + repr(ray.nodes())
    assert secret not in dump
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    for f in logs.rglob("*"):
        if f.is_file() and f.stat().st_size < 50_000_000:
            assert secret.encode() not in f.read_bytes(), f


def test_env_key_travels_from_the_driver(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    scenes = _scenes(tmp_path, 4)
    with Emulator(api_key=KEY) as emu:
        rows = vray.query_dataset(
            _dataset(scenes),
            "openai/gpt-4o-mini",
            "What colors do you see?",
            api_base=emu.url + "/v1",
            num_actors=1,
        ).take_all()
    assert all(r["error"] is None for r in rows)


def test_model_pickles_and_answers_on_the_other_side(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with Emulator(api_key=KEY) as emu:
        model = vlgate.create("openai/gpt-4o-mini", api_base=emu.url + "/v1", max_retries=1)
        blob = pickle.dumps(model)
        assert KEY.encode() in blob  # the resolved key travels (as a secret) ...
        monkeypatch.delenv("OPENAI_API_KEY")
        twin = pickle.loads(blob)  # ... so the other side needs no env var
        assert "emu-key" not in repr(twin) and "emu-key" not in repr(twin.config)
        scene = make_scene(7, size=(160, 120), n_shapes=1)
        assert scene.shapes[0].colour in twin.query(scene.to_png_bytes(), "What colors?")
        assert twin.config.max_retries == 1


def test_bad_input_fails_before_anything_runs(local_ray: None) -> None:
    ds = ray.data.from_items([{"image": "x.png"}])
    with pytest.raises(vlgate.ConfigError, match="task"):
        vray.query_dataset(ds, "openai/gpt-4o-mini", "q", task="segment", api_key=KEY)  # type: ignore[arg-type]
    with pytest.raises(vlgate.ConfigError, match="prompt"):
        vray.query_dataset(ds, "openai/gpt-4o-mini", task="detect", api_key=KEY)
    with pytest.raises(vlgate.ConfigError, match="OPENAI_API_KEY"):
        vray.query_dataset(ds, "openai/gpt-4o-mini", "q")


def test_cli_batch_on_ray_writes_the_same_records_and_resumes(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from vlgate.batchrecord import read_records
    from vlgate.cli import app

    scenes = _scenes(tmp_path, 12)
    out = tmp_path / "results.jsonl"
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    with Emulator(api_key=KEY) as emu:
        args = [
            "batch",
            str(tmp_path),
            "--detect",
            "shapes",
            "-o",
            str(out),
            "-m",
            "openai/gpt-4o",
            "--api-base",
            emu.url + "/v1",
            "--ray",
            "local",
            "--no-progress",
            "--limit",
            "8",
        ]
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        assert len(emu.requests) == 8
        emu.clear()
        second = CliRunner().invoke(app, args[:-2])  # no --limit: only the 4 left are asked
        assert second.exit_code == 0, second.output
        assert len(emu.requests) == 4
    records = read_records(out)
    assert len(records) == 12
    for path, scene in scenes:
        rec = records[path]
        assert rec.ok and rec.task == "detect" and rec.image_size == scene.size
        kept = len(rec.detections or [])
        assert rec.dropped is not None and kept + rec.dropped == len(scene.shapes)
        for d in rec.detections or []:
            shape = next(s for s in scene.shapes if s.label == d["label"])
            assert _iou(shape.box, tuple(d["xyxy"])) > 0.9
