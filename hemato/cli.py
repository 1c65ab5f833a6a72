"""``hemato COMMAND ...``: one entry point for the commands that are also ``python -m hemato.X``.

hemato serve --help        # = python -m hemato.serve --help
hemato predict --input SCAN --output report/
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, function, what it does)
COMMANDS = {
    "run": ("hemato.run", "main", "train + test one config (Hydra overrides)"),
    "predict": ("hemato.predict", "main", "one scan (or a cohort, or a DICOMweb study) in, a volume report out"),
    "serve": ("hemato.serve.__main__", "main", "a DICOM node: receive CT series, send SEG + SR back"),
    "cv": ("hemato.cv", "main", "cross-validation: evaluate, report, calibrate, seeds"),
    "compare": ("hemato.compare", "main", "expansion between two scans"),
    "report": ("hemato.report.__main__", "main", "the paper's tables and figures from runs"),
    "convert": ("hemato.data.convert", "main", "a dataset into hemato's manifest format"),
    "check": ("hemato.data.check", "main", "check a manifest"),
    "export": ("hemato.export", "main", "a checkpoint to ONNX"),
    "bench": ("hemato.bench", "main", "inference speed per network and precision"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, _, what) in COMMANDS.items()]
    return "usage: hemato COMMAND [ARGS ...]   (hemato COMMAND --help)\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] not in COMMANDS:
        print(f"hemato: error: unknown command {argv[0]!r}\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[argv[0]]
    sys.argv = [f"hemato {argv[0]}", *argv[1:]]  # Hydra (run) reads sys.argv; the others take it as default
    code = getattr(importlib.import_module(module), function)()
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
