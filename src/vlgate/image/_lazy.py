"""Lazy heavy imports shared by the image modules."""

from __future__ import annotations

import importlib
from typing import Any


class LazyNumpy:
    """numpy costs ~0.3 s to import; only arrays and encoders need it, so load it on first use.

    On first attribute access the real module replaces this proxy in the owning module's globals,
    so later lookups cost nothing.
    """

    def __init__(self, namespace: dict[str, Any]) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        numpy = importlib.import_module("numpy")
        self._namespace["np"] = numpy
        return getattr(numpy, name)
