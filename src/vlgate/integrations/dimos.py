"""vlgate as a dimos ``VlModel``: every vlgate provider and model family inside a dimos robot.

:class:`VlgateVlModel` is a real subclass of ``dimos.models.vl.base.VlModel``: dimos code that
takes a ``VlModel`` takes it unchanged. dimos ``Image`` frames (BGR by default) reach the model
in their own channel order; ``query_batch`` and ``caption_batch`` run concurrently, one request
and one answer per image, in order; ``query_detections`` / ``query_points`` use each model
family's native grounding prompt and coordinate convention and return dimos's
``ImageDetections2D`` in pixels of the original frame.

Differences from dimos's base class, on purpose: a failed request raises vlgate's typed error
(:class:`~vlgate.errors.VlgateError`) instead of being swallowed into an empty result (an answer
with nothing usable in it still gives an empty result), and ``auto_resize`` is applied by vlgate
when encoding, so no OpenCV is needed.

Example:
    >>> from vlgate.integrations.dimos import VlgateVlModel          # doctest: +SKIP
    >>> vlm = VlgateVlModel("anthropic/claude-sonnet-4-6", max_concurrency=8)
    >>> vlm.start()                                      # warm up before the first frame
    >>> vlm.query(frame, "Is the door open?")            # frame: a dimos Image
    >>> vlm.query_detections(frame, "cup")               # ImageDetections2D[Detection2DBBox]
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from pydantic import Field

from ..image import Image as VlImage
from ..model import Answer, create
from ..model import VlModel as _Vlgate
from ..runtime.loop import run_sync

try:
    from dimos.models.vl.base import VlModel, VlModelConfig
    from dimos.msgs.sensor_msgs.Image import Image, ImageFormat
    from dimos.perception.detection.type.detection2d.bbox import Detection2DBBox
    from dimos.perception.detection.type.detection2d.imageDetections2D import ImageDetections2D
    from dimos.perception.detection.type.detection2d.point import Detection2DPoint
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "vlgate.integrations.dimos needs the dimos package (pip install 'vlgate[dimos]'); "
        f"importing it failed: {exc}"
    ) from exc

__all__ = ["VlgateVlModel", "VlgateVlModelConfig"]


class VlgateVlModelConfig(VlModelConfig):  # type: ignore[misc]
    """dimos-style configuration of a :class:`VlgateVlModel` (the key is kept out of its repr)."""

    model_name: str = "openai/gpt-4o-mini"
    api_key: str | None = Field(default=None, repr=False)
    api_base: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class VlgateVlModel(VlModel):  # type: ignore[misc]
    """A dimos ``VlModel`` backed by a vlgate model: any model string vlgate accepts.

    ``options`` are :func:`vlgate.create` options (``max_concurrency``, ``fallbacks``,
    ``family``, ``timeout``, ...); ``auto_resize=(w, h)`` fits frames before sending and maps
    coordinates back. The vlgate model itself is :attr:`vlgate` (for its async methods).

    Example:
        >>> vlm = VlgateVlModel("qwen/qwen-vl-max", max_concurrency=4)    # doctest: +SKIP
        >>> vlm.query_batch([frame1, frame2], "Anyone there?")           # doctest: +SKIP
        ['No.', 'Yes, one person.']
    """

    config: VlgateVlModelConfig

    def __init__(
        self,
        model_name: str = "openai/gpt-4o-mini",
        api_key: str | None = None,
        api_base: str | None = None,
        auto_resize: tuple[int, int] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(
            model_name=model_name,
            api_key=api_key,
            api_base=api_base,
            auto_resize=auto_resize,
            options=options,
        )
        given = {"api_key": api_key, "api_base": api_base, "auto_resize": auto_resize}
        kwargs = {k: v for k, v in given.items() if v is not None}
        # Built here, so a bad model string or option is a ConfigError at construction.
        self.vlgate: _Vlgate = create(model_name, **kwargs, **options)

    def __repr__(self) -> str:
        return f"VlgateVlModel({self.vlgate!r})"

    # -- Resource ------------------------------------------------------------------------------

    def start(self) -> None:
        """Warm the provider up (imports, connections, local weights) before the first frame."""
        self.vlgate.start()

    def stop(self) -> None:
        """Close the provider's connections; the model can be used again afterwards."""
        self.vlgate.stop()

    # -- questions -----------------------------------------------------------------------------

    def query(self, image: Image, query: str, **kwargs: Any) -> str:
        """Ask one question about one frame; ``kwargs`` reach the provider (``max_tokens``, ...)."""
        return self.vlgate.query(_frame(image), query, **kwargs)

    def query_batch(self, images: Sequence[Image], query: str, **kwargs: Any) -> list[str]:
        """The same question about each frame, concurrently: one answer per frame, in order."""
        frames = [_frame(i) for i in images]
        return cast("list[str]", self.vlgate.query_batch(frames, query, **kwargs))

    def query_multi(self, image: Image, queries: Sequence[str], **kwargs: Any) -> list[str]:
        """Several questions about one frame (encoded once): one answer per question, in order."""
        return list(self.vlgate.query_multi(_frame(image), list(queries), **kwargs))

    def caption(self, image: Image, **kwargs: Any) -> str:
        """A short description (Moondream's native caption call where the provider has one)."""
        return self.vlgate.caption(_frame(image), **kwargs)

    def caption_batch(self, *images: Image, **kwargs: Any) -> list[str]:
        """Captions for several frames, concurrently, in order."""
        frames = [_frame(i) for i in images]

        async def all_captions() -> list[Answer]:
            return list(await asyncio.gather(*(self.vlgate.acaption(f, **kwargs) for f in frames)))

        return list(run_sync(all_captions()))

    def query_json(
        self, image: Image, query: str, schema: Any = None, **kwargs: Any
    ) -> dict[str, Any] | list[Any]:
        """The answer parsed as JSON (repaired once by asking again if it is not valid JSON);
        with a pydantic ``schema``, a validated model instance."""
        return cast(
            "dict[str, Any] | list[Any]",
            self.vlgate.query_json(_frame(image), query, schema, **kwargs),
        )

    # -- grounding -----------------------------------------------------------------------------

    def query_detections(
        self, image: Image, query: str, **kwargs: Any
    ) -> ImageDetections2D[Detection2DBBox]:
        """Boxes for ``query`` in pixels of the original frame, as dimos detections.

        Fields are filled as dimos fills them: ``name`` is the model's label, ``track_id`` the
        index, ``class_id=-1``, ``confidence=1.0``, ``ts`` and ``image`` those of the input.
        """
        frame = _dimos_image(image)
        found = self.vlgate.detect(frame, query, **kwargs)
        out: ImageDetections2D[Detection2DBBox] = ImageDetections2D(frame)
        for track_id, d in enumerate(found):
            x1, y1, x2, y2 = (float(v) for v in d.xyxy)
            det = Detection2DBBox(
                bbox=(x1, y1, x2, y2),
                track_id=track_id,
                class_id=-1,
                confidence=1.0,
                name=d.label,
                ts=frame.ts,
                image=frame,
            )
            if det.is_valid():
                out.detections.append(det)
        return out

    def query_points(
        self, image: Image, query: str, **kwargs: Any
    ) -> ImageDetections2D[Detection2DPoint]:
        """Points for ``query`` in pixels of the original frame, as dimos point detections."""
        frame = _dimos_image(image)
        found = self.vlgate.point(frame, query, **kwargs)
        out: ImageDetections2D[Detection2DPoint] = ImageDetections2D(frame)
        for track_id, p in enumerate(found):
            x, y = (float(v) for v in p.xy)
            point = Detection2DPoint(
                x=x, y=y, name=p.label, ts=frame.ts, image=frame, track_id=track_id
            )
            if point.is_valid():
                out.detections.append(point)
        return out


def _frame(image: Any) -> Any:
    """What vlgate is given: dimos frames as they are; a bare array is BGR, as in dimos."""
    if isinstance(image, np.ndarray):
        warnings.warn(
            "VlgateVlModel should receive a dimos Image, not a numpy array; reading the array "
            "as BGR, dimos's default",
            DeprecationWarning,
            stacklevel=3,
        )
        return Image.from_numpy(image)
    return image


def _dimos_image(image: Any) -> Image:
    """A dimos Image for results to point at; other vlgate inputs are loaded and wrapped."""
    frame = _frame(image)
    if isinstance(frame, Image):
        return frame
    pixels = VlImage.load(frame).to_numpy()
    fmt = ImageFormat.RGBA if pixels.shape[2] == 4 else ImageFormat.RGB
    return Image(data=pixels, format=fmt)
