"""The machine's theoretical and calibrated fp32 / bf16 peak (GFLOP/s), for utilisation."""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path
from typing import Any

import torch

from hemato.inference import cpu_flags, physical_cores


def gemm_rate(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n x n matrix product (oneDNN/MKL run close to the cores' real
    peak: a measured lower bound of it, at the clock the cores actually run under load)."""
    a = torch.rand(n, n).to(dtype)
    b = torch.rand(n, n).to(dtype)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best


def calibrated_peak(peak: dict[str, Any], measure: bool = True) -> dict[str, Any]:
    """The fp32 peak used for utilisation: the derivation from the nominal clock, or the
    measured fp32 GEMM rate where that is higher (the cores then run above the nominal clock,
    and the GEMM is a lower bound of the real peak), so no utilisation exceeds 100 %. Adds a
    bf16 peak on CPUs with native bf16: AVX512-BF16 does 2x the fp32 FLOP/cycle, AMX-BF16
    16x (1024 per cycle per core); again at least the measured bf16 GEMM."""
    from hemato.precision import native_bf16

    out = dict(peak)
    derived = peak["peak_gflops"]
    flags = cpu_flags()
    if measure:
        g32 = gemm_rate(torch.float32)
        out["gemm_fp32_gflops"] = g32
        if g32 > derived:
            ghz = g32 / (peak["cores"] * peak["flop_per_cycle"])
            out["peak_gflops"] = g32
            out["derivation"] = (
                f"{peak['derivation']}; the measured fp32 GEMM ran {g32:.0f} GFLOP/s, above it (the cores run at >= {ghz:.2f} GHz "
                f"under load, not the nominal {peak['ghz']:.2f}): peak = {g32:.0f} GFLOP/s (measured lower bound)"
            )
        else:
            out["derivation"] = (
                f"{peak['derivation']} (fp32 GEMM measured {g32:.0f} GFLOP/s = {100 * g32 / derived:.0f} % of it)"
            )
    if native_bf16(flags):
        factor = 16 if "amx_bf16" in flags else 2
        d16 = derived * factor
        out["bf16_peak_gflops"] = d16
        how = f"{'AMX-BF16' if factor == 16 else 'AVX512-BF16'}: {factor} x the fp32 derivation = {d16:.0f} GFLOP/s"
        if measure:
            g16 = gemm_rate(torch.bfloat16)
            out["gemm_bf16_gflops"] = g16
            if g16 > d16:
                out["bf16_peak_gflops"] = g16
                how += f"; measured bf16 GEMM {g16:.0f} GFLOP/s is higher: peak = {g16:.0f} (measured lower bound)"
            else:
                how += f" (bf16 GEMM measured {g16:.0f} GFLOP/s)"
        out["bf16_derivation"] = how
    return out


def cpu_peak(
    ghz: float | None = None, fma_units: int | None = None, cpuinfo: str | None = None, cores: int | None = None
) -> dict[str, Any]:
    """Theoretical fp32 peak of this CPU: cores x clock x FLOP/cycle, with its derivation.

    FLOP/cycle = SIMD fp32 lanes x 2 (fused multiply-add) x FMA units per core. The lanes
    come from the CPU flags (AVX-512: 16, AVX2: 8, SSE: 4); the number of FMA units is not
    visible in the flags: 2 is assumed (Zen 2-4, Haswell and later client cores, Xeon
    Gold/Platinum), override it with ``--fma-units``. The clock is the nominal one the
    kernel reports (``cpu MHz`` in /proc/cpuinfo, or the model name's "@ x GHz"): turbo can
    make the real peak higher, AVX-512 licence clocks lower.
    """
    if cpuinfo is None:
        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    info = cpuinfo
    flags = cpu_flags(info)
    model = (re.search(r"^model name\s*:\s*(.*)$", info, re.M) or [None, platform.processor()])[1]
    if ghz is None:
        m = re.search(r"@\s*([\d.]+)\s*GHz", model or "")
        mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M)
        ghz = float(m.group(1)) if m else (float(mhz.group(1)) / 1000 if mhz else float("nan"))
    if "avx512f" in flags:
        isa, lanes = "AVX-512", 16
    elif "avx2" in flags:
        isa, lanes = "AVX2", 8
    elif "avx" in flags:
        isa, lanes = "AVX", 8
    else:
        isa, lanes = "SSE", 4
    has_fma = "fma" in flags or "avx512f" in flags
    units = fma_units if fma_units is not None else 2
    per_cycle = lanes * (2 if has_fma else 1) * units
    cores = cores or physical_cores()
    peak = cores * ghz * per_cycle
    how = (
        f"{cores} physical cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle "
        f"({isa}: {lanes} fp32 lanes x {2 if has_fma else 1} ({'FMA' if has_fma else 'no FMA'}) x {units} FMA units"
        f"{'' if fma_units is not None else ' (assumed)'}) = {peak:.0f} GFLOP/s"
    )
    return {
        "cpu": model,
        "isa": isa,
        "cores": cores,
        "ghz": ghz,
        "flop_per_cycle": per_cycle,
        "peak_gflops": peak,
        "derivation": how,
    }
