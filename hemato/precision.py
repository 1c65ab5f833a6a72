"""Numeric precision chosen per machine, by capability and by measurement.

``trainer.precision=auto`` (the CPU default) resolves here before the Trainer is built:

* CUDA: ``bf16-mixed`` where the GPU supports bf16, else ``32-true``.
* CPU without native bf16 instructions (no ``avx512_bf16`` / ``amx_bf16`` flag): ``32-true``.
  Emulated bf16 was measured ~10x slower than fp32 on an AVX2-only CPU.
* CPU with native bf16: a short probe trains the configured network for a few steps in
  fp32 and in bf16 autocast, and bf16 is chosen only if it is at least ``min_speedup``
  faster. (Zen 4 with AVX512-BF16, ``ours`` 256 px width 16: 5.4 -> 10.9 slices/s.)

The choice and its reason go to the run's ``provenance.json``. An explicit ``bf16-mixed`` on
a CPU without native bf16 is refused (``check_config``). A probe's decision is kept per CPU,
network, input size, batch and thread count (:func:`cached_choice`, in ``HEMATO_CACHE_DIR`` or
``~/.cache/hemato``), so the runs of one cross-validation on one machine train alike: where
the two precisions are near a tie, a fresh probe per run chose each by turns.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    """The Lightning precision string used and why (``probe`` holds measured slices/s)."""

    precision: str
    reason: str
    probe: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU has native bf16 arithmetic (AMX-BF16 or AVX512-BF16)."""
    if flags is None:
        from hemato.inference import cpu_flags

        flags = cpu_flags()
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def cache_dir() -> Path:
    """Where measured decisions are kept: ``HEMATO_CACHE_DIR``, else ``~/.cache/hemato``."""
    return Path(os.environ.get("HEMATO_CACHE_DIR") or Path.home() / ".cache" / "hemato")


def cached_choice(key: dict[str, Any], decide: Callable[[], PrecisionChoice]) -> PrecisionChoice:
    """``decide()`` once per ``key`` (JSON-able: CPU, network, sizes, threads) on this machine;
    a decision that ran a probe is stored and later calls with the same key return it (its
    reason says from when and where). Delete the file, or set ``trainer.precision``, to
    decide anew; an unreadable file is measured again."""
    from hemato.inference import cpu_flags, cpu_model

    full = {**key, "cpu": cpu_model(), "bf16_flags": sorted(f for f in cpu_flags() if f in NATIVE_BF16_FLAGS),
            "torch": torch.__version__}  # fmt: skip
    path = (
        cache_dir() / "precision" / f"{hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:16]}.json"
    )
    try:
        d = json.loads(path.read_text())
        return PrecisionChoice(d["precision"], f"{d['reason']} (probe of {d['when']}, kept in {path})", d["probe"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    choice = decide()
    if choice.probe:
        from hemato.rundir import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        write_atomic(path, json.dumps({**choice.as_dict(), "when": when, "key": full}, indent=2))
    return choice


def probe_train_speed(
    make_net: Callable[[], torch.nn.Module],
    input_size: int,
    batch_size: int = 4,
    steps: int = 4,
    channels_last: bool = True,
    in_channels: int = 1,
) -> dict[str, float]:
    """Training slices/s of a fresh network in fp32 and in bf16 autocast (CPU).

    Each precision gets one warm-up step and ``steps`` timed steps of RMSprop on random
    (batch_size, in_channels, input_size, input_size) inputs, the two precisions' steps
    interleaved, and is rated by its fastest step: a single pass of each, one after the other,
    chose bf16 and fp32 by turns for one network on one CPU when another training shared the
    cores (probe ratios 0.84-1.87). Returns ``{"fp32": s/s, "bf16": s/s}``.
    """
    with torch.random.fork_rng():  # the probe must not move the run's random state
        return _probe(make_net, input_size, batch_size, steps, channels_last, in_channels)


def _probe(
    make_net: Callable[[], torch.nn.Module],
    input_size: int,
    batch_size: int,
    steps: int,
    channels_last: bool,
    in_channels: int = 1,
) -> dict[str, float]:
    out: dict[str, float] = {}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, in_channels, input_size, input_size, generator=g).contiguous(memory_format=fmt)
    y = (torch.rand(batch_size, 1, input_size, input_size, generator=g) > 0.9).float()

    def step(net: torch.nn.Module, opt: torch.optim.Optimizer, bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    nets = {}
    for name in ("fp32", "bf16"):
        net = make_net().to(memory_format=fmt).train()
        nets[name] = (net, torch.optim.RMSprop(net.parameters(), lr=1e-4))
        step(*nets[name], name == "bf16")  # warm-up
    best = {name: float("inf") for name in nets}
    for i in range(steps):  # interleaved, fastest step of each: another process on the cores
        for name in ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32"):  # slows both alike
            t0 = time.perf_counter()
            step(*nets[name], name == "bf16")
            best[name] = min(best[name], time.perf_counter() - t0)
    for name, t in best.items():
        out[name] = batch_size / t
    return out


def choose_precision(
    requested: str | int,
    accelerator: str,
    probe: Callable[[], dict[str, float]] | None = None,
    flags: set[str] | None = None,
    min_speedup: float = 1.1,
) -> PrecisionChoice:
    """Resolve ``requested`` (``auto`` or any Lightning precision) for ``accelerator``
    (``cpu`` / ``gpu`` / ``cuda`` / ``auto``). ``probe`` returns ``{"fp32", "bf16"}`` slices/s;
    it runs only on a CPU with native bf16 and ``requested == "auto"``."""
    req = str(requested)
    if req != "auto":
        return PrecisionChoice(req, "set in the config")
    acc = str(accelerator)
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16-mixed", "GPU with bf16 support")
        return PrecisionChoice("32-true", "GPU without bf16 support")
    if not native_bf16(flags):
        return PrecisionChoice(
            "32-true", "CPU has no native bf16 (no AVX512-BF16 / AMX-BF16 flag): emulated bf16 is much slower"
        )
    if probe is None:
        return PrecisionChoice("bf16-mixed", "CPU has native bf16 (no probe run)")
    rates = probe()
    ratio = rates["bf16"] / rates["fp32"]
    rates = {k: round(v, 2) for k, v in rates.items()}
    if ratio >= min_speedup:
        return PrecisionChoice(
            "bf16-mixed", f"CPU has native bf16 and the probe ran {ratio:.2f}x faster in bf16", rates
        )
    return PrecisionChoice(
        "32-true", f"CPU has native bf16 but the probe ran only {ratio:.2f}x as fast in bf16 (< {min_speedup}x)", rates
    )


def probe_inference_speed(
    fwd32: Callable[[torch.Tensor], torch.Tensor],
    fwd16: Callable[[torch.Tensor], torch.Tensor],
    input_size: int,
    batch_size: int = 4,
    steps: int = 2,
    in_channels: int = 1,
) -> dict[str, float]:
    """Inference slices/s of two forward functions (fp32 and bf16) on random
    (batch_size, in_channels, input_size, input_size) inputs."""
    x = torch.rand(batch_size, in_channels, input_size, input_size, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, f in (("fp32", fwd32), ("bf16", fwd16)):
        f(x)
        t0 = time.perf_counter()
        for _ in range(steps):
            f(x)
        out[name] = steps * batch_size / (time.perf_counter() - t0)
    return out
