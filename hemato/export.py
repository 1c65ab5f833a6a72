"""Export a trained hemato checkpoint to ONNX for onnxruntime:

    python -m hemato.export --checkpoint best.ckpt --output model.onnx

The graph takes ``image`` (batch, 1, S, S) float32 in [0, 1] and returns ``logits`` of the
same shape, S = the checkpoint's input size; the model configuration and input size are
stored as ONNX metadata, so ``hemato.predict --checkpoint model.onnx`` needs nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

from hemato.data.readers.errors import InputError


def export_network(net: torch.nn.Module, size: int, output: str | Path, opset: int = 17, in_channels: int = 1) -> None:
    """Trace ``net`` (eval mode) to ONNX: input ``image`` (batch, in_channels, size, size),
    output ``logits``, batch dimension dynamic."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the Python size check
        torch.onnx.export(
            net.eval(),
            torch.zeros(1, in_channels, size, size),
            str(output),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def export_onnx(checkpoint: str | Path, output: str | Path, opset: int = 17) -> Path:
    """Write ``output`` (ONNX) from a hemato ``.ckpt``; returns the path."""
    import onnx

    from hemato.weights.load import load_model

    model = load_model(checkpoint)
    if model.net is None:
        raise InputError(checkpoint, "export needs a hemato .ckpt")
    size = model.input_size
    output = Path(output)
    export_network(model.net, size, output, opset, in_channels=2 * model.contract.context + 1)
    proto = onnx.load(str(output))
    for k, v in {
        "hemato_model": json.dumps(model.identity["model"]),
        "hemato_input_size": str(size),
        "hemato_source_sha256": model.identity["sha256"],
        "hemato_contract": json.dumps(model.contract.as_dict()),
    }.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(output))
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args(argv)
    try:
        path = export_onnx(a.checkpoint, a.output, a.opset)
    except InputError as e:
        print(f"hemato.export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
