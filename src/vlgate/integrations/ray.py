"""vlgate on Ray Data: ask a model about every image of a dataset, across machines.

:func:`query_dataset` maps a Ray ``Dataset`` through a pool of actors. Each actor builds its own
:class:`~vlgate.VlModel` once (from a picklable config) and keeps ``max_concurrency`` requests
in flight on its event loop. A failed row is data (``error``, ``error_type``), never a crashed
job. ``rpm`` / ``tpm`` hold for the whole job: every actor takes its slots from one budget actor.
With ``write_to=`` the results land in a Parquet or JSONL directory, and a re-run with the same
directory asks only the rows not answered yet.

Example:
    >>> import ray, vlgate.integrations.ray as vray                        # doctest: +SKIP
    >>> ds = ray.data.from_items([{"image": p} for p in paths])            # doctest: +SKIP
    >>> out = vray.query_dataset(ds, "openai/gpt-4o-mini", "Is there a person?",
    ...                          num_actors=4, rpm=500, write_to="out/")    # doctest: +SKIP

Keys: a key given as ``api_key=`` or found in the driver's environment is resolved on the
driver and reaches the actors inside the model config, through Ray's object store. It is a
``SecretStr`` there: it appears in no actor name, task argument repr, log line or error.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from ..errors import ConfigError, RateLimitError, VlgateError
from ..model import VlModel, create
from ..runtime.limiter import RateLimiter, Reservation

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ray.data import Dataset

__all__ = ["OUTPUT_COLUMNS", "Task", "query_dataset", "read_results", "row_id"]

Task = Literal["query", "caption", "json", "detect", "point"]
_TASKS: tuple[str, ...] = ("query", "caption", "json", "detect", "point")
_RESULT_COLUMN = {
    "query": "answer",
    "caption": "answer",
    "json": "json",
    "detect": "detections",
    "point": "points",
}
OUTPUT_COLUMNS: tuple[str, ...] = (
    "error",
    "error_type",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cost",
)
"""Columns every output row has besides the input columns and the task's result column."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "vlgate.integrations.ray needs Ray Data: pip install 'vlgate[ray]'"
        ) from None
    return ray


# --- ids --------------------------------------------------------------------------------------


def row_id(source: Any) -> str:
    """A stable id for an image source: a hash of the path/URL text, the bytes, or the array.

    Used to skip rows already answered when a job is resumed (``id_column`` overrides it).

    Example:
        >>> row_id("frames/0001.jpg") == row_id("frames/0001.jpg")
        True
    """
    h = hashlib.sha256()
    if isinstance(source, str | os.PathLike):
        h.update(b"s:" + os.fspath(source).encode("utf-8", "surrogatepass"))
    elif isinstance(source, bytes | bytearray | memoryview):
        h.update(b"b:" + bytes(source))
    else:
        import numpy as np

        arr = np.ascontiguousarray(np.asarray(source))
        h.update(f"a:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:32]


# --- the shared budget ------------------------------------------------------------------------


class _Budget:
    """The job's one rate budget, as a Ray actor (no CPU): every model's limiter asks it."""

    def __init__(self, rpm: int | None, tpm: int | None) -> None:
        self._limiter = RateLimiter(rpm, tpm)

    def reserve(self, tokens: int, max_wait: float | None) -> float | None:
        return self._limiter.reserve(tokens, max_wait=max_wait)

    def adjust(self, estimated: int, actual: int | None) -> None:
        self._limiter.adjust(estimated, actual)

    def delay(self, tokens: int) -> float:
        return self._limiter.reserve_delay(tokens)


class _ClusterLimiter(RateLimiter):
    """A :class:`RateLimiter` whose bucket lives in the :class:`_Budget` actor.

    Reservations are remote calls (awaited on the actor's loop, never blocking it); the wait
    itself is a local ``asyncio.sleep``. Token corrections are sent without waiting.
    """

    def __init__(self, budget: Any) -> None:
        super().__init__(None, None)
        self._budget = budget

    @property
    def active(self) -> bool:
        return True

    def adjust(self, estimated: int, actual: int | None) -> None:
        self._budget.adjust.remote(estimated, actual)

    async def acquire(self, tokens: int, *, timeout: float | None = None) -> Reservation:
        wait = await self._budget.reserve.remote(tokens, timeout)
        if wait is None:
            raise RateLimitError(
                f"cluster rate limit: the next slot is further away than timeout={timeout}s",
                retry_after=await self._budget.delay.remote(tokens),
                client_side=True,
            )
        if wait > 0:
            await asyncio.sleep(wait)
        return Reservation(self, tokens, waited=wait)


# --- the actor --------------------------------------------------------------------------------


class _Asker:
    """The Ray Data UDF: one model per actor, a batch of rows answered concurrently."""

    def __init__(
        self,
        config_ref: Any,
        budget: Any,
        task: str,
        prompt: str | None,
        image_column: str,
        schema: dict[str, Any] | None,
        call_kwargs: dict[str, Any],
    ) -> None:
        ray = _import_ray()
        config = ray.get(config_ref[0]) if isinstance(config_ref, list) else config_ref
        self._model = VlModel(config)
        if budget is not None:
            self._model.use_rate_limiter(_ClusterLimiter(budget))
        self._task = task
        self._prompt = prompt
        self._column = image_column
        self._schema = schema
        self._kwargs = call_kwargs

    async def _one(self, source: Any) -> dict[str, Any]:
        m, kw = self._model, self._kwargs
        out: dict[str, Any] = {
            "error": None,
            "error_type": None,
            "attempts": None,
            "input_tokens": None,
            "output_tokens": None,
            "cost": None,
        }
        try:
            image = _as_image_input(source)
            if self._task == "query":
                answer = await m.aquery(image, self._prompt or "", **kw)
                out["answer"] = str(answer)
            elif self._task == "caption":
                answer = await m.acaption(image, **kw)
                out["answer"] = str(answer)
            elif self._task == "json":
                data, answer = await m._query_json(image, self._prompt or "", self._schema, kw)
                out["json"] = json.dumps(data, ensure_ascii=False)
            elif self._task == "detect":
                dets = await m.adetect(image, self._prompt or "", **kw)
                out["detections"] = [
                    {
                        "label": d.label,
                        "x1": float(d.xyxy[0]),
                        "y1": float(d.xyxy[1]),
                        "x2": float(d.xyxy[2]),
                        "y2": float(d.xyxy[3]),
                    }
                    for d in dets
                ]
                out["image_size"] = list(dets.image_size) if dets.image_size else None
                out["dropped"] = dets.dropped
                answer = dets.answer
            else:
                pts = await m.apoint(image, self._prompt or "", **kw)
                out["points"] = [
                    {"label": p.label, "x": float(p.xy[0]), "y": float(p.xy[1])} for p in pts
                ]
                out["image_size"] = list(pts.image_size) if pts.image_size else None
                out["dropped"] = pts.dropped
                answer = pts.answer
            if answer is not None:
                out["attempts"] = answer.attempts
                out["input_tokens"] = answer.usage.input_tokens
                out["output_tokens"] = answer.usage.output_tokens
                out["cost"] = answer.usage.cost
        except VlgateError as exc:
            out["error"] = str(exc)
            out["error_type"] = type(exc).__name__
            out["attempts"] = getattr(exc, "attempts", None) or 1
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
            out["error_type"] = type(exc).__name__
        out.setdefault(_RESULT_COLUMN[self._task], None)
        if self._task in ("detect", "point"):
            out.setdefault("image_size", None)
            out.setdefault("dropped", None)
        return out

    async def __call__(self, batch: pd.DataFrame) -> AsyncIterator[pd.DataFrame]:
        results = await asyncio.gather(*(self._one(src) for src in batch[self._column]))
        out = batch.copy()
        names = [_RESULT_COLUMN[self._task], *OUTPUT_COLUMNS]
        if self._task in ("detect", "point"):
            names += ["image_size", "dropped"]
        for name in names:
            out[name] = [r[name] for r in results]
        # Image bytes and arrays stay out of the output (paths and URLs are kept as the input).
        if len(out) and not isinstance(out[self._column].iloc[0], str):
            out = out.drop(columns=[self._column])
        yield out


def _as_image_input(source: Any) -> Any:
    import numpy as np

    if isinstance(source, np.ndarray) and source.dtype == object and source.ndim == 1:
        # pyarrow lists of lists come back as object arrays of arrays: stack them.
        return np.stack([np.asarray(x) for x in source])
    return source


# --- resume -----------------------------------------------------------------------------------


def _format_of(path: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in ("parquet", "jsonl"):
            raise ConfigError("format must be 'parquet' or 'jsonl'")
        return fmt
    return "jsonl" if path.rstrip("/").endswith(("jsonl", "json")) else "parquet"


def _existing(path: str, fmt: str) -> list[dict[str, Any]]:
    """Rows already in the output directory (id, error) — read on the driver, columns only."""
    root = Path(path)
    if not root.is_dir():
        return []
    rows: list[dict[str, Any]] = []
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for f in sorted(root.glob("*.parquet")):
            table = pq.read_table(f, columns=["_vlgate_id", "error"])
            rows.extend(table.to_pylist())
    else:
        for f in sorted(root.glob("*.json*")):
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        rec = json.loads(line)
                        rows.append(
                            {"_vlgate_id": rec.get("_vlgate_id"), "error": rec.get("error")}
                        )
    return rows


def read_results(path: str | os.PathLike[str], *, format: str | None = None) -> Dataset:
    """The results written to ``path`` by :func:`query_dataset` (one row per image).

    Example:
        >>> vray.read_results("out/").count()   # doctest: +SKIP
        1000
    """
    ray = _import_ray()
    fmt = _format_of(os.fspath(path), format)
    reader = ray.data.read_parquet if fmt == "parquet" else ray.data.read_json
    return cast("Dataset", reader(os.fspath(path)))


def _drop_superseded(path: str, fmt: str, ids: set[str], before: set[str]) -> None:
    """Remove the old error rows of ``ids`` (re-asked in this run) from the files in ``before``.

    Each file is rewritten whole to a temporary name and renamed over the old one, so a crash
    leaves either the old file or the new one, never half of one.
    """
    for name in sorted(before):
        f = Path(path) / name
        if fmt == "parquet":
            import pyarrow.compute as pc
            import pyarrow.parquet as pq

            table = pq.read_table(f)
            keep = pc.invert(pc.is_in(table.column("_vlgate_id"), value_set=_pa_ids(ids)))
            if pc.all(keep).as_py():
                continue
            tmp = f.with_name(f.name + ".tmp")
            pq.write_table(table.filter(keep), tmp)
        else:
            lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [ln for ln in lines if not ln.strip() or json.loads(ln)["_vlgate_id"] not in ids]
            if len(kept) == len(lines):
                continue
            tmp = f.with_name(f.name + ".tmp")
            tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, f)


def _pa_ids(ids: set[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(ids), type=pa.string())


# --- the job ----------------------------------------------------------------------------------


def query_dataset(
    ds: Dataset,
    model: str | VlModel,
    prompt: str | None = None,
    *,
    task: Task = "query",
    image_column: str = "image",
    num_actors: int = 2,
    num_cpus_per_actor: float = 0.5,
    batch_size: int = 32,
    id_column: str | None = None,
    write_to: str | os.PathLike[str] | None = None,
    format: str | None = None,
    retry_failed: bool = False,
    schema: Any = None,
    call_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Dataset:
    """Ask ``model`` about the image in every row of ``ds`` on a pool of Ray actors.

    Args:
        ds: a Ray Dataset whose ``image_column`` holds paths, URLs, bytes or arrays.
        model: a model string (``"openai/gpt-4o-mini"``) or a :class:`~vlgate.VlModel`.
        prompt: the question (``query``/``json``) or the target (``detect``/``point``).
        task: ``"query"``, ``"caption"``, ``"json"``, ``"detect"`` or ``"point"``.
        num_actors: actors in the pool; each keeps ``max_concurrency`` requests in flight.
        id_column: column identifying a row for resume (default: a hash of the image source,
            stored as ``_vlgate_id``).
        write_to: a directory; results are written there (Parquet, or JSONL when its name ends
            in ``jsonl`` or ``format="jsonl"``) and rows already answered there are skipped.
        retry_failed: with ``write_to``, also re-ask rows whose earlier answer was an error.
        schema: for ``task="json"``: a JSON-schema dict (pydantic models: pass
            ``Model.model_json_schema()``).
        call_kwargs: request parameters for every call (``temperature``, ``max_tokens``, ...).
        options: :func:`vlgate.create` options (``api_key``, ``api_base``, ``max_concurrency``,
            ``fallbacks``, ...). ``rpm`` / ``tpm`` are one budget for the whole job.

    Returns:
        The output Dataset: input columns (image bytes/arrays dropped) plus the result column
        (``answer``, ``json``, ``detections`` ``[{label, x1, y1, x2, y2}]`` or ``points``
        ``[{label, x, y}]``, in original pixels, with ``image_size`` ``[w, h]`` and ``dropped``,
        the count of unreadable entries in the answer), ``error``,
        ``error_type``, ``attempts``,
        ``input_tokens``, ``output_tokens``, ``cost``. With ``write_to`` the job has run and
        this is :func:`read_results` of the directory.

    Raises:
        ConfigError: unknown task, missing prompt, bad options (before anything is sent).
    """
    ray = _import_ray()
    if task not in _TASKS:
        raise ConfigError(f"task must be one of {', '.join(_TASKS)}; got {task!r}")
    if task in ("query", "json", "detect", "point") and not prompt:
        raise ConfigError(f"task={task!r} needs a prompt (the question or the target)")
    if num_actors < 1:
        raise ConfigError("num_actors must be at least 1")
    if schema is not None and hasattr(schema, "model_json_schema"):
        schema = schema.model_json_schema()

    rpm, tpm = options.pop("rpm", None), options.pop("tpm", None)
    if isinstance(model, VlModel):
        if options:
            raise ConfigError("pass options to create() when `model` is already a VlModel")
        config = model.portable_config()
        rpm = rpm or config.rpm
        tpm = tpm or config.tpm
    else:
        # Built on the driver: a bad option or a missing key fails here, before any actor.
        config = create(model, **options).portable_config()
    # The per-actor limiter is replaced by the job's budget (an actor per job, no CPU).
    config = config.model_copy(update={"rpm": None, "tpm": None})

    columns = ds.columns(fetch_if_missing=False)
    if columns is not None and image_column not in columns:
        raise ConfigError(f"the dataset has no column {image_column!r} (it has {columns})")
    if not ray.is_initialized():
        ray.init()
    budget = None
    if rpm or tpm:
        budget = ray.remote(num_cpus=0)(_Budget).remote(rpm, tpm)

    id_col = id_column or "_vlgate_id"
    if id_column is None:
        col = image_column

        def add_id(batch: pd.DataFrame) -> pd.DataFrame:
            batch["_vlgate_id"] = [row_id(_as_image_input(s)) for s in batch[col]]
            return batch

        ds = ds.map_batches(add_id, batch_format="pandas")
    elif id_column != "_vlgate_id":

        def copy_id(batch: pd.DataFrame) -> pd.DataFrame:
            batch["_vlgate_id"] = batch[id_column].astype(str)
            return batch

        ds = ds.map_batches(copy_id, batch_format="pandas")
    del id_col

    fmt = _format_of(os.fspath(write_to), format) if write_to is not None else None
    retried: set[str] = set()
    if write_to is not None and fmt is not None:
        existing = _existing(os.fspath(write_to), fmt)
        retried = {r["_vlgate_id"] for r in existing if retry_failed and r.get("error")}
        done = {r["_vlgate_id"] for r in existing} - retried
        if done:

            def skip_done(batch: pd.DataFrame) -> pd.DataFrame:
                return batch[~batch["_vlgate_id"].isin(done)]

            ds = ds.map_batches(skip_done, batch_format="pandas")

    config_ref = [ray.put(config)]  # in a list: Ray passes the ref itself, not its value
    out = ds.map_batches(
        _Asker,
        fn_constructor_kwargs={
            "config_ref": config_ref,
            "budget": budget,
            "task": task,
            "prompt": prompt,
            "image_column": image_column,
            "schema": schema,
            "call_kwargs": dict(call_kwargs or {}),
        },
        batch_format="pandas",
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=num_cpus_per_actor,
    )
    if write_to is None:
        return out
    path = os.fspath(write_to)
    Path(path).mkdir(parents=True, exist_ok=True)
    before = {f.name for f in Path(path).iterdir() if f.is_file()}
    if fmt == "parquet":
        out.write_parquet(path)
    else:
        out.write_json(path)
    if retried:
        # The re-asked rows now have a newer row each: their old error rows go.
        _drop_superseded(path, fmt or "parquet", retried, before)
    return read_results(path, format=fmt)
