"""precision=auto: capability flags and the measured probe decide; explicit values pass."""

from __future__ import annotations

import pytest

from hemato.precision import choose_precision, native_bf16, probe_train_speed

AVX2 = {"avx2", "fma"}
ZEN4 = {"avx2", "avx512f", "avx512_bf16"}
SPR = {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


def test_native_bf16_flags() -> None:
    assert not native_bf16(AVX2)
    assert native_bf16(ZEN4) and native_bf16(SPR)


def test_cpu_without_native_bf16_gets_fp32_without_probing() -> None:
    def probe() -> dict[str, float]:
        raise AssertionError("must not probe on a CPU without native bf16")

    c = choose_precision("auto", "cpu", probe, flags=AVX2)
    assert c.precision == "32-true" and "no native bf16" in c.reason


def test_probe_decides_on_a_bf16_cpu() -> None:
    fast = choose_precision("auto", "cpu", lambda: {"fp32": 5.0, "bf16": 11.0}, flags=ZEN4)
    assert fast.precision == "bf16-mixed" and "2.20x" in fast.reason and fast.probe == {"fp32": 5.0, "bf16": 11.0}
    slow = choose_precision("auto", "cpu", lambda: {"fp32": 5.0, "bf16": 5.2}, flags=SPR)
    assert slow.precision == "32-true" and "1.04x" in slow.reason


def test_explicit_precision_is_kept() -> None:
    assert choose_precision("32-true", "cpu", flags=ZEN4).precision == "32-true"
    assert choose_precision("bf16-mixed", "cpu", flags=ZEN4).reason == "set in the config"


def test_probe_measures_both_precisions() -> None:
    from hemato.models.registry import build_model

    rates = probe_train_speed(
        lambda: build_model(name="unet", in_channels=1, out_channels=1, base_channels=4), 32, batch_size=2, steps=1
    )
    assert set(rates) == {"fp32", "bf16"} and all(v > 0 for v in rates.values())


def test_config_check_refuses_bf16_only_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    from hydra import compose, initialize_config_dir

    import hemato.config_check as cc
    from hemato.run import CONF_DIR  # noqa: F401  (registers the hemato_root resolver)

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["trainer.precision=bf16-mixed"])
    monkeypatch.setattr(cc, "native_bf16", lambda: False)
    with pytest.raises(cc.ConfigError, match="without native bf16"):
        cc.check_config(cfg)
    monkeypatch.setattr(cc, "native_bf16", lambda: True)
    cc.check_config(cfg)


def test_a_resumed_run_keeps_the_precision_it_started_with() -> None:
    from omegaconf import OmegaConf

    from hemato.run import resolve_precision

    cfg = OmegaConf.create(
        {
            "trainer": {"precision": "auto", "accelerator": "cpu"},
            "model": {"name": "unet"},
            "data": {"input_size": 32, "batch_size": 2},
        }
    )
    earlier = {"precision": {"precision": "32-true", "reason": "probe"}}
    c = resolve_precision(cfg, earlier)
    assert c.precision == "32-true" and "resumed run" in c.reason
    cfg.trainer.precision = "bf16-mixed"  # an explicit setting always wins
    assert resolve_precision(cfg, earlier).precision == "bf16-mixed"


def test_a_probed_decision_is_kept_per_machine_and_network(tmp_path, monkeypatch) -> None:
    """Runs of one cross-validation train alike: the first run's probe decides for the rest."""
    from hemato.precision import PrecisionChoice, cached_choice

    monkeypatch.setenv("HEMATO_CACHE_DIR", str(tmp_path))
    calls = []

    def decide(ratio: float) -> PrecisionChoice:
        calls.append(ratio)
        prec = "bf16-mixed" if ratio >= 1.1 else "32-true"
        return PrecisionChoice(prec, f"probe ran {ratio}x", {"fp32": 1.0, "bf16": ratio})

    key = {"model": {"name": "lite0_unet"}, "input_size": 256, "batch": 4, "threads": 2}
    first = cached_choice(key, lambda: decide(1.3))
    again = cached_choice(key, lambda: decide(0.8))  # a noisier probe would now say fp32
    assert calls == [1.3] and first.precision == again.precision == "bf16-mixed"
    assert "probe of " in again.reason and str(tmp_path) in again.reason and again.probe == first.probe
    other = cached_choice({**key, "threads": 1}, lambda: decide(0.8))
    assert calls == [1.3, 0.8] and other.precision == "32-true"
    (stored,) = [p for p in (tmp_path / "precision").glob("*.json") if "1.3" in p.read_text()]
    stored.write_text("{not json")  # an unreadable file is measured again
    assert cached_choice(key, lambda: decide(0.9)).precision == "32-true" and calls[-1] == 0.9
    unmeasured = cached_choice({"x": 1}, lambda: PrecisionChoice("32-true", "set in the config"))
    assert unmeasured.reason == "set in the config" and len(list((tmp_path / "precision").glob("*.json"))) == 2
