"""Cross-validation: out-of-fold evaluation through the engine, folds merged per model,
bootstrap CIs, paired tests, refusal of a patient tested twice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hemato.cv import main as cv_main
from hemato.evaluation.cv_report import cv_report, fp_threshold_px, merge_folds, oof_tables, summarize_oof
from hemato.evaluation.seeds import seeds_report
from hemato.evaluation.stats import bootstrap_ci, paired_test

ROOT = Path(__file__).resolve().parents[1]


def _fake_run(root: Path, name: str, model: dict, fold: int, rows: list[tuple[str, int, int, int, int]]) -> Path:
    """rows: (patient, inter, pred, gt, largest_component_px); one slice per patient."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"model": model}))
    p, s = [], []
    for pid, i, pr, g, big in rows:
        dice = 2 * i / (pr + g) if g else np.nan
        p.append(
            {
                "patient_id": pid,
                "rotation": 0,
                "fold": fold,
                "inter": i,
                "pred": pr,
                "gt": g,
                "dice": dice,
                "iou": i / (pr + g - i) if g else np.nan,
                "rvd": abs(pr - g) / g if g else np.nan,
                "largest_component_px": big,
            }
        )
        s.append(
            {
                "patient_id": pid,
                "rotation": 0,
                "slice_index": 0,
                "inter": i,
                "pred": pr,
                "gt": g,
                "dice": dice,
                "iou": p[-1]["iou"],
                "rvd": p[-1]["rvd"],
            }
        )
    pd.DataFrame(p).to_csv(d / "oof_patients.csv", index=False)
    pd.DataFrame(s).to_csv(d / "oof_slices.csv", index=False)
    return d


OURS = {"name": "ours", "sa": True, "ca": True, "spa": True}
UNET = {"name": "unet"}


def test_folds_pool_per_model_with_cis_and_paired_test(tmp_path: Path) -> None:
    big = int(fp_threshold_px()) + 1
    _fake_run(tmp_path, "ours_fold0", OURS, 0, [("a", 80, 100, 100, 100), ("b", 0, big, 0, big)])
    _fake_run(tmp_path, "ours_fold1", OURS, 1, [("c", 60, 100, 100, 100), ("d", 0, 5, 0, 5)])
    _fake_run(tmp_path, "unet_fold0", UNET, 0, [("a", 50, 100, 100, 100), ("b", 0, 0, 0, 0)])
    _fake_run(tmp_path, "unet_fold1", UNET, 1, [("c", 40, 100, 100, 100), ("d", 0, 0, 0, 0)])
    merged = merge_folds([tmp_path])
    assert set(merged) == {"Ours", "U-Net"} and len(merged["Ours"][0]) == 4
    s = cv_report([tmp_path], tmp_path / "out")
    o = s["models"]["Ours"]
    assert o["folds"] == [0, 1] and o["n_patients_with_bleed"] == 2
    assert o["dice_patient"] == pytest.approx(0.7)  # (0.8 + 0.6) / 2
    lo, hi = o["dice_patient_ci"]
    assert 0.6 <= lo <= 0.7 <= hi <= 0.8
    # FP rule: only the bleed-free patient with a component above the 10 mm^2 area counts
    assert o["fp_patients"] == 1 and o["fp_patients_ids"] == ["b"] and o["fp_patients_any_voxel"] == 2
    assert o["patient_specificity"] == 0.0 and s["models"]["U-Net"]["patient_specificity"] == 1.0
    pt = s["paired"]["Ours - U-Net"]
    assert pt["n"] == 2 and pt["mean_diff"] == pytest.approx(0.25)
    pm = s["paired_metrics"]["Ours - U-Net"]  # every per-patient metric the runs hold, paired
    assert set(pm) == {"dice", "iou", "rvd"} and pm["dice"]["mean_diff"] == pytest.approx(0.25)
    assert pm["iou"]["mean_diff"] == pytest.approx(((80 / 120 - 50 / 150) + (60 / 140 - 40 / 160)) / 2)
    assert pm["rvd"]["mean_diff"] == 0 and pm["rvd"]["wilcoxon_p"] == 1.0
    md = (tmp_path / "out" / "table1_oof.md").read_text()
    assert "| Ours | 0,1 | 4 | 2 | 0.700 [" in md and "Ours - U-Net" in md
    assert (
        "| Ours - U-Net | IoU | 2 | 0.256 [" in md and "| Ours - U-Net | abs Rvd | 2 | 0.000 [0.000, 0.000] | 1 |" in md
    )
    # both bleeds hold 100 voxels (0.1 ml at the assumed geometry): the small-bleed column
    assert o["by_size"]["< 2 ml"]["n"] == 2 and o["by_size"]["< 2 ml"]["dice_patient"] == pytest.approx(0.7)
    assert o["by_size"]["> 10 ml"]["n"] == 0 and "| Ours | 0.700 [" in md
    assert json.loads((tmp_path / "out" / "cv_summary.json").read_text())["models"]["U-Net"][
        "dice_patient"
    ] == pytest.approx(0.45)


def test_paired_dice_is_repeated_at_each_rotation_both_models_have(tmp_path: Path) -> None:
    for name, model, dice0 in (("ours_fold0", OURS, 80), ("unet_fold0", UNET, 50)):
        d = _fake_run(tmp_path, name, model, 0, [("a", dice0, 100, 100, 100), ("c", dice0 - 20, 100, 100, 100)])
        p = pd.read_csv(d / "oof_patients.csv", dtype={"patient_id": str})
        r90 = p.assign(rotation=90, dice=p["dice"] - (0.3 if model is OURS else 0.0))  # ours loses its lead at 90
        pd.concat([p, r90]).to_csv(d / "oof_patients.csv", index=False)
    s = cv_report([tmp_path], tmp_path / "out")
    assert s["paired"]["Ours - U-Net"]["mean_diff"] == pytest.approx(0.3)
    rot = s["paired_rotations"]["Ours - U-Net"]
    assert set(rot) == {"90"} and rot["90"]["n"] == 2 and rot["90"]["mean_diff"] == pytest.approx(0.0)
    assert "| Ours - U-Net | 90 deg | 2 | 0.000 [" in (tmp_path / "out" / "table1_oof.md").read_text()
    paired = next(t.data for t in oof_tables(s) if t.key == "oof_paired")  # the W&B table
    at90 = paired[(paired["metric"] == "dice") & (paired["rotation"] == 90)]
    assert len(at90) == 1 and at90["mean_diff"].iloc[0] == pytest.approx(0.0)


def test_a_patient_tested_twice_for_one_model_is_refused(tmp_path: Path) -> None:
    _fake_run(tmp_path, "ours_a", OURS, 0, [("a", 80, 100, 100, 100)])
    _fake_run(tmp_path, "ours_b", OURS, 0, [("a", 70, 100, 100, 100)])
    with pytest.raises(ValueError, match="more than one run"):
        merge_folds([tmp_path])


def test_labels_pair_two_runs_of_one_network(tmp_path: Path) -> None:
    """LABEL=PATH: two variants of one network on the same fold (e.g. bf16 and fp32) are
    pooled and paired under their labels instead of being refused as one model."""
    a = _fake_run(tmp_path, "bf16", OURS, 0, [("a", 80, 100, 100, 100), ("b", 60, 100, 100, 100)])
    b = _fake_run(tmp_path, "fp32", OURS, 0, [("a", 70, 100, 100, 100), ("b", 40, 100, 100, 100)])
    with pytest.raises(ValueError, match="more than one run"):
        merge_folds([a, b])
    s = cv_report([f"bf16={a}", f"fp32={b}"], tmp_path / "out")
    assert set(s["models"]) == {"bf16", "fp32"} and s["models"]["fp32"]["dice_patient"] == pytest.approx(0.55)
    assert s["paired"]["bf16 - fp32"]["mean_diff"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="empty label"):
        merge_folds([f"={a}"])


def test_folders_with_per_patient_results_only_report_slices_as_na(tmp_path: Path) -> None:
    """Older committed fold folders keep oof_patients.csv only: per-patient figures and paired
    tests as usual, per-slice ones n/a (never a number made up from nothing)."""
    d = _fake_run(tmp_path, "old", OURS, 0, [("a", 80, 100, 100, 100), ("b", 0, 0, 0, 0)])
    (d / "oof_slices.csv").unlink()
    s = cv_report([d], tmp_path / "out")
    o = s["models"]["Ours"]
    assert o["dice_patient"] == pytest.approx(0.8) and o["patient_specificity"] == 1.0
    assert np.isnan(o["dice_slice"]) and np.isnan(o["slice_sensitivity"])
    assert "| n/a | n/a | n/a | n/a / n/a |" in (tmp_path / "out" / "table1_oof.md").read_text()


def _seed_run(root: Path, name: str, seed: int, dice_inter: list[int], fp_px: int = 0) -> Path:
    """One evaluated run of ``seed``: patients a, b, ... with 100 true and 100 predicted
    voxels and the given overlaps, plus a bleed-free patient z with ``fp_px`` predicted."""
    rows = [(chr(97 + i), x, 100, 100, 100) for i, x in enumerate(dice_inter)] + [("z", 0, fp_px, 0, fp_px)]
    d = _fake_run(root, name, OURS, 0, rows)
    (d / "config.yaml").write_text(yaml.safe_dump({"model": OURS, "seed": seed}))
    return d


def test_seeds_set_a_variant_difference_against_the_seed_spread(tmp_path: Path) -> None:
    """bf16 vs fp32 over three seeds on one split: per-seed means, SD, the difference paired
    by seed (t CI, p) and per patient; the numbers are worked out by hand."""
    big = int(fp_threshold_px()) + 1
    _seed_run(tmp_path / "bf16", "s1", 1, [80, 60])  # mean Dice 0.70
    _seed_run(tmp_path / "bf16", "s2", 2, [90, 70], fp_px=big)  # 0.80
    _seed_run(tmp_path / "bf16", "s3", 3, [70, 50])  # 0.60
    _seed_run(tmp_path / "fp32", "s1", 1, [70, 50])  # 0.60: differences 0.10, 0.05, 0.00
    _seed_run(tmp_path / "fp32", "s2", 2, [80, 70])  # 0.75
    _seed_run(tmp_path / "fp32", "s3", 3, [70, 50])  # 0.60
    s = seeds_report([f"bf16={tmp_path / 'bf16'}", f"fp32={tmp_path / 'fp32'}"], tmp_path / "out")
    b = s["variants"]["bf16"]
    assert b["seeds"] == [1, 2, 3] and b["dice_patient"] == pytest.approx([0.7, 0.8, 0.6])
    assert b["dice_mean"] == pytest.approx(0.7) and b["dice_sd"] == pytest.approx(0.1)
    assert b["fp_patients"] == [0, 1, 0] and b["n_patients_without_bleed"] == 1
    r = s["paired"]["bf16 - fp32"]
    assert r["per_seed_diff"] == pytest.approx([0.1, 0.05, 0.0]) and r["mean_diff"] == pytest.approx(0.05)
    half = 4.302653 * 0.05 / np.sqrt(3)  # t(0.975, 2) x SD / sqrt(n)
    assert r["ci_t"] == pytest.approx((0.05 - half, 0.05 + half), abs=1e-5)
    assert r["paired_t_p"] == pytest.approx(0.2254, abs=1e-3) and r["a_higher"] == 2
    # per patient, averaged over seeds: a (0.80 - 0.733) and b (0.60 - 0.567)
    assert r["per_patient_mean_diff"] == pytest.approx(0.05) and r["n_patients"] == 2
    md = (tmp_path / "out" / "seeds.md").read_text()
    assert "| bf16 | 1, 2, 3 | 0.700, 0.800, 0.600 | 0.700 | 0.100 |" in md and "+0.100, +0.050, +0.000" in md
    assert json.loads((tmp_path / "out" / "seeds.json").read_text())["variants"]["fp32"]["dice_mean"] == pytest.approx(
        0.65
    )


def test_seeds_refuse_other_splits_repeated_and_single_seeds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _seed_run(tmp_path / "a", "s1", 1, [80, 60])
    _seed_run(tmp_path / "a", "s2", 2, [80, 60])
    with pytest.raises(ValueError, match="one seed only"):
        seeds_report([f"x={tmp_path / 'a'}", f"y={a}"], tmp_path / "out")
    _seed_run(tmp_path / "a", "s1b", 1, [70, 60])
    with pytest.raises(ValueError, match="two runs with seed 1"):
        seeds_report([f"x={tmp_path / 'a'}"], tmp_path / "out")
    _seed_run(tmp_path / "b", "s1", 1, [80])  # tests patients a and z only: another split
    _seed_run(tmp_path / "b", "s2", 2, [80])
    mixed = [f"x={tmp_path / 'a' / 's1'}", f"x={tmp_path / 'a' / 's2'}", f"y={tmp_path / 'b'}"]
    with pytest.raises(ValueError, match="test different patients"):
        seeds_report(mixed, tmp_path / "out")
    # the command line: one line naming the runs, exit 2, nothing written
    assert cv_main(["seeds", *mixed, "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hemato.cv: error:") and "test different patients" in err and "\n" not in err
    assert not (tmp_path / "cli" / "seeds.md").exists()
    same = [*mixed[:2], f"y={tmp_path / 'a' / 's1'}", f"y={tmp_path / 'a' / 's2'}"]
    assert cv_main(["seeds", *same, "--out", str(tmp_path / "cli")]) == 0
    assert "x: Dice (patient) 0.700 +- 0.000" in capsys.readouterr().out


def test_bootstrap_and_paired_test_numbers() -> None:
    lo, hi = bootstrap_ci(np.array([1.0, 1.0, 1.0]))
    assert lo == hi == 1.0
    lo, hi = bootstrap_ci(np.arange(100.0))
    assert 40 < lo < 49.5 < hi < 59
    a = pd.DataFrame({"patient_id": list("abcdefgh"), "gt": 1, "dice": [0.9] * 8})
    b = pd.DataFrame({"patient_id": list("abcdefgh"), "gt": 1, "dice": [0.5 + 0.01 * i for i in range(8)]})
    r = paired_test(a, b)
    assert r["n"] == 8 and r["mean_diff"] > 0.3 and r["wilcoxon_p"] < 0.01


def test_summary_detection_rates() -> None:
    p = pd.DataFrame(
        {
            "patient_id": ["a", "b"],
            "gt": [10, 0],
            "pred": [5, 0],
            "inter": [5, 0],
            "dice": [2 * 5 / 15, np.nan],
            "iou": [0.5, np.nan],
            "rvd": [0.5, np.nan],
            "largest_component_px": [5, 0],
        }
    )
    s = pd.DataFrame(
        {
            "patient_id": ["a", "a", "b"],
            "gt": [10, 0, 0],
            "pred": [5, 3, 0],
            "dice": [2 / 3, np.nan, np.nan],
            "iou": [0.5, np.nan, np.nan],
            "rvd": [0.5, np.nan, np.nan],
        }
    )
    m = summarize_oof(p, s)
    assert m["slice_sensitivity"] == 1.0 and m["slice_specificity"] == 0.5
    assert m["patient_sensitivity"] == 1.0 and m["patient_specificity"] == 1.0


@pytest.mark.slow
def test_cv_run_then_out_of_fold_evaluation_end_to_end(tmp_path: Path, tiny_cv_runs: list[Path]) -> None:
    """A fold of the shipped real sample trains, is evaluated through the engine (also
    rotated) and reported; every test patient of the fold appears once."""
    run = tmp_path / "run"
    shutil.copytree(tiny_cv_runs[1], run)
    split = json.loads((run / "split.json").read_text())
    assert split["folds"] == 2 and split["fold"] == 1 and all(split["fold_of"][p] == 1 for p in split["split"]["test"])
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.cv", "evaluate", str(run), "--rotations", "0", "90"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    oof = pd.read_csv(run / "oof_patients.csv", dtype={"patient_id": str})
    assert sorted(oof["rotation"].unique()) == [0, 90]
    assert sorted(oof.loc[oof["rotation"] == 0, "patient_id"]) == sorted(split["split"]["test"])
    contract = json.loads((run / "oof_contract.json").read_text())["contract"]
    assert contract["min_component_px"] == 2 and "ctich-sample" in contract["trained_on"]
    # the run's own test metrics came from the same engine: same per-patient counts
    tp = pd.read_csv(run / "test_patients.csv", dtype={"patient_id": str}).set_index("patient_id")
    o0 = oof[oof["rotation"] == 0].set_index("patient_id")
    # (the run evaluates its network as trained, cv the BN-folded, channels-last copy: float
    # rounding may flip a few pixels at p ~ 0.5 of this one-epoch model)
    np.testing.assert_allclose(tp.loc[o0.index, "pred"], o0["pred"], rtol=1e-4, atol=2)
    # the component table holds every component before the rules: those the contract keeps
    # add up to the mask
    comps = pd.read_csv(run / "oof_components.csv", dtype={"patient_id": str})
    kept = comps[comps["grid_px"] >= 2].groupby("patient_id")["voxels"].sum()
    assert (kept.reindex(o0.index, fill_value=0) == o0["pred"]).all()
    assert (comps["inter"] <= comps["voxels"]).all() and comps["peak"].between(0.5, 1).all()
    # another contract, evaluated beside the run: the run's own results are untouched
    before = (run / "oof_patients.csv").read_bytes()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hemato.cv",
            "evaluate",
            str(run),
            "--contract",
            "tta=true",
            "min_component_peak=0.9",
            "--out",
            str(tmp_path / "tta"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "oof_patients.csv").read_bytes() == before
    other = json.loads((tmp_path / "tta" / "run" / "oof_contract.json").read_text())["contract"]
    assert other["tta"] is True and other["min_component_peak"] == 0.9 and other["min_component_px"] == 2
    assert (tmp_path / "tta" / "run" / "split.json").is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.cv", "report", str(run), "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "90 deg" in (tmp_path / "rep" / "table1_oof.md").read_text()


def test_component_rules_are_calibrated_on_the_other_folds(tmp_path: Path) -> None:
    """Each fold's component rule comes from the other folds' patients only."""
    from hemato.evaluation.calibrate import calibrate_components

    # fold: [(patient, truth voxels, [(voxels, peak, mean HU, voxels on truth)])]
    cases = {
        0: [("a0", 0, [(400, 0.97, 30.0, 0)]), ("b0", 600, [(600, 0.99, 65.0, 600)])],
        1: [("a1", 0, [(1200, 0.99, 62.0, 0)]), ("b1", 100, [(100, 0.95, 60.0, 100)])],
    }
    for fold, pts in cases.items():
        run = tmp_path / f"ours_fold{fold}"
        run.mkdir()
        (run / "split.json").write_text(json.dumps({"fold": fold}))
        (run / "config.yaml").write_text("model: {name: ours}\n")
        pr = [{"patient_id": p, "rotation": 0, "fold": fold, "gt": gt} for p, gt, _ in pts]
        pd.DataFrame(pr).to_csv(run / "oof_patients.csv", index=False)
        cr = [
            {
                "patient_id": p,
                "fold": fold,
                "component": i,
                "voxels": v,
                "grid_px": v / 4,
                "peak": pk,
                "mean_hu": hu,
                "inter": it,
            }
            for p, _, comps in pts
            for i, (v, pk, hu, it) in enumerate(comps, start=1)
        ]
        pd.DataFrame(cr).to_csv(run / "oof_components.csv", index=False)
    c = calibrate_components([tmp_path], max_fp_rate=0.0)
    # fold 0 is calibrated on fold 1: its false bleed (300 grid px, sure, 62 HU) needs a size
    # rule of 512; fold 1 on fold 0: its false bleed (100 px, 30 HU) goes with 128 px or 40 HU
    assert c["per_fold"][0] == {"min_component_px": 512, "min_component_peak": 0.0, "min_component_hu": None}
    assert c["per_fold"][1] == {"min_component_px": 0, "min_component_peak": 0.0, "min_component_hu": 40.0}
    # fold 0: its 600-voxel bleed (150 px) dropped by 512 -> Dice 0, its false bleed dropped;
    # fold 1: its bleed kept (Dice 1), its sure 62 HU false bleed kept (an FP patient)
    assert c["dice_patient"] == 0.5 and c["fp_patients"] == 1 and c["n_patients_without_bleed"] == 2
    assert c["without_rules"] == {"dice_patient": 1.0, "fp_patients": 2}
    # on both folds only a size of 512 clears a1; every such rule loses both bleeds: the first
    assert c["all_folds"] == {"min_component_px": 512, "min_component_peak": 0.0, "min_component_hu": None}
    with pytest.raises(ValueError, match="at least two folds"):
        calibrate_components([tmp_path / "ours_fold0"])
    (tmp_path / "ours_fold1" / "oof_components.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no oof_components.csv"):
        calibrate_components([tmp_path])


def test_summary_counts_bleeds_found_and_the_volume_error_of_those_of_2_ml_or_more() -> None:
    from hemato.evaluation.oof import VOXEL_ML

    two_ml = int(np.ceil(2.0 / VOXEL_ML))  # voxels of a 2 ml bleed at the assumed spacing
    gt = [two_ml * 3, two_ml * 2, two_ml, 100, 0]
    dice = [0.8, 0.19, 0.5, 0.0, np.nan]
    rvd = [0.1, 0.6, 0.3, 1.0, np.nan]
    p = pd.DataFrame(
        {
            "patient_id": list("abcde"),
            "gt": gt,
            "pred": [1, 1, 1, 0, 0],
            "inter": [1, 0, 1, 0, 0],
            "dice": dice,
            "iou": dice,
            "rvd": rvd,
            "largest_component_px": [1, 1, 1, 0, 0],
        }
    )
    m = summarize_oof(p, p.iloc[:0])
    assert m["bleeds_found"] == 2  # dice >= 0.2: a and c; b (0.19) and d are missed
    assert m["n_bleeds_2ml"] == 3 and m["bleeds_found_2ml"] == 2
    assert m["median_abs_rvd_2ml"] == pytest.approx(0.3)


def test_the_report_as_a_wandb_run_holds_the_same_numbers(tmp_path: Path) -> None:
    """hemato.cv report --wandb: one offline W&B run whose tables hold cv_summary's numbers."""
    _fake_run(tmp_path, "ours_fold0", OURS, 0, [("a", 80, 100, 100, 100), ("b", 0, 0, 0, 0)])
    _fake_run(tmp_path, "unet_fold0", UNET, 0, [("a", 50, 100, 100, 100), ("b", 0, 0, 0, 0)])
    out = tmp_path / "rep"
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.cv", "report", str(tmp_path), "--out", str(out), "--wandb"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rep,) = list((out / "wandb").glob("offline-run-*"))
    tables = {p.name.rsplit("_", 2)[0]: p for p in (rep / "files" / "media" / "table" / "tables").glob("*.table.json")}
    assert {"oof_models", "oof_paired", "oof_by_size"} <= set(tables), sorted(tables)
    t = json.loads(tables["oof_paired"].read_text())
    row = dict(zip(t["columns"], next(r for r in t["data"] if r[t["columns"].index("metric")] == "dice")))
    s = json.loads((out / "cv_summary.json").read_text())
    assert row["comparison"] == "Ours - U-Net" and row["mean_diff"] == pytest.approx(
        s["paired"]["Ours - U-Net"]["mean_diff"]
    )
    m = json.loads(tables["oof_models"].read_text())
    assert sorted(r[m["columns"].index("model")] for r in m["data"]) == ["Ours", "U-Net"]
