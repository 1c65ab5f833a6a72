"""Name -> network registry, so that ``model=NAME`` in Hydra resolves to a class.

``build_model(name="ours", base_channels=16, ...)`` builds a registered network; every
network takes ``in_channels``, ``out_channels``, ``base_channels`` and returns LOGITS of
shape (B, out_channels, H, W) for an input (B, in_channels, H, W). The sigmoid of the paper's
classification layer is applied by the task (with the loss) and at prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a network under ``name``."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise KeyError(f"model name {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def available() -> list[str]:
    """Registered model names."""
    _import_all()
    return sorted(_REGISTRY)


def get(name: str) -> type[nn.Module]:
    """The network class registered as ``name`` (clear error for an unknown name)."""
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_model(name: str, weights_follow: bool = False, **kwargs: Any) -> nn.Module:
    """Instantiate the registered network ``name`` with its keyword arguments.

    ``weights_follow=True``: the caller loads a full state dict next (a checkpoint, a packed
    model), so initialisation-only arguments (a class's ``init_only``, e.g. pretrained
    encoder weights) are set to None: a trained model never needs its ImageNet file."""
    cls = get(name)
    if weights_follow:
        kwargs = {**kwargs, **{k: None for k in getattr(cls, "init_only", ()) if k in kwargs}}
    return cls(**kwargs)


NOT_NETWORKS = {"blocks", "registry"}  # modules of hemato.models that define no network


def _import_all() -> None:
    """Import every network module of ``hemato.models`` (their ``@register`` decorators fill the
    registry): a new network is one module, found here without being listed anywhere."""
    import importlib
    import pkgutil
    from pathlib import Path

    for m in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if m.name not in NOT_NETWORKS and not m.name.startswith("_"):
            importlib.import_module(f"hemato.models.{m.name}")
