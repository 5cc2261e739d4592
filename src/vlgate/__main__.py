"""``python -m vlgate``: the command line."""

from __future__ import annotations

from vlgate.cli import main

if __name__ == "__main__":
    main()
