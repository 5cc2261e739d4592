from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlgate.errors import ConfigError
from vlgate.grounding import (
    CONVENTIONS,
    Detection,
    Detections,
    Point,
    Points,
    detection_prompt,
    get_convention,
    parse_detections,
    parse_points,
    point_prompt,
)
from vlgate.grounding.render import render_detections, render_points
from vlgate.registry import FAMILIES

Box = tuple[float, float, float, float]

# --- each family's format, shaped like real answers (coords.md Table A) ----------------------

DETECTION_CASES: list[
    tuple[str, str, str, tuple[int, int], tuple[int, int] | None, list[tuple[str, Box]]]
] = [
    (
        "gemini-supervision-example",
        "gemini",
        '```json\n[{"box_2d": [10, 20, 110, 120], "label": "cat"}]\n```',
        (640, 480),
        None,
        [("cat", (12.8, 4.8, 76.8, 52.8))],
    ),
    (
        "gemini-with-mask-and-chatter",
        "gemini",
        'Here are the boxes:\n```json\n[\n  {"box_2d": [0, 0, 500, 250], "label": "dog", '
        '"mask": "data:image/png;base64,iVBOR"}\n]\n```\nLet me know!',
        (1000, 800),
        None,
        [("dog", (0.0, 0.0, 250.0, 400.0))],
    ),
    (
        "qwen2.5-vl-fenced-pixels-of-resized",
        "qwen2.5-vl",
        '```json\n[\n\t{"bbox_2d": [329, 182, 658, 364], "label": "car"}\n]\n```',
        (1920, 1080),
        (1316, 728),
        [("car", (329 * 1920 / 1316, 182 * 1080 / 728, 658 * 1920 / 1316, 364 * 1080 / 728))],
    ),
    (
        "qwen3-vl-relative-1000",
        "qwen3-vl",
        '```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "cup"}, '
        '{"bbox_2d": [500, 500, 1000, 1000], "label": "plate"}]\n```',
        (1000, 500),
        None,
        [("cup", (100.0, 100.0, 300.0, 200.0)), ("plate", (500.0, 250.0, 1000.0, 500.0))],
    ),
    (
        "qwen3-vl-over-1000-clipped",
        "qwen3-vl",
        '[{"bbox_2d": [900, 900, 1012, 1003], "label": "edge"}]',
        (1000, 1000),
        None,
        [("edge", (900.0, 900.0, 1000.0, 1000.0))],
    ),
    (
        "qwen3-vl-truncated",
        "qwen3-vl",
        '```json\n[{"bbox_2d": [100, 100, 200, 200], "label": "a"}, '
        '{"bbox_2d": [300, 300, 400, 400], "label": "b"}, {"bbox_2d": [500, 5',
        (1000, 1000),
        None,
        [("a", (100.0, 100.0, 200.0, 200.0)), ("b", (300.0, 300.0, 400.0, 400.0))],
    ),
    (
        "qwen3-vl-single-quotes",
        "qwen3-vl",
        "[{'bbox_2d': [100, 100, 200, 200], 'label': 'mug'}]",
        (1000, 1000),
        None,
        [("mug", (100.0, 100.0, 200.0, 200.0))],
    ),
    (
        "qwen2-vl-special-tokens",
        "qwen2-vl",
        "<|object_ref_start|>the red cup<|object_ref_end|><|box_start|>(100,200),(300,400)"
        "<|box_end|>",
        (2000, 1000),
        None,
        [("the red cup", (200.0, 200.0, 600.0, 400.0))],
    ),
    (
        "qwen2-vl-tokens-stripped",
        "qwen2-vl",
        "the red cup(100,200),(300,400)",
        (2000, 1000),
        None,
        [("the red cup", (200.0, 200.0, 600.0, 400.0))],
    ),
    (
        "paligemma-two-objects",
        "paligemma",
        "<loc0123><loc0456><loc0789><loc1000> cat ; <loc0000><loc0000><loc0512><loc0512> dog",
        (1024, 2048),
        None,
        [("cat", (456.0, 246.0, 1000.0, 1578.0)), ("dog", (0.0, 0.0, 512.0, 1024.0))],
    ),
    (
        "florence-2-bin-centres",
        "florence-2",
        "</s><s>car<loc_52><loc_333><loc_932><loc_774></s>",
        (1000, 500),
        None,
        [("car", (52.5, 166.75, 932.5, 387.25))],
    ),
    (
        "florence-2-od-several",
        "florence-2",
        "car<loc_0><loc_0><loc_499><loc_499>car<loc_500><loc_500><loc_999><loc_999>wheel"
        "<loc_100><loc_600><loc_199><loc_699>",
        (1000, 1000),
        None,
        [
            ("car", (0.5, 0.5, 499.5, 499.5)),
            ("car", (500.5, 500.5, 999.5, 999.5)),
            ("wheel", (100.5, 600.5, 199.5, 699.5)),
        ],
    ),
    (
        "deepseek-vl2-999",
        "deepseek-vl2",
        "<|ref|>cat<|/ref|><|det|>[[10,20,300,400]]<|/det|>",
        (999, 1998),
        None,
        [("cat", (10.0, 40.0, 300.0, 800.0))],
    ),
    (
        "deepseek-vl2-two-boxes-odd-list-dropped",
        "deepseek-vl2",
        "<|ref|>cup<|/ref|><|det|>[[0,0,999,999],[1,2,3],[0,0,333,333]]<|/det|>",
        (999, 999),
        None,
        [("cup", (0.0, 0.0, 999.0, 999.0)), ("cup", (0.0, 0.0, 333.0, 333.0))],
    ),
    (
        "internvl-ref-box",
        "internvl",
        "<ref>cat</ref><box>[[100, 200, 300, 400]]</box>",
        (2000, 1000),
        None,
        [("cat", (200.0, 200.0, 600.0, 400.0))],
    ),
    (
        "glm-4v-begin-of-box",
        "glm-4v",
        "The cup is at <|begin_of_box|>[[100,200,300,400]]<|end_of_box|>",
        (1000, 1000),
        None,
        [("The cup is at", (100.0, 200.0, 300.0, 400.0))],
    ),
    (
        "moondream-objects",
        "moondream",
        '{"objects": [{"x_min": 0.1, "y_min": 0.2, "x_max": 0.3, "y_max": 0.4}]}',
        (640, 480),
        None,
        [("", (64.0, 96.0, 192.0, 192.0))],
    ),
    (
        "kimi-vl-unit-floats",
        "kimi-vl",
        '{"bbox_2d": [0.280, 0.500, 0.520, 0.700], "label": "button"}',
        (1000, 1000),
        None,
        [("button", (280.0, 500.0, 520.0, 700.0))],
    ),
    (
        "claude-pixels-of-seen-image",
        "claude",
        'I found one mug.\n[{"label": "mug", "bbox": [728, 409.5, 1456, 819]}]',
        (1920, 1080),
        (1456, 819),
        [("mug", (960.0, 540.0, 1920.0, 1080.0))],
    ),
    (
        "gpt-wrapper-and-scores",
        "gpt",
        '{"detections": [{"label": "cup", "bbox": [10, 10, 50, 50], "confidence": 0.9}]}',
        (200, 100),
        (100, 50),
        [("cup", (20.0, 20.0, 100.0, 100.0))],
    ),
    (
        "pixel-inverted-corners-swapped",
        "pixel",
        '[{"label": "a", "bbox": [50, 60, 10, 20]}]',
        (100, 100),
        None,
        [("a", (10.0, 20.0, 50.0, 60.0))],
    ),
    (
        "pixel-zero-area-dropped-and-clipped",
        "pixel",
        '[{"label": "a", "bbox": [5, 5, 5, 50]}, {"label": "b", "bbox": [-10, -10, 150, 50]}]',
        (100, 100),
        None,
        [("b", (0.0, 0.0, 100.0, 50.0))],
    ),
    (
        "normalized-unit",
        "normalized",
        '[{"label": "x", "bbox": [0.25, 0.5, 0.75, 1.0]}]',
        (400, 200),
        None,
        [("x", (100.0, 100.0, 300.0, 200.0))],
    ),
    (
        "normalized-1000-label-map",
        "normalized-1000",
        '{"cup": [0, 0, 500, 500], "plate": [[500, 500, 1000, 1000]]}',
        (200, 200),
        None,
        [("cup", (0.0, 0.0, 100.0, 100.0)), ("plate", (100.0, 100.0, 200.0, 200.0))],
    ),
    (
        "llava-padded-square",
        "llava",
        "[0.25, 0.375, 0.75, 0.625]",
        (800, 400),
        None,
        [("", (200.0, 100.0, 600.0, 300.0))],
    ),
    (
        "bare-nested-lists-missing-labels",
        "qwen3-vl",
        "[[100, 100, 200, 200], [300, 300, 400, 400]]",
        (1000, 1000),
        None,
        [("", (100.0, 100.0, 200.0, 200.0)), ("", (300.0, 300.0, 400.0, 400.0))],
    ),
    (
        "corner-keys-and-string-numbers",
        "normalized-1000",
        '[{"label": "k", "xmin": "100", "ymin": "200", "xmax": "300", "ymax": "400"}]',
        (1000, 1000),
        None,
        [("k", (100.0, 200.0, 300.0, 400.0))],
    ),
    (
        "corner-pairs",
        "qwen3-vl",
        '[{"bbox_2d": [[100, 200], [300, 400]], "label": "p"}]',
        (1000, 1000),
        None,
        [("p", (100.0, 200.0, 300.0, 400.0))],
    ),
]


@pytest.mark.parametrize(
    ("convention", "text", "size", "seen", "expected"),
    [c[1:] for c in DETECTION_CASES],
    ids=[c[0] for c in DETECTION_CASES],
)
def test_parse_detections(
    convention: str,
    text: str,
    size: tuple[int, int],
    seen: tuple[int, int] | None,
    expected: list[tuple[str, Box]],
) -> None:
    found = parse_detections(text, convention, size, model_input_size=seen)
    assert [d.label for d in found] == [label for label, _ in expected]
    for det, (_, box) in zip(found, expected, strict=True):
        assert det.xyxy == pytest.approx(box, abs=1e-6)
        assert det.convention == convention
        assert det.raw is not None and len(det.raw) == 4


def test_raw_values_and_score_kept() -> None:
    (det,) = parse_detections(
        '[{"box_2d": [10, 20, 110, 120], "label": "cat", "score": 0.75}]', "gemini", (640, 480)
    )
    assert det.raw == (10.0, 20.0, 110.0, 120.0)
    assert det.score == 0.75


def test_default_label_used_when_missing() -> None:
    (det,) = parse_detections("[[0, 0, 500, 500]]", "qwen3-vl", (100, 100), default_label="cup")
    assert det.label == "cup"


POINT_CASES: list[
    tuple[
        str,
        str,
        str,
        tuple[int, int],
        tuple[int, int] | None,
        list[tuple[str, tuple[float, float]]],
    ]
] = [
    (
        "molmo-point",
        "molmo",
        'Sure. <point x="61.5" y="40.6" alt="cup">cup</point>',
        (1000, 500),
        None,
        [("cup", (615.0, 203.0))],
    ),
    (
        "molmo-points-multi",
        "molmo",
        '<points x1="10.0" y1="20.0" x2="30.5" y2="40.0" alt="cups">cups</points>',
        (1000, 1000),
        None,
        [("cups", (100.0, 200.0)), ("cups", (305.0, 400.0))],
    ),
    (
        "molmo2-coords-1000",
        "molmo",
        '<points coords="1 1 610 406 2 200 300" alt="cup">cup</points>',
        (1000, 500),
        None,
        [("cup", (610.0, 203.0)), ("cup", (200.0, 150.0))],
    ),
    (
        "gemini-point-yx",
        "gemini",
        '```json\n[{"point": [250, 500], "label": "knob"}]\n```',
        (640, 480),
        None,
        [("knob", (320.0, 120.0))],
    ),
    (
        "qwen2.5-vl-point-2d-pixels",
        "qwen2.5-vl",
        '```json\n[{"point_2d": [658, 364], "label": "handle"}]\n```',
        (1920, 1080),
        (1316, 728),
        [("handle", (960.0, 540.0))],
    ),
    (
        "qwen2.5-vl-xml-points",
        "qwen2.5-vl",
        '<points x1="658" y1="364" alt="handle">handle</points>',
        (1920, 1080),
        (1316, 728),
        [("handle", (960.0, 540.0))],
    ),
    (
        "moondream-points",
        "moondream",
        '{"points": [{"x": 0.5, "y": 0.25}, {"x": 0.1, "y": 0.9}]}',
        (640, 480),
        None,
        [("", (320.0, 120.0)), ("", (64.0, 432.0))],
    ),
    (
        "pixel-point",
        "pixel",
        '[{"label": "tip", "point": [40, 30]}]',
        (800, 600),
        (400, 300),
        [("tip", (80.0, 60.0))],
    ),
    (
        "box-only-family-gives-centres",
        "paligemma",
        "<loc0000><loc0000><loc0512><loc0512> cat",
        (1024, 1024),
        None,
        [("cat", (256.0, 256.0))],
    ),
    (
        "boxes-answer-to-point-question",
        "qwen3-vl",
        '[{"bbox_2d": [0, 0, 500, 500], "label": "a"}]',
        (1000, 1000),
        None,
        [("a", (250.0, 250.0))],
    ),
    (
        "points-clipped",
        "normalized",
        '[{"label": "p", "point": [1.2, -0.1]}]',
        (100, 100),
        None,
        [("p", (100.0, 0.0))],
    ),
]


@pytest.mark.parametrize(
    ("convention", "text", "size", "seen", "expected"),
    [c[1:] for c in POINT_CASES],
    ids=[c[0] for c in POINT_CASES],
)
def test_parse_points(
    convention: str,
    text: str,
    size: tuple[int, int],
    seen: tuple[int, int] | None,
    expected: list[tuple[str, tuple[float, float]]],
) -> None:
    found = parse_points(text, convention, size, model_input_size=seen)
    assert [p.label for p in found] == [label for label, _ in expected]
    for pt, (_, xy) in zip(found, expected, strict=True):
        assert pt.xy == pytest.approx(xy, abs=1e-6)
        assert pt.convention == convention


# --- nothing usable parses to [] -------------------------------------------------------------

NOTHING = [
    "",
    "I'm sorry, I can't identify objects in this image.",
    "There is no cup in the image.",
    "[]",
    "```json\n[]\n```",
    '{"objects": []}',
    "{not json at all",
    '[{"label": "cup"}]',
    '[{"bbox_2d": [1, 2, 3], "label": "short"}]',
    '[{"bbox_2d": "10,20,30,40"}]',
    "<|det|><|/det|>",
    "<loc0012> cat",
    '[{"bbox_2d": [NaN, 1, 2, 3]}]',
]


@pytest.mark.parametrize("text", NOTHING, ids=range(len(NOTHING)))
@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_nothing_usable_parses_to_empty(text: str, convention: str) -> None:
    assert parse_detections(text, convention, (640, 480)) == []
    assert parse_points(text, convention, (640, 480)) == []


def test_non_string_answer_is_empty() -> None:
    assert parse_detections(None, "gemini", (10, 10)) == []  # type: ignore[arg-type]


# --- round trip: pixels -> native text -> parse -> pixels, for every convention --------------


def _tolerance(name: str, size: tuple[int, int], seen: tuple[int, int]) -> float:
    conv = get_convention(name)
    if conv.scale == "pixels":
        return max(size[0] / seen[0], size[1] / seen[1])
    resolution = 1000.0 if float(conv.scale) <= 100 else float(conv.scale)
    return max(size) / resolution * 1.01


ROUND_TRIP_SIZES = [
    ((640, 480), (644, 476)),
    ((3024, 4032), (840, 1148)),
    ((1920, 1080), (1456, 819)),
]


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
@pytest.mark.parametrize(("size", "seen"), ROUND_TRIP_SIZES, ids=["vga", "portrait-12mp", "1080p"])
def test_round_trip_boxes(name: str, size: tuple[int, int], seen: tuple[int, int]) -> None:
    conv = get_convention(name)
    if not conv.boxes:
        pytest.skip(f"{name} has no boxes")
    rng = random.Random(hash((name, size)) & 0xFFFF)
    w, h = size
    boxes = []
    for i in range(3):
        x1, y1 = rng.uniform(0, w * 0.6), rng.uniform(0, h * 0.6)
        x2, y2 = x1 + rng.uniform(w * 0.05, w * 0.4), y1 + rng.uniform(h * 0.05, h * 0.4)
        boxes.append(Detection(f"thing {i}", (x1, y1, x2, y2)))
    text = render_detections(name, boxes, size, seen)
    found = parse_detections(text, name, size, model_input_size=seen)
    assert len(found) == len(boxes), text
    tol = _tolerance(name, size, seen)
    for got, want in zip(found, boxes, strict=True):
        assert got.xyxy == pytest.approx(want.xyxy, abs=tol), text
        if name not in ("glm-4v", "llava", "moondream"):  # these formats carry no label
            assert got.label == want.label


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_round_trip_points(name: str) -> None:
    size, seen = (1920, 1080), (1316, 728)
    pts = [Point("a", (100.0, 900.0)), Point("b", (1500.0, 80.0))]
    text = render_points(name, pts, size, seen)
    found = parse_points(text, name, size, model_input_size=seen)
    assert len(found) == 2, text
    tol = _tolerance(name, size, seen) * 1.5
    for got, want in zip(found, pts, strict=True):
        assert got.xy == pytest.approx(want.xy, abs=tol), text


# --- prompts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("convention", "needles"),
    [
        ("qwen2.5-vl", ["Locate every red cup in the image", "bbox_2d", "JSON"]),
        ("qwen3-vl", ["Locate every red cup in the image", "bbox_2d"]),
        ("gemini", ["box_2d", "[ymin, xmin, ymax, xmax]", "0-1000"]),
        ("paligemma", ["detect red cup"]),
        ("florence-2", ["<CAPTION_TO_PHRASE_GROUNDING>red cup"]),
        ("deepseek-vl2", ["<|ref|>red cup<|/ref|>"]),
        ("internvl", ["<ref>red cup</ref>"]),
        ("qwen2-vl", ["<|object_ref_start|>red cup<|object_ref_end|>"]),
        ("claude", ["red cup", "1456 pixels wide and 819 pixels high", '"bbox"']),
        ("gpt", ["1456 pixels wide and 819 pixels high"]),
        ("pixel", ["pixels of this image"]),
        ("moondream", ["x_min", "0-1"]),
        ("normalized-1000", ["0 to 1000"]),
    ],
)
def test_detection_prompts(convention: str, needles: list[str]) -> None:
    prompt = detection_prompt(convention, "  red   cup ", (1456, 819))
    for needle in needles:
        assert needle in prompt


def test_prompt_details() -> None:
    assert detection_prompt("florence-2", "") == "<OD>"
    assert "{" not in detection_prompt("gemini", "cup").replace('{"', "")  # no stray fields
    assert "pixels wide" not in detection_prompt("claude", "cup")  # size unknown: not stated
    assert "pixels wide" not in detection_prompt("gemini", "cup", (100, 100))
    assert point_prompt("molmo", "mug") == "Point to every mug in the image."
    assert '"point" as [y, x]' in point_prompt("gemini", "mug")
    assert "point_2d" in point_prompt("qwen2.5-vl", "mug")
    assert point_prompt("paligemma", "mug") == "detect mug"  # box-only: centres are used
    assert detection_prompt(get_convention("gemini"), "mug") == detection_prompt("gemini", "mug")
    with pytest.raises(ConfigError, match="point"):
        detection_prompt("molmo", "mug")
    with pytest.raises(ConfigError, match="unknown grounding convention"):
        detection_prompt("nope", "mug")


# --- the registry and the conventions agree ------------------------------------------------


def test_every_family_has_a_convention() -> None:
    for family in FAMILIES.values():
        assert family.grounding in CONVENTIONS, family.name
    required = {
        "qwen2-vl", "qwen2.5-vl", "qwen3-vl", "gemini", "claude", "gpt", "moondream",
        "florence-2", "paligemma", "deepseek-vl2", "internvl", "glm-4v", "molmo", "kimi-vl",
        "pixel", "normalized", "normalized-1000",
    }  # fmt: skip
    assert required <= set(CONVENTIONS)


def test_pixel_frames_are_the_resize_sensitive_families() -> None:
    sensitive = {name for name, c in CONVENTIONS.items() if c.resize_sensitive}
    assert sensitive == {"qwen2.5-vl", "claude", "gpt", "pixel"}
    for family in FAMILIES.values():
        if family.resize is not None:
            assert CONVENTIONS[family.grounding].resize_sensitive, family.name


# --- robustness: never raises, bounded time -------------------------------------------------

FUZZ_ALPHABET = [
    *list("[]{}(),:;\"' 0123456789.-\n`<>|/_=xyabcdeflmnoprst"),
    "<loc_",
    "<loc0",
    "<|det|>",
    "<|/det|>",
    "<|ref|>",
    "<|box_start|>",
    "<box>",
    "<ref>",
    "<point ",
    'x="',
    "bbox_2d",
    "box_2d",
    "point",
    "```json",
    "<|begin_of_box|>",
    "coords=",
]


def test_fuzz_random_text_never_raises() -> None:
    rng = random.Random(1234)
    names = sorted(CONVENTIONS)
    for _ in range(600):
        text = "".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(0, 60)))
        name = rng.choice(names)
        for det in parse_detections(text, name, (640, 480), (644, 476)):
            x1, y1, x2, y2 = det.xyxy
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
        for pt in parse_points(text, name, (640, 480), (644, 476)):
            assert 0 <= pt.xy[0] <= 640 and 0 <= pt.xy[1] <= 480


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300), name=st.sampled_from(sorted(CONVENTIONS)))
def test_hypothesis_any_text_parses_to_a_list(text: str, name: str) -> None:
    assert isinstance(parse_detections(text, name, (100, 100)), Detections)
    assert isinstance(parse_points(text, name, (100, 100)), Points)


ADVERSARIAL = [
    ("[" * 500_000, "qwen3-vl"),
    ("(" * 500_000, "qwen2-vl"),
    (" " * 500_000 + "<box>", "internvl"),
    ("<ref>" * 100_000, "internvl"),
    ("<loc_1>" * 100_000, "florence-2"),
    ("<loc0001>" * 100_000, "paligemma"),
    ("a" * 500_000 + "<loc_1><loc_2>", "florence-2"),
    ("<|object_ref_start|>" * 50_000, "qwen2-vl"),
    ("(1,2),(3," * 60_000, "qwen2-vl"),
    ('<point x="1" ' * 40_000, "molmo"),
    ("<|det|>[[" * 60_000, "deepseek-vl2"),
    ("<|begin_of_box|>[" * 30_000, "glm-4v"),
    ('[{"bbox_2d": [' * 30_000, "qwen2.5-vl"),
]


@pytest.mark.parametrize(
    ("adversarial", "name"), ADVERSARIAL, ids=[f"{n}-{a[:8]!r}" for a, n in ADVERSARIAL]
)
def test_bounded_time_on_adversarial_answers(adversarial: str, name: str) -> None:
    start = time.process_time()  # CPU time: robust on a busy machine
    parse_detections(adversarial, name, (640, 480))
    parse_points(adversarial, name, (640, 480))
    assert time.process_time() - start < 2.0


# --- agreement with the emulator's independent writer ---------------------------------------

EXTRA_POINT_CASES = [
    ("qwen2-vl", "<|object_ref_start|>cup<|object_ref_end|><|box_start|>(500,250)<|box_end|>"),
    ("deepseek-vl2", "<|ref|>cup<|/ref|><|det|>[[500, 250]]<|/det|>"),
    ("internvl", "<ref>cup</ref><point>[[500, 250]]</point>"),
    ("glm-4v", "cup: <|begin_of_box|>[[500,250]]<|end_of_box|>"),
    ("florence-2", "cup<loc_500><loc_250>"),
    ("paligemma", "<loc0256><loc0512> cup"),
]


@pytest.mark.parametrize(("name", "text"), EXTRA_POINT_CASES, ids=[c[0] for c in EXTRA_POINT_CASES])
def test_two_number_points_in_box_syntaxes(name: str, text: str) -> None:
    (pt,) = parse_points(text, name, (1000, 1000))
    assert pt.label == "cup"
    assert pt.xy == pytest.approx((500, 250), abs=1.0)


def _emulator_families() -> list[str]:
    try:
        from vlgate.testing import families
    except ImportError:  # pragma: no cover - the emulator needs aiohttp
        return []
    return [f.name for f in families.FAMILIES]


@pytest.mark.parametrize("fam_name", _emulator_families())
@pytest.mark.parametrize("size", [(640, 480), (1080, 1920), (4032, 3024)], ids=str)
def test_parses_what_the_emulator_writes(fam_name: str, size: tuple[int, int]) -> None:
    from vlgate.testing import families

    fam = next(f for f in families.FAMILIES if f.name == fam_name)
    from vlgate.registry import FAMILIES

    # The emulator's family name -> the convention vlgate parses it with (the registry's row).
    name = FAMILIES[fam_name].grounding if fam_name in FAMILIES else fam_name
    seen = fam.frame.model_size(size)
    w, h = size
    boxes = [
        ("red circle", (w * 0.1, h * 0.2, w * 0.3, h * 0.5)),
        ("blue square", (w * 0.6, h * 0.6, w * 0.9, h * 0.95)),
    ]
    tol = _tolerance(name, size, seen) * 1.5
    if get_convention(name).boxes:
        found = parse_detections(families.format_boxes(fam, boxes, size), name, size, seen)
        assert [d.xyxy for d in found] == [pytest.approx(b, abs=tol) for _, b in boxes]
    pts = [(label, ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)) for label, b in boxes]
    found_pts = parse_points(families.format_points(fam, pts, size), name, size, seen)
    assert [p.xy for p in found_pts] == [pytest.approx(p, abs=tol) for _, p in pts]
