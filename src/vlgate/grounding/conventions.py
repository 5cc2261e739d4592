"""How each model family writes boxes and points: one frozen record per convention.

A :class:`Convention` says which syntax the model emits, in which axis order, on which scale and
relative to which frame; the parsers and prompts are driven by these records only.
Facts come from coords.md Table A (model READMEs, cookbooks, maintainers' answers); the
``source`` field of each row names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError

__all__ = ["CONVENTIONS", "Convention", "get_convention"]

Syntax = Literal[
    "json",  # JSON (or a Python literal) of objects with box/point keys, or bare number lists
    "qwen2-tokens",  # <|object_ref_start|>l<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)...
    "qwen2-plain",  # the same with the markers stripped: l(x1,y1),(x2,y2)
    "ref-box",  # <ref>l</ref><box>[[x1,y1,x2,y2]]</box> (InternVL; Qwen-VL v1 with (x,y) pairs)
    "deepseek-det",  # <|ref|>l<|/ref|><|det|>[[x1,y1,x2,y2]]<|/det|>
    "glm-box",  # <|begin_of_box|>[[x1,y1,x2,y2]]<|end_of_box|>
    "paligemma-loc",  # <loc0123><loc0456><loc0789><loc1000> label ; ...
    "florence-loc",  # label<loc_52><loc_333><loc_932><loc_774>
    "xml-points",  # Molmo <point x="" y="" alt="">l</point>, <points x1= y1= ...>, coords="..."
]
Frame = Literal["full", "model_input", "padded_square"]
Order = Literal["xy", "yx"]

# The phrasing used for families with no trained grounding format (Claude, GPT, unknown models):
# pixels of the image as sent, stating its size, because Claude is documented to be better with
# absolute pixels than normalised values (platform.claude.com vision-coordinates).
_PIXEL_DETECT = (
    "Find every {target} in this image.{size_clause} Answer with only a JSON list, one entry per "
    'object: [{{"label": "{target}", "bbox": [x1, y1, x2, y2]}}], where (x1, y1) is the top-left '
    "and (x2, y2) the bottom-right corner in pixels of this image (x to the right, y down). "
    "Answer [] if there is none."
)
_PIXEL_POINT = (
    "Point to every {target} in this image.{size_clause} Answer with only a JSON list, one entry "
    'per object: [{{"label": "{target}", "point": [x, y]}}], the centre of the object in pixels '
    "of this image (x to the right, y down). Answer [] if there is none."
)


@dataclass(frozen=True, kw_only=True)
class Convention:
    """One family's grounding convention, as data.

    ``scale`` is the value that stands for the full width/height (``1000`` for 0–1000), or
    ``"pixels"`` for pixels of the frame. ``frame`` says which image the coordinates refer to:
    the ``full`` original, the ``model_input`` after the provider's resize, or a
    ``padded_square`` of side ``max(w, h)`` centred on the image (LLaVA-1.5 style).
    """

    name: str
    syntax: tuple[Syntax, ...]
    """Parsers tried in order; the first that finds anything wins."""
    order: Order = "xy"
    scale: float | Literal["pixels"] = 1000
    frame: Frame = "full"
    bin_center: bool = False
    """Values are bin indices; decode at the bin centre, ``(N + 0.5) * W / scale`` (Florence-2)."""
    box_keys: tuple[str, ...] = ("bbox_2d", "bbox", "box_2d", "box")
    point_keys: tuple[str, ...] = ("point_2d", "point")
    label_keys: tuple[str, ...] = ()
    """JSON label keys tried before the shared :data:`vlgate.grounding.labels.LABEL_KEYS`."""
    boxes: bool = True
    """Whether the family outputs boxes."""
    points: bool = True
    """Whether the family outputs points; if not, points are the centres of its boxes."""
    integer: bool = True
    """Whether the native values are integers (else floats, e.g. 0–1 scales)."""
    corner_keys: tuple[str, ...] = ()
    """JSON boxes written as named corners (Moondream ``x_min``..``y_max``) instead of a list."""
    xy_keys: tuple[str, ...] = ()
    """JSON points written as named ``x``/``y`` keys instead of a list."""
    box_wrapper: str | None = None
    point_wrapper: str | None = None
    """JSON answers wrapped in an object under this key (Moondream ``{"objects": [...]}``)."""
    detect_template: str = ""
    detect_all_template: str = ""
    """Prompt when no target is given (Florence-2 ``<OD>``)."""
    point_template: str = ""
    description: str = ""
    source: str = ""

    @property
    def resize_sensitive(self) -> bool:
        """True when the model-input size is needed to convert (pixel frames)."""
        return self.frame == "model_input"

    def to_pixels(
        self, value: float, size: int, input_size: int | None = None, other: int | None = None
    ) -> float:
        """One raw coordinate to pixels of the original image along an axis of ``size`` px.

        ``input_size`` is the same axis of the model input (pixel frames); ``other`` is the
        other axis of the original (padded-square frames).

        Example:
            >>> get_convention("gemini").to_pixels(500, 640)
            320.0
        """
        v = value + (0.5 if self.bin_center else 0.0)
        if self.scale == "pixels":
            seen = input_size or size
            return v * size / seen
        if self.frame == "padded_square":
            side = max(size, other or size)
            return v / self.scale * side - (side - size) / 2
        return v / self.scale * size

    def from_pixels(
        self, px: float, size: int, input_size: int | None = None, other: int | None = None
    ) -> float:
        """Inverse of :meth:`to_pixels` (before rounding to the native precision)."""
        if self.scale == "pixels":
            seen = input_size or size
            v = px * seen / size
        elif self.frame == "padded_square":
            side = max(size, other or size)
            v = (px + (side - size) / 2) / side * self.scale
        else:
            v = px / size * self.scale
        return v - (0.5 if self.bin_center else 0.0)


_QWEN_DETECT = (
    "Locate every {target} in the image and output the bbox coordinates in JSON format, "
    'as [{{"bbox_2d": [x1, y1, x2, y2], "label": "{target}"}}].'
)
_QWEN_POINT = (
    "Point to every {target} in the image and output the point coordinates in JSON format, "
    'as [{{"point_2d": [x, y], "label": "{target}"}}].'
)

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in [
        Convention(
            name="qwen2-vl",
            syntax=("qwen2-tokens", "ref-box", "json", "qwen2-plain"),
            scale=1000,
            points=False,
            detect_template=(
                "Find every {target} in the image and output the bounding box of each as "
                "<|object_ref_start|>{target}<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)"
                "<|box_end|>."
            ),
            description="special tokens, 0-1000 of the full image",
            source="ms-swift PR #6178; HF Space maxiw/Qwen2-VL-Detection",
        ),
        Convention(
            name="qwen2.5-vl",
            syntax=("json", "xml-points"),
            scale="pixels",
            frame="model_input",
            detect_template=_QWEN_DETECT,
            point_template=_QWEN_POINT,
            description="JSON bbox_2d/point_2d in pixels of the smart_resize'd input",
            source="QwenLM/Qwen2.5-VL README; maintainer in QwenLM/Qwen3-VL#1427",
        ),
        Convention(
            name="qwen3-vl",
            syntax=("json", "xml-points"),
            scale=1000,
            # The Qwen3-VL omni-recognition cookbook answers with name_en/name_zh or names{}.
            label_keys=("label", "name_en", "names", "name_zh"),
            detect_template=_QWEN_DETECT,
            point_template=_QWEN_POINT,
            description="JSON bbox_2d/point_2d, 0-1000 of the full image",
            source="QwenLM/Qwen3-VL README and spatial_understanding cookbook",
        ),
        Convention(
            name="gemini",
            syntax=("json",),
            order="yx",
            scale=1000,
            box_keys=("box_2d", "bbox_2d", "bbox", "box"),
            point_keys=("point", "point_2d"),
            detect_template=(
                "Detect every {target} in the image. Output a JSON list where each entry has the "
                '2D bounding box in "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 '
                'and a text label in "label".'
            ),
            point_template=(
                "Point to every {target} in the image. Output a JSON list where each entry has "
                'the point in "point" as [y, x] normalized to 0-1000 and a text label in '
                '"label".'
            ),
            description="JSON box_2d [ymin,xmin,ymax,xmax] and point [y,x], 0-1000",
            source="ai.google.dev Gemini image understanding; Google spatial cookbook",
        ),
        Convention(
            name="claude",
            syntax=("json",),
            scale="pixels",
            frame="model_input",
            detect_template=_PIXEL_DETECT,
            point_template=_PIXEL_POINT,
            description="JSON as prompted, pixels of the image after Anthropic's resize",
            source="platform.claude.com build-with-claude/vision-coordinates",
        ),
        Convention(
            name="gpt",
            syntax=("json",),
            scale="pixels",
            frame="model_input",
            detect_template=_PIXEL_DETECT,
            point_template=_PIXEL_POINT,
            description="no trained convention; pixels of the (pre-resized) image as prompted",
            source="OpenAI Images and vision guide; coords.md Table A row 10",
        ),
        Convention(
            name="moondream",
            syntax=("json",),
            scale=1,
            integer=False,
            box_keys=("bbox", "box"),
            point_keys=("point",),
            corner_keys=("x_min", "y_min", "x_max", "y_max"),
            xy_keys=("x", "y"),
            box_wrapper="objects",
            point_wrapper="points",
            detect_template=(
                "Detect {target}. Answer with JSON "
                '{{"objects": [{{"x_min": 0.1, "y_min": 0.2, "x_max": 0.3, "y_max": 0.4}}]}}, '
                "coordinates as fractions 0-1 of the image."
            ),
            point_template=(
                'Point at {target}. Answer with JSON {{"points": [{{"x": 0.5, "y": 0.5}}]}}, '
                "coordinates as fractions 0-1 of the image."
            ),
            description="objects x_min..y_max and points x,y, 0-1 of the full image",
            source="moondream.ai docs api/detect and api/point",
        ),
        Convention(
            name="florence-2",
            syntax=("florence-loc",),
            scale=1000,
            bin_center=True,
            points=False,
            detect_template="<CAPTION_TO_PHRASE_GROUNDING>{target}",
            detect_all_template="<OD>",
            description="label<loc_x1><loc_y1><loc_x2><loc_y2>, 1000 bins, decoded at bin centre",
            source="processing_florence2.py BoxQuantizer (floor, 1000 bins, +0.5 dequantize)",
        ),
        Convention(
            name="paligemma",
            syntax=("paligemma-loc",),
            order="yx",
            scale=1024,
            points=False,
            detect_template="detect {target}",
            description="<locNNNN> x4 then label, y first, 1024 bins",
            source="PaliGemma README; Google PaliGemma prompt docs",
        ),
        Convention(
            name="deepseek-vl2",
            syntax=("deepseek-det", "json"),
            scale=999,
            points=False,
            # <|grounding|> switches DeepSeek-VL2 to grounded output; <|ref|> marks the query.
            detect_template="<|grounding|>Locate <|ref|>{target}<|/ref|> in the image.",
            description="<|ref|>l<|/ref|><|det|>[[x1,y1,x2,y2]]<|/det|>, 0-999",
            source="deepseek-ai/DeepSeek-VL2 serve/app_modules/utils.py; issue #100",
        ),
        Convention(
            name="internvl",
            syntax=("ref-box", "json"),
            scale=1000,
            points=False,
            detect_template=(
                "Please provide the bounding box coordinate of the region this sentence "
                "describes: <ref>{target}</ref>"
            ),
            description="<ref>l</ref><box>[[x1,y1,x2,y2]]</box>, 0-1000",
            source="OpenGVLab/InternVL #285 (maintainer); internvl.readthedocs.io",
        ),
        Convention(
            name="glm-4v",
            syntax=("glm-box", "json"),
            scale=1000,
            detect_template=(
                "Find every {target} in the image and give the bounding box of each one as "
                "[x1, y1, x2, y2] with coordinates from 0 to 1000."
            ),
            point_template=(
                "Point to every {target} in the image and give each point as [x, y] with "
                "coordinates from 0 to 1000."
            ),
            description="<|begin_of_box|>[[x1,y1,x2,y2]]<|end_of_box|>, 0-1000",
            source="zai-org/GLM-V #114, #161",
        ),
        Convention(
            name="molmo",
            syntax=("xml-points", "json"),
            scale=100,
            integer=False,
            boxes=False,
            point_template="Point to every {target} in the image.",
            description='<point x="61.5" y="40.6">l</point>, percent (Molmo2 coords= 0-1000)',
            source="HF allenai/Molmo-7B-O-0924 discussion #1; Molmo2 parsers",
        ),
        Convention(
            name="kimi-vl",
            syntax=("json",),
            scale=1,
            integer=False,
            detect_template=(
                "Locate every {target} in the image and output JSON "
                '[{{"bbox_2d": [x1, y1, x2, y2], "label": "{target}"}}] with coordinates as '
                "fractions 0-1 of the image size."
            ),
            point_template=(
                "Point to every {target} in the image and output JSON "
                '[{{"point_2d": [x, y], "label": "{target}"}}] with coordinates as fractions 0-1 '
                "of the image size."
            ),
            description="JSON bbox_2d 0-1 floats (observed)",
            source="MoonshotAI/Kimi-VL issues #52, #56",
        ),
        Convention(
            name="pixel",
            syntax=("json",),
            scale="pixels",
            frame="model_input",
            detect_template=_PIXEL_DETECT,
            point_template=_PIXEL_POINT,
            description='JSON {"label", "bbox": [x1,y1,x2,y2]} in pixels of the image sent',
        ),
        Convention(
            name="normalized",
            syntax=("json",),
            scale=1,
            integer=False,
            detect_template=(
                "Find every {target} in this image. Answer with only a JSON list: "
                '[{{"label": "{target}", "bbox": [x1, y1, x2, y2]}}] with coordinates as '
                "fractions 0-1 of the image width and height. Answer [] if there is none."
            ),
            point_template=(
                "Point to every {target} in this image. Answer with only a JSON list: "
                '[{{"label": "{target}", "point": [x, y]}}] with coordinates as fractions 0-1 of '
                "the image width and height. Answer [] if there is none."
            ),
            description="JSON bbox/point, 0-1 of the full image",
        ),
        Convention(
            name="normalized-1000",
            syntax=("json",),
            scale=1000,
            detect_template=(
                "Find every {target} in this image. Answer with only a JSON list: "
                '[{{"label": "{target}", "bbox": [x1, y1, x2, y2]}}] with integer coordinates '
                "from 0 to 1000 relative to the image width and height. Answer [] if none."
            ),
            point_template=(
                "Point to every {target} in this image. Answer with only a JSON list: "
                '[{{"label": "{target}", "point": [x, y]}}] with integer coordinates from 0 to '
                "1000 relative to the image width and height. Answer [] if none."
            ),
            description="JSON bbox/point, 0-1000 of the full image",
        ),
        Convention(
            name="llava",
            syntax=("json",),
            scale=1,
            frame="padded_square",
            integer=False,
            points=False,
            detect_template=(
                "Please provide the bounding box coordinate of the region this sentence "
                "describes: {target}"
            ),
            description="[x1,y1,x2,y2] 0-1 of the image padded to a square (LLaVA-1.5 REC data)",
            source="haotian-liu/LLaVA #606 (contested, #822)",
        ),
    ]
}
"""Every known convention by name; ``registry.FAMILIES[*].grounding`` names rows here."""


def get_convention(name: str | Convention) -> Convention:
    """The convention called ``name`` (a :class:`Convention` is returned as is).

    Example:
        >>> get_convention("gemini").order
        'yx'
    """
    if isinstance(name, Convention):
        return name
    try:
        return CONVENTIONS[name]
    except KeyError:
        known = ", ".join(sorted(CONVENTIONS))
        raise ConfigError(f"unknown grounding convention {name!r}; known: {known}") from None
