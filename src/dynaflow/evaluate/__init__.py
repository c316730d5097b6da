"""Evaluation, by concern:

* :mod:`~dynaflow.evaluate.run` — :func:`evaluate_run` (one checkpoint, every metric) and
  :func:`evaluate_report` (several checkpoints side by side, written as a report);
* :mod:`~dynaflow.evaluate.metrics` — each metric, a function of arrays (formulas in its docstring);
* :mod:`~dynaflow.evaluate.catalogue` — each reported metric's label, unit, direction and definition;
* :mod:`~dynaflow.evaluate.plots` — the report's figures;
* :mod:`~dynaflow.evaluate.report` — ``metrics.json``, ``report.md`` and ``report.html``.
"""

from dynaflow.evaluate.catalogue import format_markdown_table, format_table
from dynaflow.evaluate.run import evaluate_report, evaluate_run, long_horizon_metrics, window_metrics
from dynaflow.policy import check_conditioning, held_out_episodes

__all__ = [
    "check_conditioning",
    "evaluate_report",
    "evaluate_run",
    "format_markdown_table",
    "format_table",
    "held_out_episodes",
    "long_horizon_metrics",
    "window_metrics",
]
