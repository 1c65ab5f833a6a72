"""Weights shipped inside the package: where the default model lives.

- :mod:`hemato.weights.load`: load a checkpoint, packed weights or an ONNX export for inference.
- :mod:`hemato.weights.pack`: ``python -m hemato.weights pack RUN_DIR [...] --output NAME.pt``.

``hemato.predict`` uses :func:`default_model_path` (``docs/model_card.md``) when no
``--checkpoint`` is given; an installation without that file refuses with
:data:`NO_DEFAULT_REASON`.
"""

from __future__ import annotations

from pathlib import Path

FORMAT = "hemato-weights/1"
HERE = Path(__file__).resolve().parent
DEFAULT_NAME = "ctich_lite0.pt"


NO_DEFAULT_REASON = (
    f"no default model in this installation (hemato/weights/{DEFAULT_NAME} is missing: reinstall hemato from a "
    "full checkout); give --checkpoint MODEL"
)


def default_model_path() -> Path:
    """The default model's file inside the installed package."""
    return HERE / DEFAULT_NAME
