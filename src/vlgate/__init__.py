"""vlgate: one correct, fast and safe way to ask any vision-language model about images."""

from __future__ import annotations

__version__ = "0.1.0"
