"""The report's plots, each a function of the evaluated runs returning a matplotlib Figure (or None when no
run has the data).

Plots are drawn with matplotlib's Agg renderer through :class:`matplotlib.figure.Figure` objects that are
never registered with pyplot: no window can open, no global backend is switched (an importing notebook
keeps its own), and nothing stays alive once the PNG bytes are taken.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.figure import Figure

from dynaflow.evaluate.catalogue import number, run_name
from dynaflow.evaluate.headline import walks
from dynaflow.robots.go2 import LEGS, STATE_DIM, STATE_GROUPS

__all__ = ["PLOTS", "plot_headline", "png"]

DEFAULT_CTRL_DT = 0.02  # s, the Go2 control period used by the datasets
_J = STATE_GROUPS["joint_pos"].start
JOINT_COLUMNS = {"FL hip": _J + 0, "FL thigh": _J + 1, "FL calf": _J + 2, "RL thigh": _J + 7}
BASE_HEIGHT_COLUMN = STATE_GROUPS["base_pos"].start + 2
BASE_VX_COLUMN = STATE_GROUPS["base_linvel"].start
FIGSIZE = (8.0, 4.0)
DPI = 100


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
    dt = number((run.get("plots") or {}).get("ctrl_dt"))
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
        a = _array(r, key, shape, run_name(r, i))
        if a is not None:
            items.append((run_name(r, i), a, _ctrl_dt(r)))
    return _unique(items)


def _ref_label(refs: list, name: str) -> str:
    return "demonstration" if len(refs) == 1 else f"demonstration ({name})"


def _state_figure(
    runs: Sequence[dict], columns: dict[str, int], ylabels: dict[str, str], title: str, grid: tuple
) -> Figure | None:
    names = [run_name(r, i) for i, r in enumerate(runs)]
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
        a = _array(r, "sae_over_horizon", (None,), run_name(r, i))
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
        ax.plot(np.arange(1, len(a) + 1), y, marker=".", ms=3, color=_color(i), label=run_name(runs[i], i))
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

    names = [run_name(r, i) for i, r in enumerate(runs)]
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
        n = run_name(r, i)
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
                np.arange(len(a)) * _ctrl_dt(runs[i]), a, color=_color(i), lw=1.2, label=run_name(runs[i], i)
            )
        ax.set_xlabel("time [s]", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Long horizon (open loop)", fontsize=10)
    return fig


def _transfer_panels(
    runs: Sequence[dict], worlds: Sequence[str] | None, modes: Sequence[str]
) -> list[tuple[str, str, list[dict]]]:
    """(run name, mode, cells) for every run with a transfer suite and every mode it ran, keeping only
    the cells of ``worlds`` (all when None)."""
    panels = []
    for i, r in enumerate(runs):
        result = r.get("transfer")
        if not result:
            continue
        for mode in modes:
            cells = [
                c
                for c in result.get("cells", [])
                if c["mode"] == mode and (worlds is None or c["perturbation"] in worlds)
            ]
            if cells:
                panels.append((run_name(r, i), mode, cells))
    return panels


def _transfer_heat_map(ax, name: str, mode: str, cells: list[dict], walking: bool = False) -> None:
    """One panel: rows the worlds, columns the gait commands; colour the fraction of runs upright (or,
    with ``walking``, that walk: :func:`~dynaflow.evaluate.headline.walks`), text distance or "fell"."""
    score = walks if walking else (lambda c: bool(c["upright"]))
    worlds = list(dict.fromkeys(c["perturbation"] for c in cells))
    cols = list(dict.fromkeys((c["gait"], tuple(c["command"])) for c in cells))
    up = np.full((len(worlds), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in worlds]
    for a, w in enumerate(worlds):
        for b, col in enumerate(cols):
            mine = [c for c in cells if c["perturbation"] == w and (c["gait"], tuple(c["command"])) == col]
            if not mine:
                continue
            up[a, b] = np.mean([score(c) for c in mine])
            ratios = [c["distance_ratio"] for c in mine if c["upright"] and c["distance_ratio"] is not None]
            standing = any(c["upright"] for c in mine)
            text[a][b] = f"{np.median(ratios):.2f}" if ratios else ("up" if standing else "fell")
    ax.imshow(up, cmap="RdYlGn", vmin=-0.6, vmax=1.6, aspect="auto")  # light shades: legible text
    for a in range(len(worlds)):
        for b in range(len(cols)):
            ax.text(b, a, text[a][b], ha="center", va="center", fontsize=8 if walking else 6)
    labels = [WORLD_LABELS.get(w, w) if walking else w for w in worlds]
    ax.set_yticks(range(len(worlds)), labels, fontsize=7)
    ax.set_xticks(range(len(cols)), [f"{g}\n{', '.join(f'{v:g}' for v in c)}" for g, c in cols], fontsize=7)
    what = "walks" if walking else "upright"
    ax.set_title(f"{name}: {mode} loop (colour: {what}; text: distance achieved / commanded)", fontsize=8)


def plot_transfer(
    runs: Sequence[dict],
    worlds: Sequence[str] | None = None,
    modes: Sequence[str] = ("open", "closed"),
    panel_height: float = 3.6,
    title: str = "Transfer to perturbed worlds",
    walking: bool = False,
) -> Figure | None:
    """The transfer suite as heat maps, one per run and mode (open, closed loop): rows are the perturbed
    worlds (``worlds`` only, when given), columns the gait commands; colour is the fraction of runs
    upright for the whole run (with ``walking``: that walk), the text the median displacement achieved /
    commanded (or "fell")."""
    panels = _transfer_panels(runs, worlds, modes)
    if not panels:
        return None
    fig = Figure(figsize=(FIGSIZE[0], 0.5 + panel_height * len(panels)), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1))
    for ax, (name, mode, cells) in zip(axes, panels, strict=True):
        _transfer_heat_map(ax, name, mode, cells, walking)
    fig.suptitle(title, fontsize=10)
    return fig


HEADLINE_WORLDS = ("nominal", "reference")
WORLD_LABELS = {"nominal": "Φ (nominal)", "reference": "reference sim"}


def plot_headline(runs: Sequence[dict]) -> tuple[Figure, str] | None:
    """The report's headline figure and its caption: each gait in Φ's world and the reference simulator
    (the transfer suite's open-loop runs in those worlds) when the evaluation has them, else the
    long-horizon plot; None when neither has data."""
    fig = plot_transfer(
        runs, HEADLINE_WORLDS, ("open",), 1.3, "Does each gait walk? (open loop)", walking=True
    )
    if fig is not None:
        caption = (
            "Each gait command's generated actions replayed open loop in MuJoCo C with Φ's options "
            "(nominal) and in the reference simulator: green, it walks (upright the whole run and at least "
            "half the commanded distance; a zero command: upright and still); the number, the distance "
            "along the command / commanded."
        )
        return fig, caption
    fig = plot_long_horizon(runs)
    return None if fig is None else (fig, PLOTS_BY_STEM["long_horizon"])


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
    (
        "transfer",
        "Transfer: each gait command in each perturbed world, open and closed loop (green: upright).",
        plot_transfer,
    ),
)


PLOTS_BY_STEM = {stem: caption for stem, caption, _ in PLOTS}


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (the figure is cleared afterwards)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI)
    finally:
        fig.clear()  # a Figure outside pyplot is freed once unreferenced; clearing drops artists now
    return buf.getvalue()
