"""What the emulator records about each request it receives.

Every request becomes one :class:`RecordedRequest` the moment it arrives; ``status`` and
``error`` are filled in when the emulator answers (``None`` while it is still in flight, ``0``
when the connection was reset on purpose). Images are decoded and described by
:class:`RecordedImage`.

Example::

    req = emu.requests[-1]
    assert req.protocol == "anthropic" and req.status == 200
    assert req.images[0].actual_mime == "image/jpeg"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Protocol", "RecordedImage", "RecordedRequest", "Source"]

Protocol = Literal["openai", "anthropic", "gemini", "ollama", "moondream"]
Source = Literal["data-uri", "base64", "url"]


@dataclass
class RecordedImage:
    """One image found in a request.

    Attributes:
        declared_mime: the MIME type the request stated (``None`` if it stated none).
        actual_mime: the type sniffed from the bytes (``None`` if unknown).
        size: ``(w, h)`` of the upright image (EXIF orientation applied), ``None`` if undecodable.
        nbytes: length of the raw (base64-decoded) bytes.
        source: how it arrived: ``"data-uri"``, ``"base64"`` (bare base64 field) or ``"url"``.
        data: the raw bytes (empty for a URL the emulator could not fetch).
        url: the URL for ``source == "url"``.
        exif_orientation: the EXIF Orientation tag (1-8) when present.
        detail: OpenAI's ``detail`` value when given.
    """

    declared_mime: str | None
    actual_mime: str | None
    size: tuple[int, int] | None
    nbytes: int
    source: Source
    data: bytes = field(repr=False)
    url: str | None = None
    exif_orientation: int | None = None
    detail: str | None = None


@dataclass
class RecordedRequest:
    """One HTTP request as the emulator received and answered it.

    Attributes:
        protocol: ``"openai"``, ``"anthropic"``, ``"gemini"``, ``"ollama"`` or ``"moondream"``.
        method, path, query: the HTTP request line (``query`` as a dict of first values).
        headers: lower-case header names to values (the real key is included: it is a test key).
        body: the parsed JSON body (``None`` if it was not JSON).
        model: the model named by the request (Gemini: from the path; Moondream: the body's
            optional ``model``, else ``"moondream"``).
        stream: whether a streamed answer was asked for.
        images: the images found, in request order.
        status: the HTTP status answered; ``None`` while in flight; ``0`` for an injected reset.
        error: the error message when the request was rejected or failed on purpose.
        fault: the injected fault applied to this request (``"429"``, ``"hang"``...), if any.
        response_text: the assistant text answered (``None`` for errors).
        t_received: ``time.time()`` at arrival.
        batch: the id of the batch job this request came in (one line of a batch input file,
            answered by the emulator's batch processing); ``None`` for a live HTTP request.
    """

    protocol: Protocol
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    model: str | None = None
    stream: bool = False
    images: list[RecordedImage] = field(default_factory=list)
    status: int | None = None
    error: str | None = None
    fault: str | None = None
    response_text: str | None = None
    t_received: float = 0.0
    batch: str | None = None
