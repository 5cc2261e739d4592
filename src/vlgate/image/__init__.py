"""Images in, bytes out: :class:`Image` loads anything once, :class:`EncodedImage` is what is sent.

``Image.load`` accepts a path, bytes, a data URI, an http(s) URL, a PIL image, a numpy array or an
``Image``. It decodes eagerly (so broken files fail at load, before anything is sent), applies the
EXIF orientation and keeps the original resolution; a complete, upright JPEG/PNG/WebP is only
checked from its header, and decoded when its pixels are first needed (never, when it is sent as
it is). ``Image.encode`` produces the bytes for one
request: resized, fitted to a service's :class:`~vlgate.registry.ImageLimits`, and labelled with a
MIME type sniffed from the bytes themselves.

One module per job: ``load`` (local sources and decoding, with the file-read guards), ``fetch``
(URLs and their address guard), ``encode`` (sizes, formats, byte caps), ``mime`` (sniffing) and
``core`` (the :class:`Image` class tying them together).

Example:
    >>> import numpy as np
    >>> img = Image.load(np.zeros((480, 640, 3), np.uint8))
    >>> enc = img.encode(size=(320, 240))
    >>> enc.mime, enc.size, enc.scale
    ('image/jpeg', (320, 240), (0.5, 0.5))
"""

from __future__ import annotations

from .core import Image, ImageInput
from .encode import EncodedImage
from .load import MAX_PIXELS, MB
from .mime import SENDABLE_MIME, sniff_mime

__all__ = [
    "MAX_PIXELS",
    "MB",
    "SENDABLE_MIME",
    "EncodedImage",
    "Image",
    "ImageInput",
    "sniff_mime",
]
