#!/usr/bin/env python3
"""Supply-chain check: nothing in site-packages runs code at start-up but what we expect.

A ``.pth`` file line starting with ``import`` runs at every Python start, and a ``sitecustomize``
or ``usercustomize`` module is imported at every start: a compromised package's way to run in
every process, tests included, without being imported. Allowed are exactly:

* the editable install of vlgate (``_editable_impl_vlgate*.pth``, ``_vlgate*.pth``,
  ``__editable__.vlgate-*.pth``), owned by vlgate's own ``RECORD``;
* setuptools' ``distutils-precedence.pth``, owned by setuptools' ``RECORD``.

Each allowed file must be listed by its owner's ``RECORD`` with a matching SHA-256 and by no
other distribution's. Anything else fails with exit code 1.

Usage: ``.venv/bin/python scripts/check_site.py [--site DIR ...]`` (default: this interpreter's
purelib and platlib).
"""

from __future__ import annotations

import argparse
import base64
import csv
import fnmatch
import hashlib
import re
import sys
import sysconfig
from pathlib import Path

ALLOWED: dict[str, tuple[str, ...]] = {
    "vlgate": ("_editable_impl_vlgate*.pth", "_vlgate*.pth", "__editable__.vlgate-*.pth"),
    "setuptools": ("distutils-precedence.pth",),
}
STARTUP_MODULES = ("sitecustomize", "usercustomize")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _records(site: Path) -> dict[str, list[tuple[str, str]]]:
    """file name at the top of ``site`` -> [(owning distribution, recorded sha256 or "")]."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for record in sorted(site.glob("*.dist-info/RECORD")):
        dist = _normalise(record.parent.name.removesuffix(".dist-info").split("-")[0])
        with record.open(newline="", encoding="utf-8", errors="replace") as fh:
            for row in csv.reader(fh):
                if not row or "/" in row[0] or "\\" in row[0]:
                    continue  # only top-level files can be .pth or start-up modules
                digest = row[1].removeprefix("sha256=") if len(row) > 1 else ""
                owners.setdefault(row[0], []).append((dist, digest))
    return owners


def _sha256(path: Path) -> str:
    raw = hashlib.sha256(path.read_bytes()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def check(site: Path) -> list[str]:
    """Problems found in one site-packages directory (empty: all clear)."""
    problems: list[str] = []
    owners = _records(site)
    for path in sorted(site.iterdir()):
        name = path.name
        stem = name.split(".", 1)[0]
        if stem in STARTUP_MODULES:
            problems.append(f"{path}: a {stem} module runs at every interpreter start")
            continue
        if not name.endswith(".pth"):
            continue
        allowed_owner = next(
            (
                dist
                for dist, globs in ALLOWED.items()
                if any(fnmatch.fnmatch(name, g) for g in globs)
            ),
            None,
        )
        listed = owners.get(name, [])
        if allowed_owner is None:
            who = ", ".join(sorted({d for d, _ in listed})) or "no installed distribution"
            problems.append(f"{path}: unexpected .pth file (installed by {who})")
            continue
        if [d for d, _ in listed] != [allowed_owner]:
            who = ", ".join(d for d, _ in listed) or "nobody"
            problems.append(f"{path}: expected to belong to {allowed_owner} alone, listed by {who}")
            continue
        recorded = listed[0][1]
        if recorded and recorded != _sha256(path):
            problems.append(f"{path}: content differs from what {allowed_owner} installed")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", action="append", type=Path, help="site-packages to check")
    args = parser.parse_args(argv)
    paths = sysconfig.get_paths()
    sites = args.site or sorted({Path(paths["purelib"]), Path(paths["platlib"])})
    problems = [p for site in sites if site.is_dir() for p in check(site)]
    for problem in problems:
        print(f"supply-chain check: {problem}", file=sys.stderr)
    if problems:
        print(
            "supply-chain check failed: remove the files above (or the package that installed "
            "them) and recreate the venv",
            file=sys.stderr,
        )
        return 1
    print(f"supply-chain check: ok ({', '.join(str(s) for s in sites)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
