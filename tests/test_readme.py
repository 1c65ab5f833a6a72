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
    rows = results_rows(text)
    assert rows
    for cells in rows:
        assert len(cells) == len(cols) and cells[0].startswith("`") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[-1])


REPORT_LINK = re.compile(r"\]\((reports/[^)#\s]+\.md)\)")  # a Markdown link to a committed report


def results_rows(text: str) -> list[list[str]]:
    """The cells of each row of README's results table (header and rule left out)."""
    start = text.index("| command |")
    return [[c.strip() for c in row.strip("|").split("|")] for row in text[start:].split("\n\n")[0].splitlines()[2:]]


def unreported_figures(row: list[str], root: Path) -> list[str]:
    """Figures (3 decimals) of a row's figure cell that none of the reports it links to prints
    (to 3 decimals: a report's 0.0 holds the row's 0.000, its 0.0645 the row's 0.065).

    A row links its reports as ``[...](reports/....md)`` in any cell; a row with no such link
    is not checked (returns []). Signs are dropped: a report prints ``plain - full`` as 0.026.
    """
    links = [root / t for cell in row for t in REPORT_LINK.findall(cell)]
    if not links:
        return []
    reported = {f"{float(x):.3f}" for p in links for x in re.findall(r"\d+\.\d+", p.read_text())}
    figure = re.sub(r"\]\([^)]*\)", "]", row[2])  # link targets hold no figures
    return [f for f in re.findall(r"(?<![\d.])\d+\.\d{3}(?![\d.])", figure) if f not in reported]


def test_results_rows_match_the_reports_they_link() -> None:
    """Each figure of a results row that links its reports is printed in one of them."""
    rows = results_rows((ROOT / "README.md").read_text())
    linked = [r for r in rows if any(REPORT_LINK.search(c) for c in r)]
    assert len(linked) >= 2, "the real-CT rows link the reports their figures come from"
    wrong = {r[0]: bad for r in linked if (bad := unreported_figures(r, ROOT))}
    assert not wrong, wrong


def test_unreported_figures_catches_a_figure_not_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "t.md").write_text("| plain - full | 0.026 [-0.031, 0.096] | 0.52 |\n")
    row = ["`x`", "what", "**+0.026** [-0.031, 0.096] ([t](reports/t.md))", "1 min", "cpu", "2026-12-01"]
    assert unreported_figures(row, tmp_path) == []
    row[2] = "**+0.027** [-0.031, 0.096] ([t](reports/t.md))"
    assert unreported_figures(row, tmp_path) == ["0.027"]
    (tmp_path / "reports" / "t.md").write_text("| v4 | 20.0 | 0.0 | p 0.0645 |\n")
    row[2] = "v4 0.000, p 0.065 ([t](reports/t.md))"  # the same figures to 3 decimals
    assert unreported_figures(row, tmp_path) == []
    assert unreported_figures(["`x`", "w", "0.111", "", "", ""], tmp_path) == []  # no link: not checked
