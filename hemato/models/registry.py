"""Name -> network registry, so that ``model=NAME`` in Hydra resolves to a class.

``build_model(name="ours", base_channels=16, ...)`` builds a registered network; every
network takes ``in_channels``, ``out_channels``, ``base_channels`` and returns LOGITS of
shape (B, out_channels, H, W) for an input (B, in_channels, H, W). The sigmoid of the paper's
classification layer is applied by the task (with the loss) and at prediction.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

SWITCHES = ("sa", "ca", "spa")  # the paper's attention modules, where a network has them


@dataclass(frozen=True)
class NetworkInfo:
    """What the reports and tools know about a registered network: its display ``label``,
    its place in tables (``order``), whether it is one of the paper's four (``paper``), and for
    a network with attention switches, the label with all of them off and the prefix of a
    partial one (``U-Net+SA``)."""

    name: str
    cls: type[nn.Module]
    label: str
    order: int
    paper: bool
    off_label: str | None
    partial_prefix: str | None

    def switches(self) -> dict[str, bool]:
        """The attention switches the class takes, with their defaults."""
        params = inspect.signature(self.cls.__init__).parameters
        return {k: bool(params[k].default) for k in SWITCHES if k in params}

    def label_for(self, kwargs: dict[str, Any]) -> tuple[str, dict[str, bool]]:
        """Label of the network built with ``kwargs``: ``label`` at its default switches, else
        ``off_label`` (all off) or ``partial_prefix`` + the modules on."""
        defaults = self.switches()
        flags = {k: bool(kwargs.get(k, d)) for k, d in defaults.items()}
        if flags == defaults:
            return self.label, flags
        if not any(flags.values()):
            return self.off_label or self.label, flags
        return (self.partial_prefix or self.label) + "+" + "+".join(k.upper() for k, v in flags.items() if v), flags


_REGISTRY: dict[str, NetworkInfo] = {}


def register(
    name: str,
    label: str | None = None,
    order: int = 100,
    paper: bool = False,
    off_label: str | None = None,
    partial_prefix: str | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a network under ``name``: the one place a network is declared
    (reports, CV labels and bench lists read it from here)."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise KeyError(f"model name {name!r} registered twice")
        _REGISTRY[name] = NetworkInfo(name, cls, label or name, order, paper, off_label, partial_prefix)
        cls.registry_name = name  # type: ignore[attr-defined]
        return cls

    return deco


def available() -> list[str]:
    """Registered model names."""
    _import_all()
    return sorted(_REGISTRY)


def networks(paper: bool | None = None) -> list[NetworkInfo]:
    """Registered networks in table order (``paper=True``: the paper's four only)."""
    _import_all()
    return sorted((i for i in _REGISTRY.values() if paper is None or i.paper == paper), key=lambda i: (i.order, i.name))


def info(name: str) -> NetworkInfo:
    """The registration of ``name`` (clear error for an unknown name)."""
    _import_all()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def get(name: str) -> type[nn.Module]:
    """The network class registered as ``name`` (clear error for an unknown name)."""
    return info(name).cls


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
