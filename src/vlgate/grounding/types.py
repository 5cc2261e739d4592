"""Result types of grounding: boxes and points in pixels of the original image."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image as PILImage

__all__ = ["Detection", "Detections", "Point", "Points"]


@dataclass(frozen=True)
class Detection:
    """One box, ``xyxy`` in pixels of the original image (x right, y down).

    ``raw`` keeps the numbers the model wrote, in its own order and scale, for auditing.

    Example:
        >>> d = Detection("cup", (10.0, 20.0, 110.0, 70.0))
        >>> d.width, d.height, d.center
        (100.0, 50.0, (60.0, 45.0))
    """

    label: str
    xyxy: tuple[float, float, float, float]
    score: float | None = None
    raw: tuple[float, ...] | None = None
    convention: str | None = None

    @property
    def width(self) -> float:
        return self.xyxy[2] - self.xyxy[0]

    @property
    def height(self) -> float:
        return self.xyxy[3] - self.xyxy[1]

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.xyxy
        return ((x1 + x2) / 2, (y1 + y2) / 2)


@dataclass(frozen=True)
class Point:
    """One point, ``xy`` in pixels of the original image.

    Example:
        >>> Point("handle", (12.5, 40.0)).xy
        (12.5, 40.0)
    """

    label: str
    xy: tuple[float, float]
    raw: tuple[float, ...] | None = None
    convention: str | None = None


T = TypeVar("T", Detection, Point)


class _Results(Sequence[T], Generic[T]):
    """An immutable list of results that knows the size of the image they belong to."""

    __slots__ = ("_items", "answer", "dropped", "image_size")

    def __init__(
        self,
        items: Iterable[T] = (),
        *,
        image_size: tuple[int, int] | None = None,
        answer: Any = None,
        dropped: int = 0,
    ):
        self._items: tuple[T, ...] = tuple(items)
        self.image_size = image_size
        self.answer = answer
        """The model's raw answer (a :class:`vlgate.Answer`) when these came from a model."""
        self.dropped = dropped
        """Items in the answer that could not be read (wrong number of coordinates, truncated,
        missing a required label, not finite, zero area): ``0`` with no results means the model
        found nothing; more than ``0`` means part of its answer was unreadable."""

    @property
    def usage(self) -> Any:
        """Tokens and cost of the answer these came from (``None`` when parsed from text)."""
        return getattr(self.answer, "usage", None)

    @property
    def attempts(self) -> int | None:
        """Attempts the answer took (``None`` when parsed from text)."""
        return getattr(self.answer, "attempts", None)

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> _Results[T]: ...
    def __getitem__(self, index: int | slice) -> T | _Results[T]:
        if isinstance(index, slice):
            return type(self)(self._items[index], image_size=self.image_size)
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _Results):
            return self._items == other._items and self.image_size == other.image_size
        if isinstance(other, (list, tuple)):
            return list(self._items) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        extra = f", dropped={self.dropped}" if self.dropped else ""
        return (
            f"{type(self).__name__}({list(self._items)!r}, image_size={self.image_size!r}{extra})"
        )

    @property
    def labels(self) -> list[str]:
        return [item.label for item in self._items]

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{"image_size": [w, h], "items": [...], "dropped": n}`` (``dropped``:
        entries of the answer that could not be read, see :attr:`dropped`)."""
        items = []
        for item in self._items:
            d = asdict(item)
            for key in ("xyxy", "xy", "raw"):
                if d.get(key) is not None:
                    d[key] = list(d[key])
            items.append(d)
        size = list(self.image_size) if self.image_size else None
        return {"image_size": size, "items": items, "dropped": self.dropped}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``kwargs`` go to ``json.dumps``)."""
        return json.dumps(self.to_dict(), **kwargs)

    def _category_ids(self, categories: Sequence[str] | None) -> tuple[list[str], dict[str, int]]:
        names = list(categories) if categories is not None else []
        for label in self.labels:
            if label not in names:
                names.append(label)
        return names, {name: i + 1 for i, name in enumerate(names)}

    def _coco_image(self, image_id: int) -> list[dict[str, Any]]:
        if self.image_size is None:
            return []
        return [{"id": image_id, "width": self.image_size[0], "height": self.image_size[1]}]


class Detections(_Results[Detection]):
    """Boxes found in one image; a read-only sequence of :class:`Detection`.

    Example:
        >>> dets = Detections([Detection("cup", (10, 20, 110, 70))], image_size=(640, 480))
        >>> dets.xyxy.shape, dets.labels
        ((1, 4), ['cup'])
        >>> dets.to_coco()["annotations"][0]["bbox"]
        [10.0, 20.0, 100.0, 50.0]
    """

    __slots__ = ()

    @property
    def xyxy(self) -> NDArray[np.float64]:
        """``(N, 4)`` float array of boxes."""
        import numpy as np

        return np.array([d.xyxy for d in self._items], dtype=np.float64).reshape(-1, 4)

    @property
    def scores(self) -> list[float | None]:
        return [d.score for d in self._items]

    def to_supervision(self) -> Any:
        """These boxes as ``supervision.Detections`` (``class_name`` in ``data``)."""
        import numpy as np

        sv = _import_supervision()
        _, ids = self._category_ids(None)
        scores = self.scores
        confidence = (
            np.array(scores, dtype=np.float32)
            if scores and all(s is not None for s in scores)
            else None
        )
        return sv.Detections(
            xyxy=self.xyxy.astype(np.float32),
            class_id=np.array([ids[label] - 1 for label in self.labels], dtype=int),
            confidence=confidence,
            data={"class_name": np.array(self.labels, dtype=str)},
        )

    def to_coco(self, image_id: int = 0, categories: Sequence[str] | None = None) -> dict[str, Any]:
        """COCO-style dict: ``images``, ``annotations`` (bbox ``[x, y, w, h]``), ``categories``.

        Category ids start at 1 in the order of ``categories``, then of first appearance.
        """
        names, ids = self._category_ids(categories)
        annotations = []
        for i, d in enumerate(self._items):
            x1, y1, x2, y2 = (float(v) for v in d.xyxy)
            ann: dict[str, Any] = {
                "id": i + 1,
                "image_id": image_id,
                "category_id": ids[d.label],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
            if d.score is not None:
                ann["score"] = d.score
            annotations.append(ann)
        return {
            "images": self._coco_image(image_id),
            "annotations": annotations,
            "categories": [{"id": ids[n], "name": n} for n in names],
        }

    def annotate(self, image: Any) -> PILImage.Image:
        """A copy of ``image`` with the boxes drawn: labelled, or past a dozen in a legend."""
        from .draw import annotate

        return annotate(image, boxes=self._items)


class Points(_Results[Point]):
    """Points found in one image; a read-only sequence of :class:`Point`.

    Example:
        >>> pts = Points([Point("cup", (5.0, 6.0))], image_size=(64, 48))
        >>> pts.xy.tolist()
        [[5.0, 6.0]]
    """

    __slots__ = ()

    @property
    def xy(self) -> NDArray[np.float64]:
        """``(N, 2)`` float array of points."""
        import numpy as np

        return np.array([p.xy for p in self._items], dtype=np.float64).reshape(-1, 2)

    def to_supervision(self) -> Any:
        """These points as ``supervision.KeyPoints`` (one keypoint per object)."""
        import numpy as np

        sv = _import_supervision()
        _, ids = self._category_ids(None)
        return sv.KeyPoints(
            xy=self.xy.astype(np.float32).reshape(-1, 1, 2),
            class_id=np.array([ids[label] - 1 for label in self.labels], dtype=int),
            data={"class_name": np.array(self.labels, dtype=str)},
        )

    def to_coco(self, image_id: int = 0, categories: Sequence[str] | None = None) -> dict[str, Any]:
        """COCO-style keypoint annotations: one ``[x, y, 2]`` keypoint per annotation."""
        names, ids = self._category_ids(categories)
        annotations = [
            {
                "id": i + 1,
                "image_id": image_id,
                "category_id": ids[p.label],
                "keypoints": [float(p.xy[0]), float(p.xy[1]), 2],
                "num_keypoints": 1,
            }
            for i, p in enumerate(self._items)
        ]
        return {
            "images": self._coco_image(image_id),
            "annotations": annotations,
            "categories": [{"id": ids[n], "name": n, "keypoints": ["point"]} for n in names],
        }

    def annotate(self, image: Any) -> PILImage.Image:
        """A copy of ``image`` with the points drawn: labelled, or past a dozen in a legend."""
        from .draw import annotate

        return annotate(image, points=self._items)


def _import_supervision() -> Any:
    try:
        import supervision
    except ImportError:
        raise ImportError(
            "converting to supervision needs the supervision package: pip install supervision"
        ) from None
    return supervision
