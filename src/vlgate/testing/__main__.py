"""``python -m vlgate.testing --port 8765``: run the provider emulator in the foreground."""

from __future__ import annotations

import argparse

from .emulator import serve


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until Ctrl-C."""
    ap = argparse.ArgumentParser(prog="python -m vlgate.testing", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--api-key", default="emu-key")
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args(argv)
    serve(host=args.host, port=args.port, api_key=args.api_key, latency=args.latency)


if __name__ == "__main__":
    main()
