"""The metric catalogue: one entry per reported metric, with its key in the metrics dict, its label and
unit, its number format, which direction is better and its definition. The tables (text, Markdown, HTML)
and the report's definitions are all generated from it, so a metric is defined once.

The metrics themselves are computed by :mod:`dynaflow.evaluate.metrics` (formulas) and put together by
:mod:`dynaflow.evaluate.run`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NA", "ROWS", "Row", "format_markdown_table", "format_table", "html_table", "definitions"]

NA = "n/a"


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}"


def _sci(v: float) -> str:
    return f"{v:.2e}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _scaled(factor: float, digits: int) -> Callable[[float], str]:
    return lambda v: f"{factor * v:.{digits}f}"


def _samples(m: dict) -> str | None:
    n = number(m.get("num_samples"))
    if n is None:
        return None
    text = f"{n:.0f}"
    h, o = number(m.get("horizon")), number(m.get("ode_steps"))
    extra = [f"H={h:.0f}"] if h is not None else []
    if o is not None:
        extra.append(f"{o:.0f} ODE step{'s' if o != 1 else ''}")
    return f"{text} ({', '.join(extra)})" if extra else text


def _text(key: str) -> Callable[[dict], str | None]:
    def get(m: dict) -> str | None:
        v = m.get(key)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    return get


def _dataset(m: dict) -> str | None:
    v = m.get("dataset")
    return None if v is None else Path(str(v)).name


@dataclass(frozen=True)
class Row:
    """One table row: ``key`` in the metrics dict, a human label with units, the number format, which
    direction is better (``"min"``, ``"max"`` or None: nothing is highlighted) and a one-line definition.
    ``text`` replaces the numeric path for rows whose cell is composed from several keys or is a string."""

    key: str
    label: str
    fmt: Callable[[float], str] = _fixed(4)
    better: str | None = None
    definition: str = ""
    text: Callable[[dict], str | None] | None = None


_TRE_GROUP = "mean over samples and steps 1..H of the Euclidean norm of the {} error X_gen − X_demo"
_UPRIGHT = "trunk upright (body z · world z ≥ 0.8) and above 0.15 m at every step"

ROWS: tuple[Row, ...] = (
    Row("method", "method", definition="", text=_text("method")),
    Row("dataset", "dataset", definition="", text=_dataset),
    Row(
        "num_samples",
        "samples (horizon H, ODE steps)",
        definition="held-out demonstration windows scored (stride H over held-out episodes); H in control "
        "steps; ODE steps of the flow sampler.",
        text=_samples,
    ),
    Row(
        "episodes",
        "windows from",
        definition="which episodes the windows come from: the checkpoint's held-out (validation) episodes "
        "when the dataset is the one it was trained on, else every episode.",
        text=_text("episodes"),
    ),
    Row(
        "tre",
        "TRE, normalised RMS",
        better="min",
        definition="trajectory error: RMS over samples, steps 1..H and the 37 state dimensions of "
        "(X_gen − X_demo) / σ, σ the dataset normaliser's std; X_gen and X_demo share x0 and conditioning.",
    ),
    Row("tre_base_pos", "TRE base position [m]", better="min", definition=_TRE_GROUP.format("base position")),
    Row("tre_base_quat", "TRE base quaternion", better="min", definition=_TRE_GROUP.format("quaternion")),
    Row("tre_joint_pos", "TRE joint angles [rad]", better="min", definition=_TRE_GROUP.format("joint angle")),
    Row(
        "tre_base_linvel",
        "TRE base velocity [m/s]",
        better="min",
        definition=_TRE_GROUP.format("base linear velocity"),
    ),
    Row(
        "tre_base_angvel",
        "TRE base angular velocity [rad/s]",
        better="min",
        definition=_TRE_GROUP.format("base angular velocity"),
    ),
    Row(
        "tre_joint_vel",
        "TRE joint velocities [rad/s]",
        better="min",
        definition=_TRE_GROUP.format("joint velocity"),
    ),
    Row(
        "sae_max",
        "SAE max (rollout form)",
        _sci,
        "min",
        "SAE (rollout form): max |X_gen − replay_MuJoCoC(x0, U_gen)| over samples, steps ≥ 1 and the 37 "
        "state dimensions (mixed units); the replay runs the generated actions open loop in MuJoCo C with "
        "the same model and options. DynaFlow's states are a rollout of its actions, so for it this is "
        "the MJX-vs-C agreement (~1e-5).",
    ),
    Row("sae_mean", "SAE mean (rollout form)", _sci, "min", "the same absolute differences, mean."),
    Row(
        "sae_one_step_max",
        "SAE max (one-step form)",
        _sci,
        "min",
        "one-step SAE: max over samples, k and dimensions of |x_{k+1} − f(x_k, u_k)|, f one MuJoCo C "
        "control step from the generated x_k (meaningful for state-only generators with inferred actions).",
    ),
    Row("sae_one_step_mean", "SAE mean (one-step form)", _sci, "min", "the same, mean."),
    Row(
        "sae_best_action_max",
        "SAE max (one-step, best action)",
        _sci,
        "min",
        "max over samples, k and dimensions of |x_{k+1} − f(x_k, u*_k)| with u*_k the action that best "
        "explains the transition (Adam on the normalised squared error through MJX's control step, started "
        "from the model's own action when it has one): scores every generator, states-only ones included.",
    ),
    Row("sae_best_action_mean", "SAE mean (one-step, best action)", _sci, "min", "the same, mean."),
    Row(
        "ref_div_max",
        "divergence vs reference sim, max",
        _sci,
        "min",
        "as the rollout-form SAE, but the actions are replayed in the reference simulator (elliptic cone, "
        "2 ms, 100 Newton iterations): how far the motion drifts in a higher-fidelity simulator.",
    ),
    Row("ref_div_mean", "divergence vs reference sim, mean", _sci, "min", "the same, mean."),
    Row(
        "exec_reference_success",
        "executable in reference sim [%]",
        _pct,
        "max",
        f"fraction of samples whose actions, replayed open loop from x0 in the reference simulator, keep the "
        f"{_UPRIGHT}.",
    ),
    Row(
        "exec_reference_drift_mean",
        "executed in reference sim: drift, mean [m]",
        _fixed(3),
        "min",
        "horizontal distance |p_replay − p_gen| of the base at the final step of that replay, mean over "
        "samples.",
    ),
    Row(
        "exec_reference_drift_max",
        "executed in reference sim: drift, max [m]",
        _fixed(3),
        "min",
        "the same, max.",
    ),
    Row(
        "long_seconds",
        "long horizon: length [s]",
        _fixed(1),
        None,
        "length of the long-horizon generations: windows chained open loop from held-out episodes' first "
        "states (a few per gait on a gait-conditioned dataset).",
    ),
    Row(
        "long_generated_forward_m",
        "long horizon: generated forward [m]",
        _fixed(2),
        None,
        "generated base x displacement from start to end, mean over samples.",
    ),
    Row(
        "long_generated_upright",
        "long horizon: generated stays up [%]",
        _pct,
        "max",
        f"fraction of long generated trajectories that themselves keep the {_UPRIGHT}.",
    ),
    Row(
        "long_same_success",
        "long horizon: executable, same sim [%]",
        _pct,
        "max",
        f"fraction whose whole action sequence, replayed open loop in MuJoCo C with the training model, "
        f"keeps the {_UPRIGHT}.",
    ),
    Row(
        "long_same_drift_mean",
        "long horizon: drift, same sim [m]",
        _fixed(3),
        "min",
        "final horizontal base distance between that replay and the generation, mean over samples.",
    ),
    Row(
        "long_reference_success",
        "long horizon: executable, reference sim [%]",
        _pct,
        "max",
        "as above, replayed in the reference simulator.",
    ),
    Row(
        "long_reference_drift_mean",
        "long horizon: drift, reference sim [m]",
        _fixed(3),
        "min",
        "as above, replayed in the reference simulator.",
    ),
    Row(
        "long_measured_on",
        "tracking and gait measured on",
        definition="which long-horizon trajectories the command tracking and gait rows are measured on: the "
        "reference-simulator replay of the generated actions, or the generated states for a model "
        "without actions.",
        text=_text("long_measured_on"),
    ),
    Row(
        "track_vx_err",
        "command tracking |Δvx| [m/s]",
        _fixed(3),
        "min",
        "|achieved − commanded| forward velocity (mean heading-frame base velocity) on the long-horizon "
        "trajectories after the first second, mean over runs.",
    ),
    Row("track_vy_err", "command tracking |Δvy| [m/s]", _fixed(3), "min", "the same for lateral velocity."),
    Row(
        "track_yaw_err",
        "command tracking |Δyaw rate| [rad/s]",
        _fixed(3),
        "min",
        "the same for the yaw rate (finite-difference mean).",
    ),
    Row(
        "transfer_open_upright",
        "transfer, open loop: upright [%]",
        _pct,
        "max",
        "transfer suite (dynaflow evaluate --transfer): fraction of runs (gait commands x perturbed worlds) "
        f"whose open-loop actions, generated in the training simulator, keep the {_UPRIGHT} in the perturbed "
        "world for the whole run.",
    ),
    Row(
        "transfer_open_distance_vs_nominal",
        "transfer, open loop: distance vs nominal",
        _fixed(2),
        "max",
        "median over those runs of (displacement achieved / commanded) in the perturbed world over the same "
        "in "
        "the training simulator.",
    ),
    Row(
        "transfer_closed_upright",
        "transfer, closed loop: upright [%]",
        _pct,
        "max",
        "the same with replanning from the measured state (observation noise where the world has it).",
    ),
    Row(
        "transfer_closed_on_speed",
        "transfer, closed loop: on speed [%]",
        _pct,
        "max",
        "fraction of closed-loop runs whose heading-frame planar velocity after the first second is within "
        "25 % of the command (0.05 m/s at least).",
    ),
    Row(
        "gait_accuracy",
        "gait accuracy [%]",
        _pct,
        "max",
        "fraction of long-horizon runs (after the first second) whose every leg's contact phase offset "
        "relative to FL (contact: foot within 1 cm of the floor) is within 0.15 cycles of the conditioned "
        "gait's design. Per-gait rows (gait accuracy: <gait>) follow where measured.",
    ),
    Row(
        "foot_penetration_max",
        "foot penetration, max [cm]",
        _scaled(100, 2),
        "min",
        "deepest point of a foot sphere below the floor, over samples and steps.",
    ),
    Row(
        "foot_sliding_mean",
        "foot sliding, mean [m/s]",
        _fixed(3),
        "min",
        "mean horizontal foot speed over steps where the foot is loaded (below the floor surface) at both "
        "ends.",
    ),
    Row(
        "joint_limit_violation_max",
        "joint-limit violation, max [rad]",
        _fixed(3),
        "min",
        "largest amount by which a joint angle leaves its range.",
    ),
    Row(
        "quat_norm_error_max",
        "quaternion norm error, max",
        _sci,
        "min",
        "max | |q| − 1 | of the base quaternion (a rollout keeps it ~0; a state-only generator need not).",
    ),
    Row(
        "mmd_rbf",
        "MMD² (RBF) vs held-out",
        _fixed(4),
        "min",
        "unbiased squared maximum mean discrepancy between generated and demonstration windows (steps "
        "1..H, normalised units), RBF kernel with the median-heuristic bandwidth.",
    ),
    Row(
        "diversity",
        "diversity",
        _fixed(2),
        None,
        "mean pairwise Euclidean distance between generated windows (steps 1..H, normalised units).",
    ),
    Row(
        "sample_seconds_per_batch",
        "sampling time per batch, warm [ms]",
        _scaled(1e3, 1),
        "min",
        "median wall time of one sampling call over the batches after the first.",
    ),
    Row(
        "first_call_seconds",
        "first sampling call [s]",
        _fixed(2),
        "min",
        "wall time of the first sampling call, compilation included.",
    ),
)


def number(v: Any) -> float | None:
    """A float for a numeric value (numpy scalars and 0-d arrays included); None for a missing, NaN or
    non-numeric one. Infinities are kept (they are information: a replay that blew up)."""
    if v is None or isinstance(v, str):
        return None
    if isinstance(v, np.ndarray):
        if v.size != 1:
            return None
        v = v.reshape(()).item()
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def run_name(run: dict, i: int) -> str:
    name = run.get("name")
    if name:
        return str(name)
    ckpt = run.get("checkpoint")
    return Path(str(ckpt)).name if ckpt else f"run {i + 1}"


def run_metrics(run: dict) -> dict:
    metrics = dict(run.get("metrics") or {})
    if run.get("method") is not None:
        metrics.setdefault("method", run["method"])
    return metrics


def _cells(row: Row, metrics: Sequence[dict]) -> list[tuple[str, bool]] | None:
    """The row's cell texts with a "best" flag each, or None when no run has the key at all."""
    if all(m.get(row.key) is None for m in metrics):
        return None
    if row.text is not None:
        return [(row.text(m) or NA, False) for m in metrics]
    values = [number(m.get(row.key)) for m in metrics]
    texts = [NA if v is None else row.fmt(v) for v in values]
    best = [False] * len(values)
    present = [v for v in values if v is not None]
    if row.better in ("min", "max") and len(present) >= 2 and len(set(texts) - {NA}) > 1:
        target = min(present) if row.better == "min" else max(present)
        best = [v is not None and (v == target or math.isclose(v, target, rel_tol=1e-12)) for v in values]
    return list(zip(texts, best, strict=True))


def _table(runs: Sequence[dict]) -> tuple[list[str], list[tuple[Row, list[tuple[str, bool]]]]]:
    names = [run_name(r, i) for i, r in enumerate(runs)]
    metrics = [run_metrics(r) for r in runs]
    rows = []
    for row in _rows(metrics):
        cells = _cells(row, metrics)
        if cells is not None:
            rows.append((row, cells))
    return names, rows


def _rows(metrics: Sequence[dict]) -> list[Row]:
    """:data:`ROWS`, with a row per gait (``gait_accuracy_<gait>``) after the overall gait accuracy."""
    gaits = sorted({k for m in metrics for k in m if k.startswith("gait_accuracy_")})
    per_gait = [
        Row(k, f"gait accuracy: {k.removeprefix('gait_accuracy_')} [%]", _pct, "max", "") for k in gaits
    ]
    out: list[Row] = []
    for row in ROWS:
        out.append(row)
        if row.key == "gait_accuracy":
            out += per_gait
    return out


def md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def format_markdown_table(runs: Sequence[dict], highlight: bool = True) -> str:
    """A Markdown table of the headline metrics, one column per run (for a terminal, a README or the
    report). Missing or NaN values read "n/a"; rows no run has are left out; with ``highlight`` the best
    value of each row with a direction is bold (only when at least two runs differ)."""
    names, rows = _table(runs)
    lines = [
        "| metric | " + " | ".join(md_cell(n) for n in names) + " |",
        "|:--|" + "--:|" * len(names),
    ]
    for row, cells in rows:
        texts = [f"**{md_cell(t)}**" if b and highlight else md_cell(t) for t, b in cells]
        lines.append(f"| {md_cell(row.label)} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def html_table(runs: Sequence[dict]) -> str:
    names, rows = _table(runs)
    e = html.escape
    out = ['<table class="metrics">', "<thead><tr><th>metric</th>"]
    out += [f"<th>{e(n)}</th>" for n in names]
    out.append("</tr></thead><tbody>")
    for row, cells in rows:
        tds = "".join(
            f'<td class="{"na" if t == NA else "num"}">{"<b>" + e(t) + "</b>" if b else e(t)}</td>'
            for t, b in cells
        )
        out.append(f'<tr><th title="{e(row.definition)}">{e(row.label)}</th>{tds}</tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


def definitions(runs: Sequence[dict]) -> list[tuple[str, str]]:
    _, rows = _table(runs)
    return [(row.label, row.definition) for row, _ in rows if row.definition]


def format_table(metrics: dict) -> str:
    """A plain-text table of one checkpoint's metrics (a terminal): every catalogue row it has."""
    _, rows = _table([{"metrics": metrics}])
    width = max(len(row.label) for row, _ in rows)
    return "\n".join(f"{row.label:<{width}}  {cells[0][0]}" for row, cells in rows)
