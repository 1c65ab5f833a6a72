"""Pack finished runs' checkpoints into one weights file.

    python -m hemato.weights pack RUN_DIR [RUN_DIR ...] --output hemato/weights/NAME.pt

A packed file is one ``torch.save`` dict that ``torch.load(weights_only=True)`` reads (only
tensors, numbers, strings, lists and dicts: no pickled code runs):

    {"format": "hemato-weights/1", "model": {network kwargs}, "contract": {Contract fields},
     "members": [state_dict, ...], "provenance": {...}}

With several members (e.g. the models of the cross-validation folds) the prediction is the
mean of their probabilities (:mod:`hemato.weights.load`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch

from hemato.rundir import temp_beside, tested_checkpoint
from hemato.weights import FORMAT


def pack(
    run_dirs: list[str | Path],
    output: str | Path,
    contract: dict[str, Any] | None = None,
    note: str = "",
    validation: dict[str, Any] | None = None,
) -> Path:
    """Pack the tested checkpoints of ``run_dirs`` (same network configuration) into one
    weights file; ``contract`` overrides fields of the first checkpoint's contract;
    ``validation`` (e.g. the cross-validated figures of that contract) goes into the
    provenance, which ``hemato.predict`` reports. The state dicts are stored in fp32;
    returns the path."""
    from hemato.weights.load import load_model

    members, model_cfg, con, prov = [], None, None, []
    for d in map(Path, run_dirs):
        metrics = json.loads((d / "metrics.json").read_text())
        ck = tested_checkpoint(d, metrics)
        lm = load_model(ck)
        cfg = {k: v for k, v in lm.identity["model"].items()}
        if model_cfg is None:
            model_cfg, con = cfg, lm.contract.as_dict()
        elif cfg != model_cfg:
            raise ValueError(f"{d}: network configuration {cfg} differs from the first run's {model_cfg}")
        state = torch.load(ck, map_location="cpu", weights_only=True)["state_dict"]
        members.append(
            {
                k.removeprefix("net."): v.float() if v.is_floating_point() else v
                for k, v in state.items()
                if k.startswith("net.")
            }
        )
        split = json.loads((d / "split.json").read_text())
        prov.append(
            {
                "run": d.name,
                "checkpoint_sha256": hashlib.sha256(ck.read_bytes()).hexdigest(),
                "fold": split.get("fold"),
                "test_patients": split["split"]["test"],
                "epochs": metrics.get("epochs"),
            }
        )
    assert con is not None
    from hemato.engine import Contract

    con = Contract.from_dict({**con, **(contract or {})}).as_dict()  # unknown or invalid fields are refused here
    payload = {
        "format": FORMAT,
        "model": model_cfg,
        "contract": con,
        "members": members,
        "provenance": {"members": prov, "note": note, **({"validation": validation} if validation else {})},
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(output)
    torch.save(payload, tmp)
    tmp.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.weights", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="pack finished runs' checkpoints into one weights file")
    p.add_argument("runs", nargs="+")
    p.add_argument("--output", required=True)
    p.add_argument("--trained-on", help="contract's trained_on text")
    p.add_argument("--note", default="")
    p.add_argument(
        "--min-component-px",
        type=int,
        help="contract's minimum bleed size (network-grid pixels), e.g. from `python -m hemato.cv calibrate`",
    )
    p.add_argument(
        "--calibration",
        help="calibration.json of `python -m hemato.cv calibrate`: its all-folds component rules go into the "
        "contract and its cross-validated figures into the provenance",
    )
    p.add_argument(
        "--contract", nargs="+", default=[], metavar="FIELD=VALUE", help="contract fields (YAML values), e.g. tta=true"
    )
    a = ap.parse_args(argv)
    over: dict[str, Any] = {}
    validation = None
    try:
        if a.calibration:
            cal = json.loads(Path(a.calibration).read_text())
            over.update(cal["all_folds"])
            validation = {
                k: cal[k]
                for k in (
                    "rule",
                    "dice_patient",
                    "dice_patient_ci",
                    "fp_patients",
                    "n_patients_without_bleed",
                    "n_patients_with_bleed",
                    "without_rules",
                    "found_rule",
                    "found_by_size",
                )
                if k in cal  # calibrations before found_by_size lack the last two
            }
            validation["source"] = str(a.calibration)
        from hemato.engine import parse_overrides

        over.update(parse_overrides(a.contract))
        if a.trained_on:
            over["trained_on"] = a.trained_on
        if a.min_component_px is not None:
            over["min_component_px"] = a.min_component_px
        out = pack(a.runs, a.output, over or None, a.note, validation)
    except (OSError, ValueError, KeyError) as e:
        print(f"hemato.weights: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
