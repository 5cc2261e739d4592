"""vlgate: one correct, fast and safe way to ask any vision-language model about images.

Example:
    >>> import vlgate
    >>> model = vlgate.create("openai/gpt-4o-mini")                   # doctest: +SKIP
    >>> model.query("photo.jpg", "What is on the table?")             # doctest: +SKIP
    >>> model.detect("photo.jpg", "cup")                              # doctest: +SKIP
"""

from __future__ import annotations

from .batches import BatchJob
from .config import ModelConfig
from .errors import (
    AuthError,
    ConfigError,
    ConnectionError,
    ContentFilteredError,
    ImageError,
    ProviderError,
    RateLimitError,
    ResponseError,
    TimeoutError,
    VlgateError,
)
from .grounding import Detection, Detections, Point, Points
from .image import EncodedImage, Image
from .model import Answer, VlModel, create
from .providers._batch import BatchStatus
from .providers.base import Usage
from .registry import resolve
from .tokens import estimate_tokens

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AuthError",
    "BatchJob",
    "BatchStatus",
    "ConfigError",
    "ConnectionError",
    "ContentFilteredError",
    "Detection",
    "Detections",
    "EncodedImage",
    "Image",
    "ImageError",
    "ModelConfig",
    "Point",
    "Points",
    "ProviderError",
    "RateLimitError",
    "ResponseError",
    "TimeoutError",
    "Usage",
    "VlModel",
    "VlgateError",
    "__version__",
    "create",
    "estimate_tokens",
    "resolve",
]
