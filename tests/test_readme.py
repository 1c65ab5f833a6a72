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


def test_links_in_readme_and_docs_resolve() -> None:
    """Every relative link of README.md and docs/*.md names a file of the repository."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_configuration_table_lists_every_group_option() -> None:
    """docs/training.md's configuration table names every option of every conf/ group."""
    text = (ROOT / "docs" / "training.md").read_text()
    table = text[text.index("## Configuration") :]
    table = table[: table.index("\n\n", table.index("| group"))]
    missing = []
    for group in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name != "hydra"):
        row = next((line for line in table.splitlines() if line.startswith(f"| `{group.name}/`")), "")
        for option in sorted(f.stem for f in group.glob("*.yaml")):
            if f"`{option}`" not in row:
                missing.append(f"{group.name}/{option}")
    assert not missing, missing


def test_readme_has_one_current_results_table() -> None:
    """One results table, each row with a command, a figure, a wall clock, a CPU and a date."""
    text = (ROOT / "README.md").read_text()
    headers = [line for line in text.splitlines() if line.startswith("| command |")]
    assert len(headers) == 1
    cols = [c.strip() for c in headers[0].strip("|").split("|")]
    assert cols[0] == "command" and {"figure", "wall clock", "date"} <= set(cols) and any("CPU" in c for c in cols)
    start = text.index(headers[0])
    rows = [line for line in text[start:].split("\n\n")[0].splitlines()[2:]]
    assert rows
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == len(cols) and cells[0].startswith("`") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[-1])
