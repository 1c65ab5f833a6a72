"""The benchmark harness: peak derivation, FLOP counting, and one tiny end-to-end run
(figures are printed and written, never asserted as timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hemato.bench import count_flops, cpu_peak

ZEN3 = "model name\t: AMD EPYC 7B13 64-Core Processor\ncpu MHz\t\t: 2450.000\nflags\t\t: fpu sse sse2 avx fma avx2\n"
XEON = "model name\t: Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz\ncpu MHz\t\t: 3100.000\nflags\t\t: fpu sse avx fma avx2 avx512f avx512bw\n"


def test_peak_from_simd_width_fma_and_clock() -> None:
    zen = cpu_peak(cpuinfo=ZEN3, cores=2)
    assert (zen["isa"], zen["flop_per_cycle"]) == ("AVX2", 32)  # 8 lanes x 2 (FMA) x 2 units
    assert zen["peak_gflops"] == pytest.approx(2 * 2.45 * 32)
    assert "2 physical cores x 2.45 GHz x 32 FLOP/cycle" in zen["derivation"]
    xeon = cpu_peak(cpuinfo=XEON, cores=4)
    assert (xeon["isa"], xeon["flop_per_cycle"], xeon["ghz"]) == ("AVX-512", 64, 2.5)  # nominal clock from the name
    assert cpu_peak(cpuinfo=XEON, cores=4, fma_units=1)["peak_gflops"] == pytest.approx(4 * 2.5 * 32)
    assert (
        cpu_peak(cpuinfo="flags\t: sse sse2\ncpu MHz\t: 1000\n", cores=1)["flop_per_cycle"] == 8
    )  # 4 lanes, mul + add


def test_calibrated_peak_is_never_below_a_measured_gemm(monkeypatch: pytest.MonkeyPatch) -> None:
    import hemato.bench.peak as B

    peak = cpu_peak(cpuinfo=ZEN3, cores=2)  # 156.8 GFLOP/s at the nominal 2.45 GHz
    monkeypatch.setattr(B, "gemm_rate", lambda dtype=torch.float32, **k: 200.0 if dtype == torch.float32 else 390.0)
    monkeypatch.setattr(B, "cpu_flags", lambda *a: {"avx2", "avx512f", "avx512_bf16"})
    c = B.calibrated_peak(peak)
    assert c["peak_gflops"] == 200.0 and "measured lower bound" in c["derivation"] and ">= 3.12 GHz" in c["derivation"]
    assert (
        c["bf16_peak_gflops"] == 390.0
        and "AVX512-BF16: 2 x the fp32 derivation" in c["bf16_derivation"]
        and "measured lower bound" in c["bf16_derivation"]
    )
    monkeypatch.setattr(B, "gemm_rate", lambda dtype=torch.float32, **k: 100.0)
    low = B.calibrated_peak(peak)
    assert low["peak_gflops"] == pytest.approx(156.8) and "64 % of it" in low["derivation"]


def test_flop_count_of_a_convolution_is_exact() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1, bias=False), torch.nn.Conv2d(8, 4, 1, bias=False))
    assert count_flops(net, 32) == 2 * (1 * 8 * 9 + 8 * 4) * 32 * 32


@pytest.mark.slow
def test_bench_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "hemato.bench",
        "--models",
        "ours",
        "--size",
        "64",
        "--width",
        "4",
        "--seconds",
        "0.05",
        "--scan-slices",
        "8",
        "--scan-size",
        "96",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fp32 peak" in proc.stdout and "best large-convolution rate" in proc.stdout
    for name in ("unet", "ours"):
        assert any(line.split()[:1] == [name] for line in proc.stdout.splitlines()), name
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["models"]] == ["unet", "ours"]  # the reference first
    for r in data["models"]:
        assert r["params"] > 0 and r["gflop_per_slice"] > 0 and r["infer_slices_s"] > 0 and r["train_slices_s"] > 0
        assert r["scan_s_plain"] > 0 and r["scan_s_fast"] > 0 and r["scan_s_onnx"] > 0 and r["peak_memory_mb"] > 0
        assert 0.0 <= r["fast_vs_plain_dice"] <= 1.0
    assert data["machine"]["peak_gflops"] > 0 and data["conv_ceiling"]["best_gflops"] > 0
    assert data["data_path"]["loader_slices_s"] > 0
    # fp32 and bf16 side by side (bf16 only where the CPU has it natively), utilisation <= 100 %
    from hemato.precision import native_bf16

    assert "fp32 and bf16 side by side" in proc.stdout
    for r in data["models"]:
        assert 0 < r["util"] <= 100 and 0 < r["train_util"] <= 100
        assert ("infer_slices_s_bf16" in r) == native_bf16() and ("train_slices_s_bf16" in r) == native_bf16()
        if native_bf16():
            assert 0 < r["util_bf16"] <= 100 and r["infer_x_bf16"] > 0
    # the real-data recipe's own training rate per precision, and one run's training time
    (rc,) = data["recipes"]
    assert rc["experiment"] == "ctich" and rc["in_channels"] == 3 and rc["size"] == 128 and rc["batch"] == 16
    assert rc["train_slices_s_fp32"] > 0 and rc["train_minutes_fp32"] > 0
    assert ("train_slices_s_bf16" in rc) == native_bf16()
    assert "experiment=ctich: ours width 16, 3 input channels, 128 px patches, batch 16" in proc.stdout
