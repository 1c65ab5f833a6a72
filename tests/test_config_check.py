"""Bad configs fail at once with one clear line (before any data or training)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from hemato.config_check import ConfigError, check_config
from hemato.run import CONF_DIR


def cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


# every shipped profile, so a new one cannot slip in unchecked
EXPERIMENTS = sorted(f.stem for f in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


def test_experiment_profiles_found() -> None:
    assert {"cpu", "cpu_long", "cpu_hires", "paper", "table1", "ablation"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("exp", EXPERIMENTS)
@pytest.mark.parametrize("model", ["ours", "unet", "fcn8s", "segnet", "ours_plain", "ours_sa", "ours_sa_ca"])
def test_shipped_configs_are_valid(exp: str, model: str) -> None:
    check_config(cfg(f"experiment={exp}", f"model={model}"))


@pytest.mark.parametrize(
    "override,needle",
    [
        ("task.optimizer.lr=-0.001", "task.optimizer.lr"),
        ("data.input_size=100", "divisible by 32"),
        ("data.test_fraction=1.5", "data.test_fraction"),
        ("data.test_fraction=-0.1", "data.test_fraction"),
        ("model.name=resnet", "not a registered network"),
        ("data.split_file=/nonexistent/split.json", "does not exist"),
        ("data=manifest data.manifest=/nonexistent/slices.csv", "data.manifest"),
        ("data=manifest", "data.manifest=/path/to/slices.csv"),
        ("data.context=1 model.in_channels=1", "model.in_channels=1 but data.context=1 feeds 3 channels"),
        ("data.context=-1", "data.context=-1"),
        ("init_from=/nonexistent/pre.ckpt", "init_from=/nonexistent/pre.ckpt does not exist"),
    ],
)
def test_bad_values_are_named(override: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        check_config(cfg(*override.split()))


def test_context_sets_the_network_channels_and_the_contract() -> None:
    c = cfg("experiment=ctich", "model=unet")
    check_config(c)
    assert c.data.context == 1 and c.model.in_channels == 3 and c.task.contract.context == 1
    c = cfg("data.context=2")
    assert c.model.in_channels == 5 and c.task.contract.context == 2
    assert cfg().model.in_channels == 1  # the paper's 2D input by default


def test_cli_exits_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.run", "task.optimizer.lr=-1", f"paths.runs_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("hemato: config error: task.optimizer.lr")
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.run", "model=resnet", f"paths.runs_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "model/resnet" in proc.stderr and "Traceback" not in proc.stderr


def test_a_gpu_config_without_a_gpu_fails_before_any_work() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(ConfigError, match="sees no CUDA GPU"):
        check_config(cfg("trainer=gpu", "experiment=paper"))


def test_refused_configs_leave_no_run_folder_and_resume_needs_a_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.run", "ckpt_path=last", f"paths.runs_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ckpt_path=last: no " in proc.stderr.strip().splitlines()[-1] and "hydra.run.dir=" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "hemato.run", "data=manifest", f"paths.runs_dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        proc.returncode == 2
        and proc.stderr.strip().splitlines()[-1]
        == "hemato: config error: data=manifest needs the dataset: data.manifest=/path/to/slices.csv"
    )
    assert not [p for p in tmp_path.rglob("*") if p.is_dir() and not any(p.iterdir())], "empty run folders left behind"
    assert not list(tmp_path.rglob("config.yaml"))


def test_init_from_another_network_fails_before_any_work(tmp_path: Path) -> None:
    """A pretrained checkpoint of another input width (data.context) is refused by the config
    check, naming the file and the tensor."""
    import lightning as L

    from hemato.tasks.segmentation import SegmentationTask

    c = cfg("experiment=ctich_pretrain", "model.base_channels=4", "model.num_heads=2")
    task = SegmentationTask(dict(c.model), {"_target_": "torch.optim.SGD", "lr": 0.1})
    trainer = L.Trainer(accelerator="cpu", logger=False, max_epochs=0)
    trainer.strategy.connect(task)
    trainer.save_checkpoint(tmp_path / "pre.ckpt")
    ok = cfg("experiment=ctich", "model.base_channels=4", "model.num_heads=2", f"init_from={tmp_path}/pre.ckpt")
    check_config(ok)
    bad = cfg(
        "experiment=ctich",
        "data.context=0",
        "model.base_channels=4",
        "model.num_heads=2",
        f"init_from={tmp_path}/pre.ckpt",
    )
    with pytest.raises(ConfigError, match=r"pre\.ckpt: encoders\.0\.conv1\.weight has shape \(4, 3, 3, 3\)"):
        check_config(bad)
