"""Issue 20 (labels from every real shape, strict where guessing is wrong) and issue 9 item 1
(bounded numbers, clean labels): each case failed before the parser rewrite."""

from __future__ import annotations

import pytest

from vlgate.grounding import parse_detections, parse_points
from vlgate.grounding.labels import MAX_LABEL, clean_label

SIZE = (1000, 1000)
Box = tuple[float, float, float, float]

# (id, convention, answer, expected [(label, box)], expected dropped)
LABELS: list[tuple[str, str, str, list[tuple[str, Box]], int]] = [
    (
        "label-first-arrays-with-chatter",
        "qwen3-vl",
        'Sure! Here you go: [["cup", 100, 200, 300, 400], ["plate", 500, 500, 900, 900]] '
        "Hope that helps.",
        [("cup", (100, 200, 300, 400)), ("plate", (500, 500, 900, 900))],
        0,
    ),
    (
        "label-first-arrays-one-per-line",
        "pixel",
        'Detections:\n["cup", 10, 20, 30, 40]\n["mug", 50, 60, 70, 80]\nDone.',
        [("cup", (10, 20, 30, 40)), ("mug", (50, 60, 70, 80))],
        0,
    ),
    (
        "label-last-array",
        "qwen3-vl",
        '[[100, 200, 300, 400, "cup"]]',
        [("cup", (100, 200, 300, 400))],
        0,
    ),
    (
        "label-then-box-list",
        "qwen3-vl",
        '[["cup", [100, 200, 300, 400]]]',
        [("cup", (100, 200, 300, 400))],
        0,
    ),
    (
        "every-label-key",
        "qwen3-vl",
        '[{"object": "a", "bbox_2d": [1, 2, 300, 400]}, {"name": "b", "bbox": [5, 6, 700, 800]},'
        ' {"category": "c", "box_2d": [1, 1, 9, 9]}, {"class": "d", "bbox": [1, 1, 5, 5]},'
        ' {"text": "e", "bbox_2d": [1, 1, 5, 5]}, {"text_content": "f", "bbox_2d": [1, 1, 5, 5]}]',
        [
            ("a", (1, 2, 300, 400)),
            ("b", (5, 6, 700, 800)),
            ("c", (1, 1, 9, 9)),
            ("d", (1, 1, 5, 5)),
            ("e", (1, 1, 5, 5)),
            ("f", (1, 1, 5, 5)),
        ],
        0,
    ),
    (
        "bboxes-list-under-one-label",
        "qwen3-vl",
        '{"label": "cup", "bboxes": [[1, 2, 300, 400], [500, 500, 600, 600]]}',
        [("cup", (1, 2, 300, 400)), ("cup", (500, 500, 600, 600))],
        0,
    ),
    (
        "glm-box-tokens-around-json-objects",
        "glm-4v",
        'Found them: <|begin_of_box|>[{"label": "cat", "bbox_2d": [1, 2, 300, 400]}, '
        '{"label": "dog", "bbox_2d": [500, 500, 600, 600]}]<|end_of_box|>',
        [("cat", (1, 2, 300, 400)), ("dog", (500, 500, 600, 600))],
        0,
    ),
    (
        "glm-one-object-per-box",
        "glm-4v",
        'The cat <|begin_of_box|>{"label": "cat", "bbox_2d": [1, 2, 300, 400]}<|end_of_box|> '
        'and <|begin_of_box|>{"label": "dog", "bbox_2d": [500, 500, 600, 600]}<|end_of_box|>',
        [("cat", (1, 2, 300, 400)), ("dog", (500, 500, 600, 600))],
        0,
    ),
    (
        "deepseek-garbled-ref-close-missing-and-truncated",
        "deepseek-vl2",
        "<|ref|>cat<|/ref|><|det|>[[1,2,300,400]]<|/det|><|ref|>dog<|det|>[[500,500,600,600]]"
        "<|/det|><|ref|>bird<|/ref|><|det|>[[1,2,3",
        [("cat", (1.0, 2.0, 300.3, 400.4)), ("dog", (500.5, 500.5, 600.6, 600.6))],
        1,
    ),
    (
        "qwen2-refs-paired-truncated-box-dropped",
        "qwen2-vl",
        "<|object_ref_start|>cat<|object_ref_end|><|box_start|>(1,2),(300,400)<|box_end|>"
        "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(5,5),(600",
        [("cat", (1, 2, 300, 400))],
        1,
    ),
    (
        "label-verbatim-apart-from-edges",
        "qwen3-vl",
        '[{"label": "  \\"Mr. T\'s  mug.\\" ", "bbox_2d": [1, 2, 300, 400]}]',
        [("Mr. T's  mug.", (1, 2, 300, 400))],
        0,
    ),
]


@pytest.mark.parametrize(
    ("convention", "text", "expected", "dropped"),
    [c[1:] for c in LABELS],
    ids=[c[0] for c in LABELS],
)
def test_labels_from_every_shape(
    convention: str, text: str, expected: list[tuple[str, Box]], dropped: int
) -> None:
    found = parse_detections(text, convention, SIZE)
    assert [(d.label, d.xyxy) for d in found] == [
        (label, pytest.approx(box, abs=0.1)) for label, box in expected
    ]
    assert found.dropped == dropped


STRICT: list[tuple[str, str, str, int, int]] = [
    # (id, convention, answer, boxes kept, dropped)
    (
        "paligemma-five-locations",
        "paligemma",
        "<loc0100><loc0100><loc0200><loc0200><loc0300> cat",
        0,
        1,
    ),
    ("paligemma-four-without-label", "paligemma", "<loc0100><loc0100><loc0200><loc0200>", 0, 1),
    (
        "paligemma-one-good-one-unlabelled",
        "paligemma",
        "<loc0100><loc0100><loc0200><loc0200> cat ; <loc0300><loc0300><loc0400><loc0400>",
        1,
        1,
    ),
    (
        "truncated-before-label-not-kept",
        "qwen3-vl",
        '[{"bbox_2d": [100, 100, 200, 200], "label": "a"}, {"bbox_2d": [300, 300, 400, 400], "lab',
        1,
        1,
    ),
    (
        "three-numbers-and-no-coordinates",
        "qwen3-vl",
        '[{"bbox_2d": [100, 100, 200, 200], "label": "a"}, {"bbox_2d": [1, 2, 3]}, {"label": "x"}]',
        1,
        2,
    ),
    (
        "deepseek-odd-list",
        "deepseek-vl2",
        "<|ref|>cat<|/ref|><|det|>[[1,2,300,400],[5,5,9]]<|/det|>",
        1,
        1,
    ),
    ("florence-odd-run", "florence-2", "car<loc_1><loc_2><loc_3><loc_4><loc_5>", 1, 1),
    ("label-first-wrong-count", "qwen3-vl", '[["cup", 1, 2, 3], ["mug", 1, 2, 300, 400]]', 1, 1),
    ("molmo-point-missing-y", "molmo", '<point x="10" alt="a">a</point>', 0, 1),
    ("nothing-found-is-not-dropped", "qwen3-vl", "There is no cup in this image.", 0, 0),
    ("empty-list-is-not-dropped", "gemini", "```json\n[]\n```", 0, 0),
]


@pytest.mark.parametrize(
    ("convention", "text", "kept", "dropped"), [c[1:] for c in STRICT], ids=[c[0] for c in STRICT]
)
def test_malformed_items_are_dropped_and_counted(
    convention: str, text: str, kept: int, dropped: int
) -> None:
    if convention == "molmo":
        result = parse_points(text, convention, SIZE)
    else:
        result = parse_detections(text, convention, SIZE)  # type: ignore[assignment]
    assert (len(result), result.dropped) == (kept, dropped)


def test_points_count_drops_and_take_labels_from_lists() -> None:
    pts = parse_points('[{"label": "cup", "points": [[1, 2], [300, 400]]}]', "qwen3-vl", SIZE)
    assert [(p.label, p.xy) for p in pts] == [("cup", (1.0, 2.0)), ("cup", (300.0, 400.0))]
    pts = parse_points('[["cup", 100, 200], ["mug", 1, 2, 3]]', "qwen3-vl", SIZE)
    assert [p.label for p in pts] == ["cup"] and pts.dropped == 1
    # A box-only family answering with a broken box: nothing, but counted.
    pts = parse_points("<loc0100><loc0100><loc0200><loc0200><loc0300>", "paligemma", SIZE)
    assert (len(pts), pts.dropped) == (0, 1)


# --- issue 9 item 1: bounded numbers, labels always clean strings -------------------------


def test_huge_numbers_and_non_finite_values_never_raise_and_are_dropped() -> None:
    text = (
        '[{"bbox_2d": [1e999, 100, 200, 200], "label": "a", "score": NaN},'
        ' {"bbox_2d": [' + "9" * 400 + ", 1, 2, 3]},"
        ' {"bbox_2d": [100, 100, 200, 200], "label": ' + "7" * 1000 + ', "score": Infinity}]'
    )
    found = parse_detections(text, "qwen3-vl", SIZE)
    assert [(d.label, d.score) for d in found] == [("", None)]
    assert found.dropped == 2
    for convention, answer in [
        ("deepseek-vl2", "<|ref|>a<|/ref|><|det|>[[" + "9" * 400 + ",1,2,3]]<|/det|>"),
        ("molmo", '<point x="' + "9" * 400 + '" y="1">a</point>'),
        ("qwen2-vl", "a(" + "9" * 400 + ",1),(2,3)"),
        ("gemini", '[{"point": [' + "9" * 400 + ", 1]}]"),
    ]:
        parse_detections(answer, convention, SIZE)
        parse_points(answer, convention, SIZE)


def test_scores_are_finite_or_none() -> None:
    for score in ("NaN", "Infinity", "-Infinity", '"nan"', "1e999"):
        (det,) = parse_detections(
            f'[{{"bbox_2d": [1, 2, 300, 400], "label": "a", "score": {score}}}]', "qwen3-vl", SIZE
        )
        assert det.score is None


@pytest.mark.parametrize(
    "label",
    ["7" * 1000, "x" * 5000, '{"nested": "dict"}', "[1, 2]", "true", "null", "1.5"],
)
def test_labels_are_always_clean_bounded_strings(label: str) -> None:
    text = (
        '[{"bbox_2d": [1, 2, 300, 400], "label": '
        + (label if not label.startswith("x") else f'"{label}"')
        + "}]"
    )
    (det,) = parse_detections(text, "qwen3-vl", SIZE, default_label="fallback")
    assert isinstance(det.label, str) and 0 < len(det.label) <= MAX_LABEL


def test_clean_label_removes_controls_and_surrogates() -> None:
    assert clean_label("\x1b]0;pwned\x07cup") == "]0;pwned cup"
    assert clean_label("cup\ud800") == "cup\ufffd"
    assert clean_label("“red cup”") == "red cup"
    assert clean_label("   ") is None
