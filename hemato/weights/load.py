"""Loading a model for inference: a hemato checkpoint (``.ckpt``), packed weights (one network
or an ensemble, :mod:`hemato.weights.pack`) or an ONNX export, with the contract stored beside
its weights (:class:`hemato.engine.Contract`). Every caller (predict, cv, compare, bench,
export, serve) loads through :func:`load_model`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import hemato.weights as shipped
from hemato.data.readers.errors import InputError
from hemato.engine import Contract
from hemato.inference import Forward, onnx_forward, onnx_session, torch_forward
from hemato.models.registry import available, build_model


@dataclass
class LoadedModel:
    """A network ready for inference, from a checkpoint or an ONNX file."""

    forward: Forward
    input_size: int
    identity: dict[str, Any]
    net: torch.nn.Module | None = None  # the torch network (None for ONNX)
    contract: Contract | None = None  # preprocessing + post-processing the weights expect

    def __post_init__(self) -> None:
        if self.contract is None:
            self.contract = Contract(input_size=self.input_size, trained_on="unknown (no contract stored)")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(
    path: str | Path, device: str = "cpu", channels_last: bool | None = None, precision: str = "32"
) -> LoadedModel:
    """Load a hemato ``.ckpt`` (``torch.load(weights_only=True)``: no code runs) or ``.onnx``.

    ``channels_last`` (torch only; default: on for CPU, where oneDNN's convolutions are
    faster in that layout, see ``hemato.bench``). ``precision``: ``32``, ``bf16`` or
    ``auto`` (bf16 where the CPU has native bf16 and a short probe finds it faster; the
    choice and reason are in ``identity["precision"]``); ONNX models run in fp32."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint does not exist")
    ident: dict[str, Any] = {"checkpoint": str(path), "sha256": sha256_file(path)}
    if path.suffix.lower() == ".onnx":
        try:
            sess = onnx_session(path)
        except Exception as e:
            raise InputError(path, f"not a readable ONNX model ({e.__class__.__name__})") from None
        inp = sess.get_inputs()[0]
        meta = sess.get_modelmeta().custom_metadata_map
        size = inp.shape[-1]
        if not isinstance(size, int) or "hemato_model" not in meta:
            raise InputError(path, "not a hemato ONNX export (no hemato metadata or fixed input size)")
        ident.update({"format": "onnx", "model": json.loads(meta["hemato_model"]), "input_size": size})
        con = contract_from(json.loads(meta["hemato_contract"]) if "hemato_contract" in meta else None, size, 0.5)
        ident["contract"] = con.as_dict()
        ident["precision"] = {"precision": "32-true", "reason": "ONNX runs in fp32"}
        return LoadedModel(onnx_forward(sess), size, ident, contract=con)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(
            path,
            f"not a loadable checkpoint, or it holds code/objects that are refused ({e.__class__.__name__}: {str(e)[:120]})",
        ) from None
    if isinstance(ckpt, dict) and ckpt.get("format") == "hemato-weights/1":
        nets, con = _load_packed(path, ckpt, ident)
        return _torch_model(nets, con, ident, device, channels_last, precision)
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("model"), dict) or hp["model"].get("name") not in available():
        raise InputError(path, "not a hemato model checkpoint (no hemato model configuration)")
    size = hp.get("input_size")
    if not isinstance(size, int):
        raise InputError(path, "checkpoint does not record the network's input size")
    kwargs = {k: v for k, v in hp["model"].items() if k != "_target_"}
    net = build_model(**kwargs, weights_follow=True)
    state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(path, f"weights do not fit the model configuration ({str(e)[:120]})") from None
    con = contract_from(hp.get("contract"), size, float(hp.get("threshold", 0.5)))
    ident.update({"format": "lightning-checkpoint", "model": kwargs, "input_size": size, "contract": con.as_dict()})
    return _torch_model([net], con, ident, device, channels_last, precision)


def _precision_request(precision: str, device: str) -> str:
    """``--precision`` as a Lightning-style request; bf16 on a CPU without native bf16 is
    refused (emulated bf16 is much slower). On a GPU, predict's ``auto`` is fp32."""
    from hemato.precision import native_bf16

    req = {"32": "32-true", "fp32": "32-true", "bf16": "bf16-mixed", "auto": "auto"}.get(str(precision))
    if req is None:
        raise InputError(Path(str(precision)), "--precision must be auto, 32 or bf16")
    if not str(device).startswith("cpu") and req == "auto":
        req = "32-true"
    if req == "bf16-mixed" and str(device).startswith("cpu") and not native_bf16():
        raise InputError(
            Path("bf16"),
            "--precision bf16 on a CPU without native bf16 (AVX512-BF16/AMX-BF16): emulated bf16 is much slower; use auto or 32",
        )
    return req


def _ensemble(nets: list[torch.nn.Module], device: str, channels_last: bool, bf16: bool) -> Forward:
    """One forward for one network, or the mean of several networks' probabilities (as logits)."""
    fwds = [torch_forward(n, device, channels_last, fold_bn=True, bf16=bf16) for n in nets]
    if len(fwds) == 1:
        return fwds[0]

    def ens(x: torch.Tensor) -> torch.Tensor:
        return torch.logit(torch.stack([torch.sigmoid(f(x)) for f in fwds]).mean(0), eps=1e-6)

    ens.size_divisor = fwds[0].size_divisor  # type: ignore[attr-defined]
    return ens


def _torch_model(
    nets: list[torch.nn.Module],
    con: Contract,
    ident: dict[str, Any],
    device: str,
    channels_last: bool | None,
    precision: str,
) -> LoadedModel:
    """The loaded torch network(s) with their forward at the chosen precision (``auto``: by
    capability and a probe, ``hemato.precision``); the choice goes to ``identity["precision"]``.
    Each precision's forward is built once, only if needed."""
    from hemato.precision import choose_precision, probe_inference_speed

    req = _precision_request(precision, device)
    cl = str(device).startswith("cpu") if channels_last is None else channels_last
    built: dict[bool, Forward] = {}

    def forward(bf16: bool) -> Forward:
        if bf16 not in built:
            built[bf16] = _ensemble(nets, device, cl, bf16)
        return built[bf16]

    choice = choose_precision(
        req,
        "cpu" if str(device).startswith("cpu") else "gpu",
        lambda: probe_inference_speed(forward(False), forward(True), con.input_size, in_channels=2 * con.context + 1),
    )
    ident["precision"] = choice.as_dict()
    return LoadedModel(
        forward(choice.precision == "bf16-mixed"), con.input_size, ident, nets[0] if len(nets) == 1 else None, con
    )


def _load_packed(path: Path, blob: dict[str, Any], ident: dict[str, Any]) -> tuple[list[torch.nn.Module], Contract]:
    """A ``hemato.weights`` file's networks (one, or an ensemble's members) and contract."""
    cfg = blob.get("model")
    if not isinstance(cfg, dict) or cfg.get("name") not in available() or not blob.get("members"):
        raise InputError(path, "hemato weights file without a known network or members")
    try:
        con = Contract.from_dict(blob["contract"])
    except (TypeError, ValueError) as e:
        raise InputError(path, f"bad model contract ({e})") from None
    nets = []
    for state in blob["members"]:
        net = build_model(**cfg, weights_follow=True)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise InputError(path, f"weights do not fit the model configuration ({str(e)[:120]})") from None
        nets.append(net)
    ident.update(
        {
            "format": "hemato-weights",
            "model": cfg,
            "input_size": con.input_size,
            "members": len(nets),
            "contract": con.as_dict(),
            "provenance": blob.get("provenance", {}),
        }
    )
    return nets, con


def contract_from(stored: dict[str, Any] | None, input_size: int, threshold: float) -> Contract:
    """The contract a checkpoint stores; checkpoints from before contracts get the values
    every hemato model then used (window 40/120, no component filter, radiological)."""
    base = {"input_size": input_size, "threshold": threshold}
    if not stored:
        return Contract(
            **base, orientation="radiological", trained_on="unknown (checkpoint predates hemato's model contract)"
        )
    return Contract.from_dict({**base, **stored})


def check_device(device: str) -> str:
    """``cpu``, or a CUDA device that exists; anything else is a one-line error."""
    d = str(device)
    if d == "cpu":
        return d
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(Path(d), "--device cuda, but this torch build sees no CUDA GPU (use --device cpu)")
        return d
    raise InputError(Path(d), "--device must be cpu or cuda[:N]")


def default_checkpoint() -> Path:
    """The model shipped in ``hemato/weights/``, or a one-line refusal while none ships."""
    path = shipped.default_model_path()
    if not path.is_file():
        raise InputError(Path("--checkpoint"), shipped.NO_DEFAULT_REASON)
    return path
