"""Image rules of the emulated services, as data, with the real error wording.

Each service's limits are one :class:`ImageRules` row; :func:`check_images` applies them in the
order the real service does and returns the first violation. Sources are cited per row.

Example::

    >>> RULES["anthropic"].max_bytes == 5 * 1024 * 1024
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .records import RecordedImage

__all__ = ["RULES", "ImageRules", "check_images", "min_side_for"]

MB = 1024 * 1024


@dataclass(frozen=True)
class ImageRules:
    """Limits one service enforces. ``None`` means not enforced."""

    service: str
    max_bytes: int | None = None
    max_side: int | None = None
    many_images: tuple[int, int] | None = None
    max_images: int | None = None
    max_total_bytes: int | None = None
    formats: frozenset[str] | None = None
    """Actual (sniffed) types accepted."""
    declared_formats: frozenset[str] | None = None
    """Declared types accepted."""
    declared_must_match: bool = False


_STD = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

RULES: dict[str, ImageRules] = {
    # OpenAI vision guide: <= 20 MB per image, <= 500 images, <= 50 MB per request; PNG, JPEG,
    # WEBP, non-animated GIF. Lenient about the declared type (mealie PR #5897: image/jpg works).
    "openai": ImageRules(
        service="openai", max_bytes=20 * MB, max_images=500, max_total_bytes=50 * MB, formats=_STD
    ),
    # platform.claude.com build-with-claude/vision: 5 MB, 8000 px, 2000 px when > 20 images,
    # 600 images; media_type must be one of four and must match the bytes (litellm#24900).
    "anthropic": ImageRules(
        service="anthropic",
        max_bytes=5 * MB,
        max_side=8000,
        many_images=(20, 2000),
        max_images=600,
        formats=_STD,
        declared_formats=_STD,
        declared_must_match=True,
    ),
    # ai.google.dev gemini-api/docs/vision + file-input-methods: inline data <= 20 MB per
    # request; PNG, JPEG, WEBP, HEIC, HEIF; up to 3600 images.
    "gemini": ImageRules(
        service="gemini",
        max_images=3600,
        max_total_bytes=20 * MB,
        declared_formats=frozenset(
            {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
        ),
    ),
    # Ollama decodes whatever its image library reads; the /v1 prefix rules are in emulator.py
    # (ollama openai/openai.go decodeImageURL).
    "ollama": ImageRules(
        service="ollama", formats=frozenset({"image/jpeg", "image/png", "image/webp"})
    ),
    # Moondream (api.moondream.ai /v1 skills): one image per call as a base64 data URI; its
    # clients always send JPEG (moondream-python cloud_vl.py encode_image). PNG is accepted too.
    "moondream": ImageRules(
        service="moondream", max_images=1, formats=frozenset({"image/jpeg", "image/png"})
    ),
}

_QWEN = re.compile(r"qwen")
_QWEN25 = re.compile(r"qwen2[._]?5[-_]?vl")


def min_side_for(model: str | None, service: str) -> int | None:
    """Smallest side a Qwen-family model accepts here, else ``None``.

    DashScope rejects sides of 10 px or less ("must be larger than 10"; QwenLM/qwen-code#2505);
    Qwen2.5-VL on Ollama fails below one 28-px patch (ollama#11297).

    Example:
        >>> min_side_for("qwen2.5vl:7b", "ollama"), min_side_for("qwen-vl-max", "openai")
        (28, 11)
    """
    m = (model or "").lower()
    if not _QWEN.search(m):
        return None
    if service == "ollama" and _QWEN25.search(m):
        return 28
    return 11


def check_images(
    service: str, model: str | None, images: Sequence[tuple[RecordedImage, str]]
) -> str | None:
    """The first rule ``images`` (each with its location in the request) break, as the
    service's error message; ``None`` when all pass."""
    rules = RULES[service]
    n = len(images)
    if rules.max_images is not None and n > rules.max_images:
        if service == "anthropic":
            return f"Too many images and documents: {n} > {rules.max_images}"
        return f"Too many images in request. Max is {rules.max_images}."
    total = 0
    for img, where in images:
        if img.source == "url" and not img.data:
            continue
        total += img.nbytes
        msg = _check_one(rules, model, img, where, n)
        if msg:
            return msg
    if rules.max_total_bytes is not None and total > rules.max_total_bytes:
        if service == "gemini":
            return f"Request payload size exceeds the limit: {rules.max_total_bytes} bytes."
        return f"Total image size {total} bytes exceeds the limit of {rules.max_total_bytes} bytes."
    return None


def _check_one(
    rules: ImageRules, model: str | None, img: RecordedImage, where: str, n: int
) -> str | None:
    svc = rules.service
    declared = img.declared_mime
    if rules.declared_formats is not None and img.source != "url":
        if declared is None:
            if svc == "gemini":
                return f"{where}.mime_type: Required field is missing."
        elif declared not in rules.declared_formats:
            if svc == "anthropic":
                return (
                    f"{where}.media_type: Input should be 'image/jpeg', 'image/png', "
                    "'image/gif' or 'image/webp'"
                )
            return f"Unsupported MIME type: {declared}"
    if rules.max_bytes is not None and img.nbytes > rules.max_bytes:
        if svc == "anthropic":
            return (
                f"{where}: image exceeds 5 MB maximum: {img.nbytes} bytes > {rules.max_bytes} bytes"
            )
        return f"Image size {img.nbytes} bytes exceeds the limit of 20 MB per image."
    if img.size is None or (rules.formats is not None and img.actual_mime not in rules.formats):
        if svc == "anthropic":
            return f"{where}.data: Could not process image"
        if svc == "gemini":
            return "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
        if svc == "ollama":
            return "image: unknown format"
        if svc == "moondream":
            return "image_url: could not decode the image (JPEG or PNG expected)"
        return (
            "You uploaded an unsupported image. Please make sure your image is below 20 MB in "
            "size and is of one the following formats: ['png', 'jpeg', 'gif', 'webp']."
        )
    if rules.declared_must_match and declared and declared != img.actual_mime:
        return (
            f"{where}.data: The image was specified using the {declared} media type, but the "
            f"image appears to be a {img.actual_mime} image"
        )
    w, h = img.size
    if rules.max_side is not None and max(w, h) > rules.max_side:
        return (
            f"{where}.data: At least one of the image dimensions exceed max allowed size: "
            f"{rules.max_side} pixels"
        )
    if (
        rules.many_images is not None
        and n > rules.many_images[0]
        and max(w, h) > rules.many_images[1]
    ):
        return (
            f"{where}.data: At least one of the image dimensions exceed max allowed size for "
            f"many-image requests: {rules.many_images[1]} pixels"
        )
    min_side = min_side_for(model, svc)
    if min_side is not None and min(w, h) < min_side:
        if svc == "ollama":
            return f"image too small: {w}x{h}; qwen2.5-vl needs each side >= {min_side} pixels"
        return (
            f"The image length and width do not meet the model restrictions. "
            f"[height:{h} or width:{w} must be larger than 10]"
        )
    return None
