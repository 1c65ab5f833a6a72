"""README walkthrough: the fenced shell commands marked ``# quick`` run, as written and in the
README's order (a later one may use what an earlier one made), in one temporary copy of
the project, each without a non-zero exit or a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_commands(text: str) -> list[str]:
    """Lines of ```bash blocks whose comment starts with ``quick`` (the comment is kept)."""
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if re.search(r"#\s*quick\b", line):
                cmds.append(line.strip())
    return cmds


def test_quick_commands_are_found() -> None:
    cmds = quick_commands((ROOT / "README.md").read_text())
    assert len(cmds) >= 3, cmds  # the smoke run, predict, the dataset check
    assert quick_commands("```bash\nls  # quick: list\necho no\n```\n") == ["ls  # quick: list"]


@pytest.mark.slow
def test_quick_commands_run_in_a_fresh_copy(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True
    ).stdout.split()
    copy = tmp_path / "hemato"
    for f in files:
        dest = copy / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / f).is_file():
            shutil.copy2(ROOT / f, dest)
    if (ROOT.parent / "shared").is_dir():
        os.symlink(ROOT.parent / "shared", tmp_path / "shared")  # the layout the real-data configs expect
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "HEMATO_CACHE": str(tmp_path / "cache"),
    }
    for cmd in quick_commands((ROOT / "README.md").read_text()):
        proc = subprocess.run(["bash", "-c", cmd], cwd=copy, capture_output=True, text=True, timeout=900, env=env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, f"{cmd}\n{out[-3000:]}"
        assert "Traceback" not in out, f"{cmd}\n{out[-3000:]}"
