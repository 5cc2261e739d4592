from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from vlgate.grounding import Detection, Detections, Point, Points, parse_detections, parse_points

HAS_SV = importlib.util.find_spec("supervision") is not None


@pytest.fixture
def dets() -> Detections:
    return Detections(
        [
            Detection(
                "cup", (10.0, 20.0, 110.0, 70.0), score=0.9, raw=(1, 2, 3, 4), convention="x"
            ),
            Detection("plate", (200.0, 100.0, 300.0, 200.0), score=0.5),
            Detection("cup", (400.0, 300.0, 420.0, 330.0), score=0.7),
        ],
        image_size=(640, 480),
    )


def test_detection_properties() -> None:
    d = Detection("a", (10.0, 20.0, 110.0, 70.0))
    assert (d.width, d.height, d.area, d.center) == (100.0, 50.0, 5000.0, (60.0, 45.0))
    with pytest.raises(AttributeError):
        d.label = "b"  # type: ignore[misc]


def test_detections_is_an_immutable_sequence(dets: Detections) -> None:
    assert len(dets) == 3
    assert dets[1].label == "plate"
    assert dets[-1].xyxy == (400.0, 300.0, 420.0, 330.0)
    assert [d.label for d in dets] == ["cup", "plate", "cup"]
    assert dets.index(dets[1]) == 1
    assert dets.labels == ["cup", "plate", "cup"]
    assert dets.scores == [0.9, 0.5, 0.7]
    head = dets[:2]
    assert isinstance(head, Detections) and len(head) == 2 and head.image_size == (640, 480)
    assert dets == list(dets)
    assert not hasattr(dets, "append")
    with pytest.raises(TypeError):
        dets[0] = dets[1]  # type: ignore[index]
    assert "Detections(" in repr(dets)


def test_xyxy_array(dets: Detections) -> None:
    arr = dets.xyxy
    assert arr.shape == (3, 4) and arr.dtype == np.float64
    assert arr[1].tolist() == [200.0, 100.0, 300.0, 200.0]
    assert Detections([]).xyxy.shape == (0, 4)
    assert Points([]).xy.shape == (0, 2)


def test_to_coco(dets: Detections) -> None:
    coco = dets.to_coco(image_id=7)
    assert coco["images"] == [{"id": 7, "width": 640, "height": 480}]
    assert coco["categories"] == [{"id": 1, "name": "cup"}, {"id": 2, "name": "plate"}]
    first = coco["annotations"][0]
    assert first["bbox"] == [10.0, 20.0, 100.0, 50.0]
    assert first["area"] == 5000.0
    assert first["image_id"] == 7 and first["score"] == 0.9
    assert [a["category_id"] for a in coco["annotations"]] == [1, 2, 1]
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3]
    fixed = dets.to_coco(categories=["plate", "bowl", "cup"])
    assert [a["category_id"] for a in fixed["annotations"]] == [3, 1, 3]
    assert [c["name"] for c in fixed["categories"]] == ["plate", "bowl", "cup"]
    json.dumps(coco)  # plain data


def test_to_json_round_trips(dets: Detections) -> None:
    data = json.loads(dets.to_json())
    assert data["image_size"] == [640, 480]
    assert data["items"][0] == {
        "label": "cup",
        "xyxy": [10.0, 20.0, 110.0, 70.0],
        "score": 0.9,
        "raw": [1, 2, 3, 4],
        "convention": "x",
    }
    assert dets.to_dict()["items"][1]["raw"] is None
    assert data["dropped"] == 0


def test_to_dict_says_how_many_entries_were_unreadable() -> None:
    dets = parse_detections(
        '[{"bbox_2d": [1, 2, 30, 40], "label": "a"}, {"bbox_2d": [1, 2, 3]}]', "qwen3-vl", (64, 48)
    )
    assert (len(dets), dets.to_dict()["dropped"]) == (1, 1)
    assert json.loads(dets.to_json())["dropped"] == 1
    pts = parse_points('<point x="10" alt="a">a</point>', "molmo", (64, 48))
    assert pts.to_dict() == {"image_size": [64, 48], "items": [], "dropped": 1}


def test_points() -> None:
    pts = Points([Point("tip", (5.0, 6.0)), Point("base", (50.0, 60.0))], image_size=(64, 48))
    assert pts.xy.tolist() == [[5.0, 6.0], [50.0, 60.0]]
    assert pts.labels == ["tip", "base"]
    coco = pts.to_coco()
    assert coco["annotations"][1]["keypoints"] == [50.0, 60.0, 2]
    assert coco["categories"][0]["name"] == "tip"
    assert json.loads(pts.to_json())["items"][0]["xy"] == [5.0, 6.0]


@pytest.mark.skipif(HAS_SV, reason="supervision is installed")
def test_to_supervision_names_the_package(dets: Detections) -> None:
    with pytest.raises(ImportError, match="pip install supervision"):
        dets.to_supervision()
    with pytest.raises(ImportError, match="pip install supervision"):
        Points([Point("a", (1.0, 1.0))]).to_supervision()


@pytest.mark.skipif(not HAS_SV, reason="supervision is not installed")
def test_to_supervision(dets: Detections) -> None:
    svd = dets.to_supervision()
    assert svd.xyxy.shape == (3, 4)
    assert svd.class_id.tolist() == [0, 1, 0]
    assert list(svd.data["class_name"]) == ["cup", "plate", "cup"]
    assert svd.confidence is not None


# --- annotate --------------------------------------------------------------------------------


def _grey(w: int, h: int) -> PILImage.Image:
    return PILImage.new("RGB", (w, h), (128, 128, 128))


@pytest.mark.parametrize("size", [(64, 48), (640, 480), (4032, 3024), (300, 1200)])
def test_annotate_draws_box_outline_and_label(size: tuple[int, int]) -> None:
    w, h = size
    box = (w * 0.25, h * 0.25, w * 0.75, h * 0.75)
    dets = Detections([Detection("cup", box)], image_size=size)
    src = _grey(w, h)
    out = dets.annotate(src)
    assert out.size == size and out is not src
    assert src.getpixel((w // 4, h // 2)) == (128, 128, 128)  # the input is untouched
    arr = np.asarray(out)
    # The left edge of the box is drawn in a non-grey colour; the box interior stays grey.
    edge = arr[h // 2, int(box[0]) : int(box[0]) + 1].reshape(-1, 3)
    assert (edge != 128).any()
    assert tuple(arr[int(h * 0.6), w // 2]) == (128, 128, 128)
    # A label background sits just above the top-left corner.
    above = arr[max(0, int(box[1]) - 3), int(box[0]) + 2]
    assert tuple(above) != (128, 128, 128)


def test_annotate_line_width_scales_with_image() -> None:
    def drawn_width(w: int, h: int) -> int:
        dets = Detections([Detection("a", (w * 0.2, h * 0.2, w * 0.8, h * 0.8))])
        row = np.asarray(dets.annotate(_grey(w, h)))[h // 2]
        return int((row != 128).any(axis=1).sum())

    assert drawn_width(4000, 3000) > 3 * drawn_width(400, 300)


def test_annotate_distinct_colours_per_label() -> None:
    dets = Detections(
        [
            Detection("a", (10, 10, 100, 100)),
            Detection("b", (150, 10, 250, 100)),
            Detection("a", (10, 150, 100, 250)),
        ]
    )
    arr = np.asarray(dets.annotate(_grey(300, 300)))
    a1, b, a2 = tuple(arr[50, 10]), tuple(arr[50, 150]), tuple(arr[200, 10])
    assert a1 == a2 and a1 != b


def test_annotate_numpy_rgba_and_points() -> None:
    arr = np.full((100, 200, 4), 128, dtype=np.uint8)
    out = Points([Point("p", (100.0, 50.0))]).annotate(arr)
    assert out.size == (200, 100) and out.mode == "RGB"
    assert tuple(np.asarray(out)[50, 100]) != (128, 128, 128)


def test_annotate_accepts_a_path(tmp_path: Path) -> None:
    path = tmp_path / "img.png"
    _grey(120, 80).save(path)
    out = Detections([Detection("x", (10, 10, 60, 60))]).annotate(str(path))
    assert out.size == (120, 80)
    assert tuple(np.asarray(out)[30, 10]) != (128, 128, 128)


def test_annotate_nothing_is_a_copy() -> None:
    src = _grey(50, 40)
    out = Detections([]).annotate(src)
    assert np.array_equal(np.asarray(out), np.asarray(src))
