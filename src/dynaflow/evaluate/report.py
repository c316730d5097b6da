"""A side-by-side evaluation report for several methods: ``metrics.json``, ``report.md``, ``report.html``
and PNG plots.

Why: comparing DynaFlow with its baselines (state-only flow matching, state-only with inverse dynamics,
behaviour cloning) needs one table with the same rows for every method, the definitions next to the
numbers, plots of the same sample, and a record of the command that produced it all. Metrics a method
does not have (a state-only model has no actions, so no SAE and no executability) show as "n/a".

Plots are drawn with matplotlib's Agg renderer through :class:`matplotlib.figure.Figure` objects that are
never registered with pyplot: no window can open, no global backend is switched (an importing notebook
keeps its own), and nothing stays alive once the PNG bytes are taken.

Usage::

    paths = write_report("reports/cmp", runs, {"command": " ".join(sys.argv), "dataset": ds, "seeds": [0]})
    print(format_markdown_table(runs))
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import html
import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dynaflow.jsonio import jsonable

__all__ = ["ROWS", "Row", "format_markdown_table", "write_report"]

NA = "n/a"
DEFAULT_CTRL_DT = 0.02  # s, the Go2 control period used by the datasets
LEGS = ("FL", "FR", "RL", "RR")
# State layout (dynaflow.physics.STATE_GROUPS): 0:3 base position, 3:7 quaternion, 7:19 joints
# (FL hip, thigh, calf, FR ..., RL ..., RR ...), 19:22 world-frame base velocity, 22:25 angular velocity.
STATE_DIM = 37
JOINT_COLUMNS = {"FL hip": 7, "FL thigh": 8, "FL calf": 9, "RL thigh": 14}
BASE_HEIGHT_COLUMN = 2
BASE_VX_COLUMN = 19
FIGSIZE = (8.0, 4.0)
DPI = 100


# --------------------------------------------------------------------------------------------
# Table rows: what is shown, how it is formatted, which direction is better, what it means


def _fixed(digits: int) -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}"


def _sci(v: float) -> str:
    return f"{v:.2e}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _scaled(factor: float, digits: int) -> Callable[[float], str]:
    return lambda v: f"{factor * v:.{digits}f}"


def _samples(m: dict) -> str | None:
    n = _number(m.get("num_samples"))
    if n is None:
        return None
    text = f"{n:.0f}"
    h, o = _number(m.get("horizon")), _number(m.get("ode_steps"))
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


# --------------------------------------------------------------------------------------------
# Values


def _number(v: Any) -> float | None:
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


def _run_name(run: dict, i: int) -> str:
    name = run.get("name")
    if name:
        return str(name)
    ckpt = run.get("checkpoint")
    return Path(str(ckpt)).name if ckpt else f"run {i + 1}"


def _run_metrics(run: dict) -> dict:
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
    values = [_number(m.get(row.key)) for m in metrics]
    texts = [NA if v is None else row.fmt(v) for v in values]
    best = [False] * len(values)
    present = [v for v in values if v is not None]
    if row.better in ("min", "max") and len(present) >= 2 and len(set(texts) - {NA}) > 1:
        target = min(present) if row.better == "min" else max(present)
        best = [v is not None and (v == target or math.isclose(v, target, rel_tol=1e-12)) for v in values]
    return list(zip(texts, best, strict=True))


def _table(runs: Sequence[dict]) -> tuple[list[str], list[tuple[Row, list[tuple[str, bool]]]]]:
    names = [_run_name(r, i) for i, r in enumerate(runs)]
    metrics = [_run_metrics(r) for r in runs]
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


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def format_markdown_table(runs: Sequence[dict], highlight: bool = True) -> str:
    """A Markdown table of the headline metrics, one column per run (for a terminal, a README or the
    report). Missing or NaN values read "n/a"; rows no run has are left out; with ``highlight`` the best
    value of each row with a direction is bold (only when at least two runs differ)."""
    names, rows = _table(runs)
    lines = [
        "| metric | " + " | ".join(_md_cell(n) for n in names) + " |",
        "|:--|" + "--:|" * len(names),
    ]
    for row, cells in rows:
        texts = [f"**{_md_cell(t)}**" if b and highlight else _md_cell(t) for t, b in cells]
        lines.append(f"| {_md_cell(row.label)} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def _html_table(runs: Sequence[dict]) -> str:
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


def _definitions(runs: Sequence[dict]) -> list[tuple[str, str]]:
    _, rows = _table(runs)
    return [(row.label, row.definition) for row, _ in rows if row.definition]


# --------------------------------------------------------------------------------------------
# Plots (each returns a Figure, or None when no run has the data)


def _color(i: int) -> str:
    return f"C{i % 10}"


def _array(run: dict, key: str, shape: tuple, name: str) -> np.ndarray | None:
    """``run["plots"][key]`` as a float array matching ``shape`` (None: any size; a leading batch axis is
    allowed and sample 0 taken), or None, with a warning for a malformed one: a bad plot input must not
    cost the rest of the report."""
    v = (run.get("plots") or {}).get(key)
    if v is None:
        return None
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        warnings.warn(f"report: run {name!r}: plots[{key!r}] is not numeric; skipped", stacklevel=3)
        return None
    if a.ndim == len(shape) + 1 and a.shape[0] >= 1:
        a = a[0]
    if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape, strict=True)):
        warnings.warn(
            f"report: run {name!r}: plots[{key!r}] has shape {np.shape(v)}, expected {shape}; skipped",
            stacklevel=3,
        )
        return None
    if a.size == 0:
        return None
    return a


def _ctrl_dt(run: dict) -> float:
    dt = _number((run.get("plots") or {}).get("ctrl_dt"))
    return dt if dt is not None and dt > 0 and math.isfinite(dt) else DEFAULT_CTRL_DT


def _unique(items: list[tuple[str, np.ndarray, float]]) -> list[tuple[str, np.ndarray, float]]:
    """Drop references identical to an earlier one (methods scored on the same windows share them)."""
    out: list[tuple[str, np.ndarray, float]] = []
    for name, a, dt in items:
        if not any(
            b.shape == a.shape and math.isclose(dt, d) and np.allclose(a, b, atol=1e-9, equal_nan=True)
            for _, b, d in out
        ):
            out.append((name, a, dt))
    return out


def _refs(runs: Sequence[dict], key: str, shape: tuple) -> list[tuple[str, np.ndarray, float]]:
    items = []
    for i, r in enumerate(runs):
        a = _array(r, key, shape, _run_name(r, i))
        if a is not None:
            items.append((_run_name(r, i), a, _ctrl_dt(r)))
    return _unique(items)


def _ref_label(refs: list, name: str) -> str:
    return "demonstration" if len(refs) == 1 else f"demonstration ({name})"


def _state_figure(
    runs: Sequence[dict], columns: dict[str, int], ylabels: dict[str, str], title: str, grid: tuple
) -> Figure | None:
    names = [_run_name(r, i) for i, r in enumerate(runs)]
    gens = [_array(r, "X_gen", (None, STATE_DIM), n) for r, n in zip(runs, names, strict=True)]
    refs = _refs(runs, "X_ref", (None, STATE_DIM))
    if all(g is None for g in gens) and not refs:
        return None
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(*grid, sharex=True)).ravel()
    for ax, (label, col) in zip(axes, columns.items(), strict=True):
        for i, (g, n) in enumerate(zip(gens, names, strict=True)):
            if g is not None:
                ax.plot(np.arange(len(g)) * _ctrl_dt(runs[i]), g[:, col], color=_color(i), lw=1.2, label=n)
        for j, (n, a, dt) in enumerate(refs):
            color = "black" if j == 0 else _color(names.index(n))
            ax.plot(np.arange(len(a)) * dt, a[:, col], "--", color=color, lw=1.2, label=_ref_label(refs, n))
        ax.set_title(label, fontsize=9)
        ax.set_ylabel(ylabels.get(label, ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[-grid[1] :]:
        ax.set_xlabel("time [s]", fontsize=8)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_joints(runs: Sequence[dict]) -> Figure | None:
    """Sample 0's FL hip, thigh, calf and RL thigh angles: each method vs the demonstration (dashed)."""
    ylabels = {k: "angle [rad]" for k in JOINT_COLUMNS}
    return _state_figure(runs, JOINT_COLUMNS, ylabels, "Joint trajectories (sample 0)", (2, 2))


def plot_base(runs: Sequence[dict]) -> Figure | None:
    """Sample 0's base height and world-frame forward velocity: each method vs the demonstration."""
    cols = {"base height": BASE_HEIGHT_COLUMN, "base forward velocity vx": BASE_VX_COLUMN}
    ylabels = {"base height": "z [m]", "base forward velocity vx": "vx [m/s]"}
    return _state_figure(runs, cols, ylabels, "Base height and forward velocity (sample 0)", (1, 2))


def plot_sae_over_horizon(runs: Sequence[dict]) -> Figure | None:
    """Mean one-step SAE at each step k = 1..H, log scale, one line per method."""
    series = []
    for i, r in enumerate(runs):
        a = _array(r, "sae_over_horizon", (None,), _run_name(r, i))
        if a is not None:
            series.append((i, a))
    if not series:
        return None
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    drawn = False
    for i, a in series:
        y = np.where(np.isfinite(a) & (a > 0), a, np.nan)  # a log axis cannot show 0
        drawn |= bool(np.isfinite(y).any())
        ax.plot(np.arange(1, len(a) + 1), y, marker=".", ms=3, color=_color(i), label=_run_name(runs[i], i))
    if drawn:
        ax.set_yscale("log")
    ax.set_xlabel("step k", fontsize=8)
    ax.set_ylabel("mean one-step SAE", fontsize=8)
    ax.set_title("State-action error over the horizon", fontsize=10)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return fig


def _contact_segments(col: np.ndarray, dt: float) -> list[tuple[float, float]]:
    edges = np.diff(np.concatenate([[0], col.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(s * dt, (e - s) * dt) for s, e in zip(starts, ends, strict=True)]


def plot_contacts(runs: Sequence[dict]) -> Figure | None:
    """Gait diagram: a bar per leg where the foot is in contact; the demonstration, then one panel per
    method (from simulated replays)."""

    def group(name: str) -> str:  # the gait the contacts were taken from, when the run says
        g = (runs[names.index(name)].get("plots") or {}).get("contacts_group")
        return f" ({g})" if isinstance(g, str) and g else ""

    names = [_run_name(r, i) for i, r in enumerate(runs)]
    refs = _refs(runs, "contacts_ref", (None, 4))
    panels = [(_ref_label(refs, n) + group(n), a, dt, "dimgray") for n, a, dt in refs]
    for i, (r, n) in enumerate(zip(runs, names, strict=True)):
        a = _array(r, "contacts", (None, 4), n)
        if a is not None:
            panels.append((n + group(n), a, _ctrl_dt(r), _color(i)))
    if not panels:
        return None
    height = min(max(FIGSIZE[1], 0.9 * len(panels) + 0.8), 12.0)
    fig = Figure(figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    for ax, (title, a, dt, color) in zip(axes, panels, strict=True):
        c = np.nan_to_num(a) > 0.5
        for j in range(4):
            ax.broken_barh(_contact_segments(c[:, j], dt), (3 - j - 0.35, 0.7), facecolors=color)
        ax.set_yticks(range(4), LEGS[::-1], fontsize=7)
        ax.set_ylim(-0.6, 3.6)
        ax.set_xlim(0, max(len(a) * dt for _, a, dt, _ in panels))
        ax.set_title(title, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time [s]", fontsize=8)
    fig.suptitle("Foot contacts (bars: in contact)", fontsize=10)
    return fig


def plot_long_horizon(runs: Sequence[dict]) -> Figure | None:
    """Long horizon: horizontal drift between generation and its open-loop replay in the reference
    simulator vs time, and the generated forward displacement, one line per method."""
    drift, fwd = [], []
    for i, r in enumerate(runs):
        n = _run_name(r, i)
        d = _array(r, "long_drift", (None,), n)
        f = _array(r, "long_forward", (None,), n)
        if d is not None:
            drift.append((i, d))
        if f is not None:
            fwd.append((i, f))
    if not drift and not fwd:
        return None
    panels = [p for p in ((drift, "drift vs replay [m]"), (fwd, "generated forward x [m]")) if p[0]]
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (series, ylabel) in zip(axes, panels, strict=True):
        for i, a in series:
            ax.plot(
                np.arange(len(a)) * _ctrl_dt(runs[i]), a, color=_color(i), lw=1.2, label=_run_name(runs[i], i)
            )
        ax.set_xlabel("time [s]", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Long horizon (open loop)", fontsize=10)
    return fig


# (file stem, caption, function)
PLOTS: tuple[tuple[str, str, Callable[[Sequence[dict]], Figure | None]], ...] = (
    (
        "joints",
        "Joint angles of sample 0 (FL hip, thigh, calf; RL thigh): generated vs demonstration (dashed).",
        plot_joints,
    ),
    (
        "base",
        "Base height and world-frame forward velocity of sample 0: generated vs demonstration (dashed).",
        plot_base,
    ),
    ("sae_over_horizon", "Mean one-step SAE at each step k = 1..H (log scale).", plot_sae_over_horizon),
    (
        "contacts",
        "Gait diagrams: foot contacts of the demonstration and of simulated replays.",
        plot_contacts,
    ),
    (
        "long_horizon",
        "Long horizon: horizontal drift between generation and its reference-simulator replay, and the "
        "generated forward displacement.",
        plot_long_horizon,
    ),
)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        fig.clear()  # a Figure outside pyplot is freed once unreferenced; clearing drops artists now
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Writing


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename over ``path``: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _provenance_items(prov: dict) -> list[tuple[str, str]]:
    order = ["dataset", "seeds", "machine", "date", "notes"]
    keys = order + [k for k in prov if k not in order and k != "command"]
    items = []
    for k in keys:
        if k not in prov:
            continue
        v = prov[k]
        items.append((str(k), v if isinstance(v, str) else json.dumps(jsonable(v))))
    return items


def _videos(runs: Sequence[dict]) -> list[tuple[str, str]]:
    out = []
    for i, r in enumerate(runs):
        vids = r.get("videos") or []
        for v in [vids] if isinstance(vids, str | Path) else vids:
            out.append((_run_name(r, i), Path(v).as_posix()))
    return out


def _md_code(text: str) -> str:
    """Inline code that survives backticks in ``text`` (a longer fence, padded with spaces)."""
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if fence != "`" else f"`{text}`"


def _section_md(sec: dict) -> list[str]:
    lines = [f"## {sec['title']}", ""]
    if sec.get("text"):
        lines += [sec["text"], ""]
    header, rows = sec.get("header") or [], sec.get("rows") or []
    if header:
        lines.append("| " + " | ".join(_md_cell(str(h)) for h in header) + " |")
        lines.append("|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(_md_cell(str(c)) for c in row) + " |" for row in rows]
        lines.append("")
    return lines


def _section_html(sec: dict) -> list[str]:
    e = html.escape
    out = [f"<h2>{e(sec['title'])}</h2>"]
    if sec.get("text"):
        out.append(f"<p>{e(sec['text'])}</p>")
    header, rows = sec.get("header") or [], sec.get("rows") or []
    if header:
        out.append("<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr></thead>")
        out.append("<tbody>")
        for row in rows:
            cells = [f"<th>{e(str(row[0]))}</th>"] + [f'<td class="num">{e(str(c))}</td>' for c in row[1:]]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    return out


def _markdown(runs, prov, plots: list[tuple[str, str]], videos, sections: Sequence[dict] = ()) -> str:
    lines = ["# DynaFlow evaluation report", "", f"Produced by: {_md_code(str(prov.get('command', NA)))}", ""]
    lines += [f"- **{k}**: {_md_cell(v)}" for k, v in _provenance_items(prov)]
    lines += ["", "## Runs", ""]
    for i, r in enumerate(runs):
        method = _run_metrics(r).get("method", NA)
        lines.append(
            f"- **{_md_cell(_run_name(r, i))}**: method {_md_code(str(method))}, "
            f"checkpoint {_md_code(str(r.get('checkpoint', NA)))}"
        )
    lines += [
        "",
        "## Metrics",
        "",
        format_markdown_table(runs),
        "",
        "Bold: the best value of a row (where lower or higher is better). n/a: not measured for that "
        "method (e.g. a state-only model has no actions, so no SAE or executability).",
        "",
    ]
    for sec in sections:
        lines += _section_md(sec)
    if plots:
        lines += ["## Plots", ""]
        for rel, caption in plots:
            lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    if videos:
        lines += ["## Videos", ""]
        lines += [f"- {_md_cell(name)}: [{rel}]({rel})" for name, rel in videos]
        lines.append("")
    lines += ["## Definitions", ""]
    lines += [f"- **{label}**: {definition}" for label, definition in _definitions(runs)]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
thead th { background: #f0f0f0; }
tbody th { text-align: left; font-weight: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.na { text-align: right; color: #999; }
figure { margin: 1.5em 0; }
figure img, video { max-width: 100%; }
figcaption { font-size: 13px; color: #555; }
code { background: #f5f5f5; padding: 1px 4px; }
.defs li { margin: 0.3em 0; font-size: 14px; }
"""


def _html(runs, prov, plots: list[tuple[str, str, bytes]], videos, sections: Sequence[dict] = ()) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>DynaFlow evaluation report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>DynaFlow evaluation report</h1>",
        f"<p>Produced by: <code>{e(str(prov.get('command', NA)))}</code></p>",
        "<ul>",
    ]
    out += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in _provenance_items(prov)]
    out += ["</ul>", "<h2>Runs</h2>", "<ul>"]
    for i, r in enumerate(runs):
        method = str(_run_metrics(r).get("method", NA))
        out.append(
            f"<li><b>{e(_run_name(r, i))}</b>: method <code>{e(method)}</code>, checkpoint "
            f"<code>{e(str(r.get('checkpoint', NA)))}</code></li>"
        )
    out += ["</ul>", "<h2>Metrics</h2>", _html_table(runs)]
    out.append(
        "<p>Bold: the best value of a row (where lower or higher is better). n/a: not measured for that "
        "method. Hover a metric for its definition.</p>"
    )
    for sec in sections:
        out += _section_html(sec)
    if plots:
        out.append("<h2>Plots</h2>")
        for stem, caption, png in plots:
            data = base64.b64encode(png).decode("ascii")
            out.append(
                f'<figure><img alt="{e(stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
    if videos:
        out.append("<h2>Videos</h2>")
        for name, rel in videos:
            src = e(rel, quote=True)
            media = (
                f'<img src="{src}" alt="{src}">'
                if rel.lower().endswith((".gif", ".png", ".jpg", ".jpeg", ".webp"))
                else f'<video controls muted loop src="{src}"></video>'
            )
            out.append(
                f'<figure>{media}<figcaption>{e(name)}: <a href="{src}">{e(rel)}</a></figcaption></figure>'
            )
    out += ["<h2>Definitions</h2>", '<ul class="defs">']
    out += [f"<li><b>{e(label)}</b>: {e(definition)}</li>" for label, definition in _definitions(runs)]
    out += ["</ul>", "</body></html>"]
    return "\n".join(out) + "\n"


def write_report(
    out_dir: str | Path, runs: list[dict], provenance: dict, sections: Sequence[dict] = ()
) -> dict[str, Path | list[Path]]:
    """Write ``metrics.json``, ``report.md``, ``report.html`` (self-contained: plots embedded as base64
    PNG) and ``plots/*.png`` into ``out_dir`` for ``runs`` (one dict per evaluated checkpoint, in column
    order: ``name``, ``checkpoint``, ``method``, ``metrics``, optional ``plots`` and ``videos``).

    ``provenance`` should hold ``command``, ``dataset`` and ``seeds`` (a warning names any missing one;
    ``date`` defaults to now, UTC). Metrics a run lacks or that are NaN show as "n/a"; a plot input that is
    missing skips that run in that plot, and a plot no run has data for is not drawn. Returns the paths
    written: ``{"metrics", "markdown", "html", "plots": [...]}``. ``sections``: extra tables after the
    metrics, each ``{"title", "text" (optional), "header": [...], "rows": [[...], ...]}`` (first column
    a label), also stored in ``metrics.json``."""
    if not runs:
        raise ValueError("write_report: runs is empty: nothing to report")
    for i, r in enumerate(runs):
        if not isinstance(r, dict):
            raise TypeError(f"write_report: runs[{i}] is a {type(r).__name__}, expected a dict")
    prov = dict(provenance or {})
    missing = [k for k in ("command", "dataset", "seeds") if k not in prov]
    if missing:
        warnings.warn(f"write_report: provenance lacks {missing}", stacklevel=2)
    prov.setdefault("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))

    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)

    doc = {
        "provenance": jsonable(prov),
        "runs": [
            {
                "name": _run_name(r, i),
                "checkpoint": jsonable(r.get("checkpoint")),
                "method": jsonable(_run_metrics(r).get("method")),
                "metrics": jsonable(r.get("metrics") or {}),
            }
            for i, r in enumerate(runs)
        ],
        "sections": jsonable(list(sections)),
    }
    metrics_path = out / "metrics.json"
    _atomic_write(metrics_path, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())

    pngs: list[tuple[str, str, bytes]] = []
    plot_paths: list[Path] = []
    for stem, caption, draw in PLOTS:
        fig = draw(runs)
        if fig is None:
            continue
        png = _png(fig)
        path = plot_dir / f"{stem}.png"
        _atomic_write(path, png)
        plot_paths.append(path)
        pngs.append((stem, caption, png))

    videos = _videos(runs)
    for name, rel in videos:
        if not (out / rel).exists():
            warnings.warn(f"write_report: run {name!r}: video {rel!r} not found under {out}", stacklevel=2)

    md_path, html_path = out / "report.md", out / "report.html"
    md_plots = [(f"plots/{stem}.png", caption) for stem, caption, _ in pngs]
    _atomic_write(md_path, _markdown(runs, prov, md_plots, videos, sections).encode())
    _atomic_write(html_path, _html(runs, prov, pngs, videos, sections).encode())
    return {"metrics": metrics_path, "markdown": md_path, "html": html_path, "plots": plot_paths}
