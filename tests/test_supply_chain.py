"""scripts/check_site.py: the venv may hold no start-up hook but the editable install's and
setuptools' own (issue 9, supply chain)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent.parent / "scripts" / "check_site.py"
DISTUTILS = (
    "import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os.environ.get(var, 'local') == "
    "'local'; enabled and __import__('_distutils_hack').add_shim(); \n"
)


def digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def install(site: Path, dist: str, files: dict[str, str]) -> None:
    """A distribution as an installer leaves it: the files and a RECORD naming their hashes."""
    info = site / f"{dist}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, text in files.items():
        (site / name).write_text(text)
        rows.append(f"{name},sha256={digest(text.encode())},{len(text)}")
    rows.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(rows) + "\n")


def run(site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--site", str(site)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site-packages"
    install(site, "vlgate-0.1.0", {"_editable_impl_vlgate.pth": "/src\n"})
    install(site, "setuptools-80.0.0", {"distutils-precedence.pth": DISTUTILS})
    install(site, "numpy-2.0.0", {"numpy_helper.py": "x = 1\n"})
    return site


def test_a_clean_venv_passes(site: Path) -> None:
    out = run(site)
    assert out.returncode == 0, out.stderr
    assert "supply-chain check: ok" in out.stdout


def test_a_foreign_pth_fails(site: Path) -> None:
    install(site, "evilpkg-1.0", {"evilpkg_init.pth": "import os; os.system('true')\n"})
    out = run(site)
    assert out.returncode == 1
    assert "evilpkg_init.pth: unexpected .pth file (installed by evilpkg)" in out.stderr


def test_an_unrecorded_pth_fails(site: Path) -> None:
    (site / "zzz.pth").write_text("import sys\n")
    out = run(site)
    assert out.returncode == 1
    assert "installed by no installed distribution" in out.stderr


@pytest.mark.parametrize("name", ["sitecustomize.py", "usercustomize.py", "sitecustomize"])
def test_startup_modules_fail(site: Path, name: str) -> None:
    target = site / name
    if name.endswith(".py"):
        target.write_text("print('hi')\n")
    else:
        target.mkdir()
        (target / "__init__.py").write_text("")
    out = run(site)
    assert out.returncode == 1
    assert "runs at every interpreter start" in out.stderr


def test_an_allowed_name_planted_by_another_package_fails(site: Path) -> None:
    install(site, "evilpkg-1.0", {"distutils-precedence.pth": "import evil\n"})
    out = run(site)
    assert out.returncode == 1
    assert "expected to belong to setuptools alone" in out.stderr


def test_an_allowed_file_with_changed_content_fails(site: Path) -> None:
    (site / "distutils-precedence.pth").write_text(DISTUTILS + "import evil\n")
    out = run(site)
    assert out.returncode == 1
    assert "content differs from what setuptools installed" in out.stderr


def test_this_interpreter_passes() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_scripts_test_runs_the_check_before_pytest() -> None:
    text = (SCRIPT.parent / "test").read_text()
    check = text.index(".venv/bin/python scripts/check_site.py")
    assert check < text.index("-m pytest")
    assert "set -euo pipefail" in text  # a failing check stops the script
