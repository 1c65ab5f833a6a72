"""Report end to end: tiny Table-1 and ablation sweeps -> tables, figures, report.html,
the notebook executed, and report.html checked in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.browser import headless_chromium, needs_chromium
from tests.test_run import TINY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TABLES = [
    "table1",
    "table2",
    "table3",
    "table4",
    "table5",
    "table6",
    "table7",
    "agreement",
    "abc2_bias",
    "paired_tests",
]


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("sweeps")
    common = [
        f"paths.runs_dir={tmp}/runs",
        f"paths.cache_dir={tmp}/cache",
        *TINY,
        "data.source.n_patients=10",
        "data.test_fraction=0.4",
    ]
    for exp in ("table1", "ablation"):
        proc = subprocess.run(
            [sys.executable, "-m", "hemato.run", "-m", f"experiment={exp}", *common],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp


@pytest.fixture(scope="module")
def report(sweeps: Path) -> Path:
    out = sweeps / "report"
    # an unfinished run (killed before metrics.json) must be skipped and listed
    broken = sweeps / "runs" / "table1" / "killed_run"
    broken.mkdir(parents=True)
    (broken / "config.yaml").write_text("model: {name: ours}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.report",
            str(sweeps / "runs" / "table1"),
            str(sweeps / "runs" / "ablation"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped (not finished" in proc.stdout and "killed_run" in proc.stdout
    return out


def test_sweeps_have_one_dir_per_job(sweeps: Path) -> None:
    t1 = next((sweeps / "runs" / "table1").glob("multirun_*"))
    assert sorted(p.name for p in t1.iterdir() if p.is_dir() and p.name[0].isdigit()) == [
        "0_ours",
        "1_unet",
        "2_fcn8s",
        "3_segnet",
    ]
    ab = next((sweeps / "runs" / "ablation").glob("multirun_*"))
    assert sorted(p.name for p in ab.iterdir() if p.is_dir() and p.name[0].isdigit()) == [
        "0_ours_plain",
        "1_ours_sa",
        "2_ours_sa_ca",
    ]


def test_all_tables_written(report: Path) -> None:
    for key in TABLES:
        assert (report / "tables" / f"{key}.csv").is_file() and (report / "tables" / f"{key}.md").is_file(), key
    t1 = pd.read_csv(report / "tables" / "table1.csv")
    assert list(t1["model"]) == ["FCN8s", "SegNet", "U-Net", "Ours"]
    assert {"rvd", "dice", "iou", "dice_lo", "dice_hi", "paper_dice"} <= set(t1.columns)
    assert (t1["paper_dice"] == [0.789, 0.810, 0.833, 0.856]).all()
    t2 = pd.read_csv(report / "tables" / "table2.csv")
    assert list(t2["model"]) == ["FCN8s", "SegNet", "U-Net", "Ours"] and (t2["rmse"] >= t2["mae"] - 1e-9).all()
    t7 = pd.read_csv(report / "tables" / "table7.csv")
    assert list(t7["configuration"]) == ["U-Net", "U-Net+SA", "U-Net+SA+CA", "U-Net+SA+CA+SPA"]
    for key in ("table3", "table4", "table5", "table6"):
        t = pd.read_csv(report / "tables" / f"{key}.csv")
        assert list(t["model"]) == ["U-Net", "Ours"]
    agreement = pd.read_csv(report / "tables" / "agreement.csv")
    assert "ABC/2 of the truth masks" in set(agreement["method"])
    md = (report / "tables" / "table1.md").read_text()
    assert "paper" in md and "[" in md  # CIs and the paper's column


def test_figures_and_html(report: Path) -> None:
    summary = json.loads((report / "report.json").read_text())
    for fig in ("fig2_overlays.png", "fig3_volumes.png", "fig4_errors.png", "bland_altman.png"):
        assert fig in summary["figures"] and (report / "figures" / fig).stat().st_size > 5000
    html = (report / "report.html").read_text()
    for key in TABLES:
        assert f"id='{key}'" in html
    assert html.count("data:image/png;base64,") == len(summary["figures"])
    assert 'src="http' not in html and 'href="http' not in html  # self-contained


def test_report_does_not_import_the_task_or_datamodule(sweeps: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from hemato.report import build_report; "
        f"build_report([{str(sweeps / 'runs' / 'table1')!r}], {str(tmp_path / 'r')!r}); "
        "bad = [m for m in ('hemato.tasks.segmentation', 'hemato.data.datamodule', 'lightning') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_no_finished_run_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.report", str(tmp_path), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no finished run" in proc.stderr


def test_two_runs_of_one_model_are_refused_with_the_list(sweeps: Path, tmp_path: Path) -> None:
    ours = next(p.parent for p in (sweeps / "runs" / "table1").rglob("metrics.json") if p.parent.name.endswith("_ours"))
    shutil.copytree(ours, tmp_path / "again" / ours.name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.report",
            str(sweeps / "runs" / "table1"),
            str(tmp_path / "again"),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "several runs of one model (Ours: " in proc.stderr
    assert (
        str(ours) in proc.stderr
        and str(tmp_path / "again" / ours.name) in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_notebook_executes_from_its_folder_without_environment(sweeps: Path, tmp_path: Path, monkeypatch) -> None:
    """Started from notebooks/ with no HEMATO_* variables, it finds the project's runs/."""
    import nbformat
    from nbclient import NotebookClient

    proj = tmp_path / "proj"
    (proj / "notebooks").mkdir(parents=True)
    (proj / "hemato").mkdir()
    (proj / "pyproject.toml").write_text("")
    (proj / "runs").mkdir()
    for name in ("table1", "ablation"):
        shutil.copytree(sweeps / "runs" / name, proj / "runs" / name)
    nb = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    monkeypatch.delenv("HEMATO_RUNS", raising=False)
    monkeypatch.delenv("HEMATO_REPORT", raising=False)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(proj / "notebooks")}}
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4
    assert any("table1" in str(o.get("data", {})) or "Table 1" in str(o.get("data", {})) for o in outputs)
    assert (proj / "reports" / "notebook" / "tables").is_dir()  # written inside the project found


@needs_chromium
def test_report_html_in_headless_chromium(report: Path) -> None:
    from selenium.webdriver.common.by import By

    with headless_chromium() as driver:
        driver.get((report / "report.html").as_uri())
        tables = driver.find_elements(By.CSS_SELECTOR, "table")
        assert len(tables) >= len(TABLES)
        for key in TABLES:
            assert driver.find_element(By.ID, key).is_displayed()
        imgs = driver.find_elements(By.TAG_NAME, "img")
        summary = json.loads((report / "report.json").read_text())
        assert len(imgs) == len(summary["figures"])
        for img in imgs:  # decoded and laid out by the browser
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
