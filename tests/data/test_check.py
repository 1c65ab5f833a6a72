"""The dataset check lists every problem of a broken dataset, and passes the shipped ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hemato.data.check import check_dataset, main
from tests.data.files import write_png

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_samples_are_clean(capsys) -> None:
    assert main([str(ROOT / "data" / "ctich-sample" / "slices.csv")]) == 0
    out = capsys.readouterr().out
    assert "5 patients, 36 slices, 36 with bleed" in out and "spacing/thickness unknown" in out


def test_broken_dataset_lists_every_problem(tmp_path: Path, capsys) -> None:
    ds = tmp_path / "ds"
    img, mask = np.full((16, 16), 90, np.uint8), np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    write_png(ds / "a0.png", img)
    write_png(ds / "a0m.png", mask)
    write_png(ds / "a1.png", np.zeros((20, 20), np.uint8))  # other size
    write_png(ds / "a1m.png", np.zeros((20, 20), np.uint8))
    write_png(ds / "b0.png", img)
    write_png(ds / "b0m.png", (np.arange(256).reshape(16, 16)).astype(np.uint8))  # not binary
    (ds / "c0.png").write_bytes(b"\x89PNG garbage")  # corrupt
    write_png(ds / "c0m.png", np.zeros((8, 8), np.uint8))
    (ds / "slices.csv").write_text(
        "patient,slice_index,image,mask,spacing_row_mm,spacing_col_mm,thickness_mm\n"
        "A,0,a0.png,a0m.png,0.5,0.5,5\n"
        "A,1,a1.png,a1m.png,0.5,0.5,5\n"
        "B,0,b0.png,b0m.png,0.5,0.5,5\n"
        "B,1,b0.png,missing.png,0.6,0.5,5\n"
        "C,0,c0.png,c0m.png,,,\n"
        "C,1,../escape.png,c0m.png,,,\n"
    )
    rep = check_dataset(ds)
    text = "\n".join(rep.problems)
    for needle in (
        "patient A slice 1: image size (20, 20) differs",
        "b0m.png: mask is not binary",
        "missing.png: file does not exist",
        "patient B: different spacing_row_mm",
        "c0.png",
        "leaves the dataset folder",
    ):
        assert needle in text, (needle, text)
    assert len(rep.problems) >= 6 and rep.patients == 3 and rep.slices == 6
    assert rep.volumes_ml == {"A": 16 * 0.25 * 5 / 1000}
    assert main([str(ds)]) == 1
    assert "problems:" in capsys.readouterr().out


def test_a_manifest_without_masks_is_fine_for_prediction_not_for_training(tmp_path: Path, capsys) -> None:
    write_png(tmp_path / "i0.png", np.full((16, 16), 90, np.uint8))
    write_png(tmp_path / "i1.png", np.full((16, 16), 90, np.uint8))
    (tmp_path / "slices.csv").write_text("patient,slice_index,image,mask\nA,0,i0.png,\nA,1,i1.png,\n")
    rep = check_dataset(tmp_path / "slices.csv")
    assert rep.ok and not rep.trainable and rep.slices_without_mask == 2
    assert main([str(tmp_path / "slices.csv")]) == 0
    assert "NOT usable for training: 2 of 2 slices have no mask" in capsys.readouterr().out
    assert main([str(tmp_path / "slices.csv"), "--training"]) == 1
