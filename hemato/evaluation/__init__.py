"""Evaluation: one per-patient loop (:mod:`~hemato.evaluation.loop`) serving a run's test
metrics (:mod:`~hemato.evaluation.run_test`) and the out-of-fold evaluation
(:mod:`~hemato.evaluation.oof`); the cross-validation report, seed spread, calibration of the
component rules and their statistics as modules of it. ``python -m hemato.cv`` is the CLI.
"""
