"""The README's runnable example (the emulator section) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_emulator_example_runs_as_written() -> None:
    text = README.read_text()
    section = text.split("## Testing your own code", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict[str, object] = {}
    exec(compile("import vlgate\n" + code, str(README), "exec"), namespace)
    boxes = namespace["boxes"]
    assert len(boxes) >= 1  # type: ignore[arg-type]


def test_robot_watch_example_runs_offline() -> None:
    import subprocess
    import sys

    script = README.parent / "examples" / "robot_watch.py"
    out = subprocess.run(
        [sys.executable, str(script), "--seconds", "2", "--hz", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("frames ")
    assert any(" x circle: " in line for line in lines[:-1])
