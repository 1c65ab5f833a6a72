"""Hydra entry point: ``python -m hemato.run model=ours`` (or ``-m`` for sweeps).

instantiate data + task + loggers + trainer -> fit -> test (best checkpoint) -> write the
run directory: ``metrics.json``, ``test_patients.csv``, ``test_slices.csv``, ``split.json``,
``config.yaml``, ``checkpoints/{best,last}.ckpt``, ``csv/metrics.csv`` (+ ``wandb/``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import numpy as np
import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

import hemato
from hemato.config_check import ConfigError, check_config
from hemato.engine import Contract
from hemato.evaluation.run_test import evaluate_patients
from hemato.inference import physical_cores, set_threads
from hemato.metrics.overlap import patient_table, slice_table, summarize
from hemato.metrics.subgroups import SubgroupThresholds
from hemato.precision import PrecisionChoice, cached_choice, choose_precision, probe_train_speed
from hemato.rundir import write_atomic
from hemato.tasks.checkpointing import AtomicCheckpointIO, init_network_from

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = str(ROOT / "conf")
if not OmegaConf.has_resolver("hemato_root"):
    OmegaConf.register_new_resolver("hemato_root", lambda: str(ROOT))  # the project folder
if not OmegaConf.has_resolver("hemato_channels"):  # network input channels of a 2.5D context
    OmegaConf.register_new_resolver("hemato_channels", lambda context: 2 * int(context) + 1)

SUMMARY_KEYS = (
    ("dice_patient", "Dice (per patient, 3D)"),
    ("iou_patient", "IoU (per patient, 3D)"),
    ("rvd_patient", "Rvd (per patient, 3D)"),
    ("rvd_signed_patient", "signed Rvd (per patient)"),
    ("dice_slice", "Dice (mean over bleed slices)"),
    ("iou_slice", "IoU (mean over bleed slices)"),
    ("rvd_slice", "Rvd (mean over bleed slices)"),
    ("volume_rmse_ml", "volume RMSE (ml)"),
    ("volume_mae_ml", "volume MAE (ml)"),
    ("fp_patients", "patients without bleed given a bleed"),
)


def provenance(cfg: DictConfig) -> dict[str, Any]:
    """What produced a run: seed, git commit (if any), package versions, machine."""
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        )
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    pkgs = (
        "torch",
        "lightning",
        "hydra-core",
        "omegaconf",
        "torchmetrics",
        "albumentations",
        "opencv-python-headless",
        "numpy",
        "scipy",
        "scikit-image",
        "pandas",
    )
    return {
        "seed": cfg.seed,
        "deterministic": cfg.deterministic,
        "git_commit": commit,
        "git_dirty": dirty,
        "hemato": hemato.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {p: ver(p) for p in pkgs},
        "torch_threads": torch.get_num_threads(),
    }


log = logging.getLogger("hemato")


def say(msg: str) -> None:
    """A run message: on stdout, and in the run's ``run.log`` (Hydra's file handler)."""
    print(msg)
    log.info(msg.removeprefix("[hemato] "))


def describe_data(cfg: DictConfig) -> str:
    """The training data in words, for the checkpoint's contract (reports print it)."""
    choice = HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None
    src = cfg.data.get("source") or {}
    target = str(src.get("_target_", ""))
    if target.endswith("PhantomSource") or (choice or "").startswith("phantom"):
        return f"synthetic phantom ({choice or 'phantom'}): not real CT"
    where = cfg.data.get("manifest") or src.get("path") or "?"
    fold = f", CV fold {cfg.data.fold} of {cfg.data.folds}" if cfg.data.get("folds") else ""
    return f"{choice or 'manifest'} ({Path(str(where)).parent.name}{fold})"


def resolve_precision(cfg: DictConfig, resumed_from: dict[str, Any] | None = None) -> PrecisionChoice:
    """``trainer.precision`` for this machine (``auto``: see ``hemato.precision``); the probe
    trains the configured network at the configured input size for a few steps. A resumed
    run keeps the precision it started with (``resumed_from``: its earlier provenance), so
    resuming gives the uninterrupted run's result."""
    from hemato.models.registry import build_model

    if resumed_from and str(cfg.trainer.get("precision")) == "auto" and resumed_from.get("precision"):
        return PrecisionChoice(resumed_from["precision"]["precision"], "resumed run: the precision it started with")

    model_kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    size = int(cfg.data.input_size)

    def probe() -> dict[str, float]:
        return probe_train_speed(
            lambda: build_model(**model_kwargs, weights_follow=True),
            size,
            batch_size=min(4, int(cfg.data.batch_size)),
            in_channels=int(model_kwargs.get("in_channels", 1)),
        )

    def decide() -> PrecisionChoice:
        return choose_precision(
            cfg.trainer.get("precision", "32-true"), str(cfg.trainer.get("accelerator", "cpu")), probe
        )

    if str(cfg.trainer.get("precision")) != "auto":
        return decide()
    init_only = {"encoder_weights"}  # how a network starts does not change its speed
    key = {
        "model": {k: v for k, v in model_kwargs.items() if k not in init_only},
        "input_size": size,
        "batch": min(4, int(cfg.data.batch_size)),
        "threads": torch.get_num_threads(),
    }
    return cached_choice(key, decide)


def cpu_threads_per_process(cfg: DictConfig) -> int:
    """Physical cores shared among the processes of a CPU DDP run (one process: all)."""
    tr = cfg.trainer
    procs = (
        int(tr.get("devices", 1)) if str(tr.get("accelerator")) == "cpu" and isinstance(tr.get("devices"), int) else 1
    )
    return max(1, physical_cores() // max(1, procs))


def table_columns(cfg: DictConfig, precision: str) -> dict[str, Any]:
    """The columns hemato.report's tables group runs by; every W&B run's config carries them,
    so a W&B runs table of a sweep lines up as Table 1 (and of the ablation sweep, Table 7)."""
    m = cfg.model
    choice = HydraConfig.get().runtime.choices.get("data") if HydraConfig.initialized() else None
    return {
        "model": str(m.name),
        "sa": bool(m.get("sa", False)),
        "ca": bool(m.get("ca", False)),
        "spa": bool(m.get("spa", False)),
        "dataset": choice or "?",
        "fold": cfg.data.get("fold"),
        "folds": cfg.data.get("folds"),
        "precision": precision,
        "seed": int(cfg.seed),
        "experiment": str(cfg.task_name),
        "input_size": int(cfg.data.input_size),
        "base_channels": int(m.get("base_channels", 0)),
    }


# the Table 1 / 2 metrics under stable names in every W&B run's summary
WANDB_SUMMARY = {
    "table1/dice_slice": "dice_slice",
    "table1/iou_slice": "iou_slice",
    "table1/rvd_slice": "rvd_slice",
    "table1/dice_patient": "dice_patient",
    "table1/iou_patient": "iou_patient",
    "table1/rvd_patient": "rvd_patient",
    "table2/volume_rmse_ml": "volume_rmse_ml",
    "table2/volume_mae_ml": "volume_mae_ml",
    "table2/n_volume_patients": "n_volume_patients",
    "table2/fp_patients": "fp_patients",
    "table2/n_patients": "n_patients",
    "table2/n_patients_with_bleed": "n_patients_with_bleed",
}


def build_loggers(cfg: DictConfig, out_dir: Path, precision: str = "32-true") -> list[Any]:
    loggers = []
    for name, lcfg in (cfg.get("logger") or {}).items():
        if lcfg is None:
            continue
        kwargs: dict[str, Any] = {}
        if name == "wandb":
            os.environ.setdefault("WANDB_MODE", "offline")  # offline unless the user says so
            os.environ.setdefault("WANDB_SILENT", "true")
            hc = HydraConfig.get()
            if hc.mode.name == "MULTIRUN":
                kwargs["group"] = Path(hc.sweep.dir).name
                kwargs["name"] = out_dir.name
            else:  # a single run: grouped with the runs beside it (e.g. the folds of one CV)
                kwargs["group"] = f"{cfg.task_name}/{out_dir.parent.name}"
                kwargs["name"] = out_dir.name
            kwargs["job_type"] = str(cfg.task_name)
        lg = hydra.utils.instantiate(lcfg, **kwargs)
        if name == "wandb":  # (instantiate's own first parameter is called config)
            lg.experiment.config.update(table_columns(cfg, precision), allow_val_change=True)
        loggers.append(lg)
    return loggers


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one experiment from a resolved config; returns the test summary."""
    t0 = time.time()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = None
    if cfg.get("ckpt_path") and (out_dir / "provenance.json").is_file():
        earlier = json.loads((out_dir / "provenance.json").read_text())
    set_threads(cfg.get("threads") or cpu_threads_per_process(cfg))
    L.seed_everything(cfg.seed, workers=True)
    write_atomic(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    write_atomic(out_dir / "provenance.json", json.dumps(provenance(cfg), indent=2))

    datamodule = hydra.utils.instantiate(cfg.data)
    src = datamodule.source
    if type(src).__name__ == "ManifestSource":  # check every file first, list every problem
        from hemato.data.check import check_dataset

        report = check_dataset(src.path, src.mask_mode, src.allow_outside)
        say(f"[hemato] dataset check: {report.summary()}")
        if not report.ok or (cfg.get("train", True) and not report.trainable):
            print(
                f"hemato: {src.path}: {'problems in the dataset' if not report.ok else 'slices without masks: the dataset cannot train a model'}",
                file=sys.stderr,
            )
            raise SystemExit(2)
    t_data = time.time()
    datamodule.setup("fit")
    say(f"[hemato] data ready in {time.time() - t_data:.1f} s")
    datamodule.save_split(out_dir / "split.json")
    n = {k: len(v) for k, v in datamodule.split.items()}
    say(f"[hemato] patients: train {n['train']}, val {n['val']}, test {n['test']} (split.json written)")

    contract = {
        **OmegaConf.to_container(cfg.task.get("contract") or {}, resolve=True),
        "trained_on": describe_data(cfg),
    }
    task = hydra.utils.instantiate(
        cfg.task,
        model=OmegaConf.to_container(cfg.model, resolve=True),
        input_size=cfg.data.input_size,
        contract=contract,
    )
    init = None
    if cfg.get("init_from") and cfg.get("train", True):  # fine-tuning: the pretrained network's weights
        init = init_network_from(task.net, str(cfg.init_from))
        task.hparams.contract["trained_on"] += f"; initialised from {init['trained_on']}"
        say(f"[hemato] network initialised from {init['path']} ({init['tensors']} tensors, {init['trained_on']})")
    choice = resolve_precision(cfg, earlier)
    say(f"[hemato] precision {choice.precision}: {choice.reason}")
    prov = provenance(cfg)
    prov["precision"] = choice.as_dict()
    if init:
        prov["init_from"] = init
    write_atomic(out_dir / "provenance.json", json.dumps(prov, indent=2))
    loggers = build_loggers(cfg, out_dir, choice.precision)
    ckpt = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor="val/dice_patient",
        mode="max",
        enable_version_counter=False,
    )
    # Lightning's save_last only refreshes last.ckpt when a new best is saved: keep a
    # separate checkpoint written at the end of every epoch, the one to resume from
    last = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        enable_version_counter=False,
    )
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        precision=choice.precision,
        logger=loggers or False,
        callbacks=[ckpt, last],
        default_root_dir=str(out_dir),
        plugins=[AtomicCheckpointIO()],
    )
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":  # resume this run directory's last checkpoint
        ckpt_path = out_dir / "checkpoints" / "last.ckpt"
        if not ckpt_path.is_file():
            raise FileNotFoundError(
                f"{ckpt_path}: no last checkpoint to resume (give hydra.run.dir=<the run's folder>)"
            )
    if cfg.get("train", True):
        if ckpt_path:
            say(f"[hemato] resuming from {ckpt_path}")
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        best = (
            (ckpt.best_model_path or None)
            if cfg.get("select", "best") == "best"
            else (last.last_model_path or last.best_model_path or None)
        )
    else:  # evaluation only: test the given checkpoint (config_check made sure there is one)
        best = str(ckpt_path)
        say(f"[hemato] testing {best} (train=false)")
    fit_s = time.time() - t0

    def result(test: dict[str, Any]) -> dict[str, Any]:  # metrics.json, around the test figures
        return {
            "model": cfg.model.name,
            "hemato_version": hemato.__version__,
            **test,
            "best_checkpoint": str(best) if best else None,
            "epochs": trainer.current_epoch,
            "trained": bool(cfg.get("train", True)),
            "world_size": trainer.world_size,
            "fit_seconds": round(fit_s, 1),
            "total_seconds": round(time.time() - t0, 1),
            "empty_policy": cfg.task.empty,
        }

    if not datamodule.split["test"]:  # a final model on every patient (data.test_fraction=0): nothing to test
        if trainer.is_global_zero:
            write_atomic(out_dir / "metrics.json", json.dumps(result({"test": None}), indent=2, default=float))
            say(f"[hemato] no test patients (data.test_fraction=0): trained, not tested; run directory: {out_dir}")
        return {}
    trainer.test(task, datamodule=datamodule, ckpt_path=best if best else None, verbose=False)
    summary = {k.removeprefix("test/"): v for k, v in task.test_summary.items()}

    if trainer.is_global_zero:
        # the reported test metrics come from the engine, the path hemato.predict takes
        # (head crop, contract threshold, component filter); the network's full-frame
        # metrics from trainer.test are kept beside them as "test_fullframe"
        ev = cfg.evaluation
        ids = datamodule.patient_ids
        test_ids = list(task.test_patients["patient_id"])
        extra, counts = evaluate_patients(
            task.net,
            [datamodule.record(p) for p in test_ids],
            contract=Contract.from_dict(
                {**task.hparams.contract, "input_size": cfg.data.input_size, "threshold": cfg.task.threshold}
            ),
            out_dir=out_dir / "predictions" if ev.save_predictions else None,
            thresholds=SubgroupThresholds(**ev.subgroups),
        )
        stats = {
            k: torch.as_tensor(np.array(counts[k]))
            for k in ("slice_index", "inter", "pred", "gt", "pixel_area_mm2", "thickness_mm")
        }
        stats["patient"] = torch.as_tensor([ids.index(p) for p in counts["patient_id"]])
        test_slices = slice_table(stats, ids, cfg.task.empty)
        patients = patient_table(test_slices, cfg.task.empty)
        fullframe = summary
        summary = {k.removeprefix("test/"): v for k, v in summarize(test_slices, patients, prefix="test/").items()}
        for col in ("irregular", "near_skull", "kinds", "irregular_reason", "near_skull_reason"):
            patients[col] = [datamodule.record(p).tags.get(col) for p in patients["patient_id"]]
        patients["reference_volume_ml"] = [datamodule.record(p).reference_volume_ml for p in patients["patient_id"]]
        patients = patients.merge(extra, on="patient_id", how="left")
        write_atomic(out_dir / "test_patients.csv", patients.to_csv(index=False))
        write_atomic(out_dir / "test_slices.csv", test_slices.to_csv(index=False))
        test = {
            "test": summary,
            "test_fullframe": fullframe,
            "test_path": "engine (hemato.engine.segment: head crop, contract threshold and component filter)",
        }
        write_atomic(out_dir / "metrics.json", json.dumps(result(test), indent=2, default=float))
        print_summary(cfg.model.name, summary, patients, out_dir, time.time() - t0)
        for lg in loggers:
            if type(lg).__name__ == "WandbLogger":
                log_to_wandb(lg, patients, out_dir)
                lg.experiment.summary.update({k: float(summary[v]) for k, v in WANDB_SUMMARY.items() if v in summary})
                # again at the end: Lightning's hyperparameter logging replaces "model" with the network's config
                lg.experiment.config.update(table_columns(cfg, choice.precision), allow_val_change=True)
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            import wandb

            wandb.finish()  # one W&B run per (multirun) job
    return summary


def log_to_wandb(logger: Any, patients: pd.DataFrame, out_dir: Path) -> None:
    """Per-patient volume table (wandb.Table) and a measured-vs-true volume figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [
        c
        for c in (
            "patient_id",
            "true_volume_ml",
            "pred_volume_ml",
            "volume_error_ml",
            "dice",
            "iou",
            "rvd",
            "true_abc2_ml",
            "pred_abc2_ml",
            "irregular",
            "near_skull",
        )
        if c in patients
    ]
    logger.log_table(
        key="test/patients", dataframe=patients[cols].astype({"irregular": str, "near_skull": str}, errors="ignore")
    )
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.scatter(patients["true_volume_ml"], patients["pred_volume_ml"], s=14)
    top = float(max(patients["true_volume_ml"].max(), patients["pred_volume_ml"].max(), 1.0))
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlabel("true volume (ml)")
    ax.set_ylabel("measured volume (ml)")
    fig.tight_layout()
    path = out_dir / "volumes.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    logger.log_image(key="test/volumes", images=[str(path)])


def print_summary(model: str, summary: dict[str, float], patients: pd.DataFrame, out_dir: Path, seconds: float) -> None:
    say(
        f"\n[hemato] test results, model={model} ({int(summary.get('n_patients', 0))} patients, {int(summary.get('n_patients_with_bleed', 0))} with bleed)"
    )
    for key, label in SUMMARY_KEYS:
        v = summary.get(key, math.nan)
        say(f"  {label:<42s} {v:8.3f}")
    say(f"  run directory: {out_dir}   ({seconds / 60:.1f} min)\n")


def _remove_if_unused(out: Path) -> None:
    """Delete a run folder that a refused config left with nothing but Hydra's own files."""
    import shutil

    if not out.is_dir():
        return
    own = {".hydra", "run.log"}
    if all(p.name in own for p in out.iterdir()) and not (
        (out / "run.log").is_file() and (out / "run.log").stat().st_size
    ):
        shutil.rmtree(out, ignore_errors=True)
        try:
            out.parent.rmdir()  # the task's folder too, if that run was its only one
        except OSError:
            pass


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float:
    try:
        check_config(cfg)
    except ConfigError as e:
        print(f"hemato: config error: {e}", file=sys.stderr)
        _remove_if_unused(Path(str(cfg.paths.output_dir)))
        sys.exit(2)
    summary = train(cfg)
    return float(summary.get("dice_patient", math.nan))


if __name__ == "__main__":
    main()
