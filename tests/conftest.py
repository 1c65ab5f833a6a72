"""Shared fixtures: a small phantom cohort as records (fast, 64x64 slices)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# experiment=ctich reads the full collection from ../shared/data/ctich beside the checkout.
# Where a clone has no such folder, configs that name it are checked against the shipped
# sample's manifest instead (the tests never train on the full collection).
_ROOT = Path(__file__).resolve().parents[1]
if not (_ROOT.parent / "shared" / "data" / "ctich" / "slices.csv").is_file():
    os.environ.setdefault("HEMATO_CTICH", str(_ROOT / "data" / "ctich-sample" / "slices.csv"))

# precision=auto keeps its probe's decision per machine (hemato.precision.cached_choice): the
# tests keep theirs apart from the user's, fresh each session (child processes inherit it)
os.environ.setdefault("HEMATO_CACHE_DIR", tempfile.mkdtemp(prefix="hemato-test-cache-"))

from hemato.data.phantom import PhantomSource  # noqa: E402  (after the environment is set)


class ListSource:
    """A DataSource over records already in memory."""

    def __init__(self, records):
        self.records = records

    def load(self):
        return list(self.records)


@pytest.fixture(scope="session")
def small_records():
    return PhantomSource(n_patients=12, image_size=64, seed=7, min_slices=20, max_slices=22).load()


@pytest.fixture()
def small_source(small_records):
    return ListSource(small_records)


@pytest.fixture(scope="session")
def tiny_cv_runs(tmp_path_factory):
    """Two tiny fold models of a 2-fold cross-validation of the shipped real sample
    (data=ctich_sample; 64 px, width 4, one epoch), trained once per test session for the
    tests that evaluate (test_cv) and pack (test_weights) fold runs. Returns their run dirs;
    a test that writes into a run copies it first."""
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("tiny_cv")
    runs = []
    for k in (0, 1):
        run = tmp / f"ours_fold{k}"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "hemato.run",
                "data=ctich_sample",
                "data.folds=2",
                f"data.fold={k}",
                "data.val_fraction=0.3",
                "data.input_size=64",
                "data.samples_per_epoch=16",
                "trainer.max_epochs=1",
                "model.base_channels=4",
                "trainer.enable_progress_bar=false",
                "select=last",
                "task.contract.orientation=any",
                "task.contract.min_component_px=2",
                "logger=none",
                "trainer.precision=32-true",  # the same weights on every CPU (auto's choice is timed)
                f"hydra.run.dir={run}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(run)
    return runs
