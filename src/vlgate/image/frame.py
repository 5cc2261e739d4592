"""Robot-framework frames, by duck typing: an object with a numpy ``.data`` and a ``.format``.

This is the shape of dimos's ``Image`` message (``dimos.msgs.sensor_msgs.Image``), whose default
channel order is BGR, as OpenCV's. The format names the channel order, so a BGR frame reaches the
model with the colours it was captured with; depth maps are not pictures and are refused. Nothing
here imports dimos.

Example:
    >>> import numpy as np
    >>> class Frame:  # what a dimos Image looks like from here
    ...     def __init__(self, data, format): self.data, self.format = data, format
    >>> bgr = np.zeros((2, 2, 3), np.uint8); bgr[..., 0] = 255          # blue, in BGR order
    >>> from vlgate import Image
    >>> Image.load(Frame(bgr, "BGR")).to_numpy()[0, 0].tolist()
    [0, 0, 255]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ImageError
from ._lazy import LazyNumpy
from .load import Decoded, from_array, normalise_array

if TYPE_CHECKING:
    import numpy as np
else:
    np = LazyNumpy(globals())


@runtime_checkable
class Frame(Protocol):
    """What :meth:`vlgate.Image.load` reads as a frame: numpy ``data`` plus its ``format``."""

    data: Any
    format: Any


# Format name -> (channels, reorder to RGB(A) or None).
_FORMATS: dict[str, tuple[int, list[int] | None]] = {
    "RGB": (3, None),
    "BGR": (3, [2, 1, 0]),
    "RGBA": (4, None),
    "BGRA": (4, [2, 1, 0, 3]),
    "GRAY": (1, None),
    "GRAY16": (1, None),
}
_DEPTH = frozenset({"DEPTH", "DEPTH16"})


def frame_format(source: object) -> str | None:
    """The format name (``"BGR"``, ...) when ``source`` looks like a frame, else ``None``.

    A frame has a numpy array ``data`` and a ``format`` that is a string or an enum member whose
    value is one (dimos's ``ImageFormat``).

    Example:
        >>> frame_format(object()) is None
        True
    """
    fmt = getattr(source, "format", None)
    if fmt is None:
        return None
    name = getattr(fmt, "value", fmt)
    if not isinstance(name, str):
        return None
    data = getattr(source, "data", None)
    if type(data).__module__ != "numpy" or not hasattr(data, "ndim"):
        return None
    return name.upper()


def from_frame(source: Any, fmt: str, max_pixels: int) -> Decoded:
    """Decode a frame whose ``frame_format`` is ``fmt``, honouring its channel order.

    Example:
        >>> import numpy as np
        >>> class F:
        ...     data, format = np.zeros((4, 6), np.uint16), "GRAY16"
        >>> from_frame(F(), "GRAY16", 10_000).arr.shape
        (4, 6, 3)
    """
    what = f"{fmt} frame"
    if fmt in _DEPTH:
        raise ImageError(
            f"{what}: a depth map is not a picture a vision-language model can read; "
            "colour-map it (or send the matching colour frame) instead"
        )
    spec = _FORMATS.get(fmt)
    if spec is None:
        raise ImageError(f"{what}: unknown frame format; expected one of {', '.join(_FORMATS)}")
    channels, order = spec
    data = source.data
    have = 1 if data.ndim == 2 else (data.shape[2] if data.ndim == 3 else -1)
    if have != channels:
        raise ImageError(
            f"{what} of shape {tuple(data.shape)} has {have if have > 0 else 'no'} channel(s); "
            f"{fmt} has {channels}"
        )
    if fmt == "GRAY16" and data.dtype != np.uint16:
        raise ImageError(f"{what} has dtype {data.dtype}; GRAY16 frames are uint16")
    arr = normalise_array(data, what, max_pixels)
    if order is None:
        return from_array(arr, copied=arr is not data)
    return from_array(np.ascontiguousarray(arr[..., order]), copied=True)
