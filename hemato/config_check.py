"""Check a composed config before any work starts: one clear line per problem.

Hydra itself rejects unknown group options (``model=resnet``); this catches values that
would otherwise fail deep inside training, or silently do the wrong thing.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from hemato.models import available
from hemato.models.registry import get
from hemato.precision import native_bf16


class ConfigError(ValueError):
    """A configuration value that cannot work; the message names the key."""


def check_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` listing every problem found in ``cfg``."""
    problems: list[str] = []
    from omegaconf import OmegaConf

    src_target = str((cfg.data.get("source") or {}).get("_target_", ""))
    if (
        src_target.endswith("ManifestSource")
        and "manifest" in cfg.data
        and (OmegaConf.is_missing(cfg.data, "manifest") or cfg.data.manifest is None)
    ):
        raise ConfigError("data=manifest needs the dataset: data.manifest=/path/to/slices.csv")
    acc = str(cfg.trainer.get("accelerator"))
    if acc in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={acc} but this torch build sees no CUDA GPU: use trainer=cpu (and a CPU-sized experiment=...)"
            )
    name = cfg.model.get("name")
    if name not in available():
        problems.append(f"model.name={name!r} is not a registered network ({', '.join(available())})")
    size = cfg.data.get("input_size")
    if not isinstance(size, int) or size <= 0:
        problems.append(f"data.input_size={size!r} must be a positive integer")
    elif name in available():
        div = max(getattr(get(name), "size_divisor", 16), 32)
        if size % div:
            problems.append(f"data.input_size={size} must be divisible by {div} (the networks downsample by up to 32)")
    lr = cfg.task.optimizer.get("lr")
    if lr is None or not float(lr) > 0:
        problems.append(f"task.optimizer.lr={lr!r} must be a positive number")
    tf = cfg.data.get("test_fraction")
    if tf is None or not 0 <= float(tf) < 1:
        problems.append(f"data.test_fraction={tf!r} must be in [0, 1) (0: a final model, no test patients)")
    vf = cfg.data.get("val_fraction")
    if vf is None or not 0 <= float(vf) < 1:
        problems.append(f"data.val_fraction={vf!r} must be in [0, 1)")
    if int(cfg.data.get("batch_size", 0)) < 1:
        problems.append(f"data.batch_size={cfg.data.get('batch_size')!r} must be >= 1")
    if int(cfg.trainer.get("max_epochs", 1)) < 1:
        problems.append(f"trainer.max_epochs={cfg.trainer.get('max_epochs')!r} must be >= 1")
    if not 0 < float(cfg.task.get("threshold", 0.5)) < 1:
        problems.append(f"task.threshold={cfg.task.get('threshold')!r} must be in (0, 1)")
    if (
        str(cfg.trainer.get("accelerator")) == "cpu"
        and "bf16" in str(cfg.trainer.get("precision"))
        and not native_bf16()
    ):
        problems.append(
            f"trainer.precision={cfg.trainer.precision} on a CPU without native bf16 (no AVX512-BF16/AMX-BF16): emulated bf16 was measured ~10x slower than fp32; use trainer.precision=auto or 32-true"
        )
    if cfg.data.get("manifest") and not Path(str(cfg.data.manifest)).exists():
        problems.append(f"data.manifest={cfg.data.manifest} does not exist")
    src = cfg.data.get("source") or {}
    for key in ("manifest", "path"):
        if src.get(key) and not Path(str(src[key])).exists():
            problems.append(f"data.source.{key}={src[key]} does not exist")
    if cfg.data.get("split_file") and not Path(str(cfg.data.split_file)).is_file():
        problems.append(f"data.split_file={cfg.data.split_file} does not exist")
    if cfg.get("ckpt_path") == "last":
        last = Path(str(cfg.paths.output_dir)) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            problems.append(
                f"ckpt_path=last: no {last}; give the run's folder: hydra.run.dir=<runs/.../the run> ckpt_path=last"
            )
    if not cfg.get("train", True):
        ck = cfg.get("ckpt_path")
        if not ck or ck == "last":
            problems.append("train=false needs ckpt_path=<a checkpoint file> to test")
        elif not Path(str(ck)).is_file():
            problems.append(f"ckpt_path={ck} does not exist")
    if cfg.get("init_from"):
        problems += _init_from_problems(cfg)
    if cfg.get("select", "best") not in ("best", "last"):
        problems.append(f"select={cfg.get('select')!r} must be best or last")
    context = cfg.data.get("context", 0)
    if not isinstance(context, int) or context < 0:
        problems.append(f"data.context={context!r} must be an integer >= 0")
    elif int(cfg.model.get("in_channels", 1)) != 2 * context + 1:
        problems.append(
            f"model.in_channels={cfg.model.in_channels} but data.context={context} feeds {2 * context + 1} channels (leave model.in_channels at its default)"
        )
    if problems:
        raise ConfigError("; ".join(problems))


def _init_from_problems(cfg: DictConfig) -> list[str]:
    """``init_from``: the file exists and its network fits the configured one (name, width,
    input channels), tried on a freshly built network before any data is read."""
    from omegaconf import OmegaConf

    from hemato.models.registry import build_model
    from hemato.tasks.checkpointing import init_network_from

    path = Path(str(cfg.init_from))
    if not path.is_file():
        return [f"init_from={path} does not exist (a training checkpoint, e.g. runs/.../checkpoints/last.ckpt)"]
    if cfg.model.get("name") not in available():
        return []  # reported above
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "_target_"}
    try:
        init_network_from(build_model(**kwargs, weights_follow=True), path)
    except ValueError as e:
        return [str(e)]
    return []
