"""Per-clip evaluation of a model trained on motion clips (``dynaflow demo --data clips.npz``,
``benchmarks/mocap.py``): does it turn each clip into motion a Go2 can execute, in the clip's style?

For every clip (one episode of an imported or kinematic dataset) and seed, the model generates
``seconds`` of motion **chained open loop from a settled standing state** under the clip's own
conditioning (its measured heading-frame velocity and its style), and the actions are replayed in
MuJoCo C, in the training simulator and the converged reference one. Each run is scored on the
reference replay (:func:`clip_figures`); ``upright_same`` and ``upright_phi`` say whether it stayed up in
the replay with Φ's own options and in the generated motion itself (a fall in Φ is the model's: a
learning gap; a fall only in a replay is motion that does not survive open loop elsewhere):

* **upright** the whole run;
* **speed**: the heading-frame planar speed after the first second against the clip's: at least half of
  it for clips up to 1 m/s, at least 0.5 m/s for faster ones (n/a for clips slower than 0.1 m/s);
* **direction**: the achieved planar velocity within 45° of the clip's (n/a for slow clips), and for a
  clip that turns (|yaw rate| >= 0.2 rad/s) a yaw rate of the same sign and at least half as large;
* **style**: per-joint mean and standard deviation of the joint angles against the clip's (mean
  absolute differences, rad), over the same error of **standing still** (the settled stand held):
  ``style_ratio`` <= 0.5 means within half the error of standing still;
* **contacts**: correlations of the feet's contact signals for the diagonal pairs (FL-RR, FR-RL) and the
  lateral pairs (FL-RL, FR-RR); a clip's pattern is *recognisable* in the motion when the sign of
  diagonal minus lateral agrees (a trot: diagonal in phase; a pace: lateral), n/a when the clip shows
  neither (|difference| < 0.3).

A states-only model (``state-fm``) has no actions to replay: its generated states are scored instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynaflow.data.conditioning import heading_velocity, warm_steps, yaw_of
from dynaflow.data.quat import qmul, qyaw
from dynaflow.data.schema import Dataset
from dynaflow.data.sources.gaits import start_state
from dynaflow.physics import stays_up
from dynaflow.robots.go2 import FOOT_RADIUS, JOINTS, LINVEL, QUAT

__all__ = [
    "Clip",
    "align_to",
    "clip_figures",
    "clip_section",
    "clip_suite",
    "clips_of",
    "contact_pattern",
    "foot_contacts",
    "pair_correlations",
    "style_error",
    "summarise_clips",
]

SLOW = 0.1  # m/s: a clip slower than this has no direction or speed to follow
TURNING = 0.2  # rad/s: a clip turning faster than this must be turned with
CONTACT_HEIGHT = 0.015  # m: a foot whose bottom is this close to the floor is in contact
PATTERN_MIN = 0.3  # |diagonal - lateral| below this: the clip shows no clear contact pattern


@dataclass(frozen=True)
class Clip:
    """One clip to evaluate: its name, the conditioning it was trained with, its speed and its states."""

    name: str
    cond: np.ndarray | None  # (C,)
    speed: np.ndarray  # heading-frame (vx, vy, yaw rate) measured on the clip
    states: np.ndarray  # (T, 37)


def clips_of(dataset: Dataset, summary: dict | None = None, max_clips: int | None = None) -> list[Clip]:
    """The clips of a dataset: one per episode, named from the import summary (``clips.npz.json``) when
    there is one; ``max_clips`` keeps that many, evenly spaced over the episodes."""
    n = dataset.num_episodes
    pick = np.arange(n) if max_clips is None or n <= max_clips else np.linspace(0, n - 1, max_clips).round()
    names = None
    if summary and isinstance(summary.get("clips"), list) and len(summary["clips"]) == n:
        names = [f"{Path(c.get('file', f'clip{i}')).stem}" for i, c in enumerate(summary["clips"])]
    out = []
    dt = float((summary or {}).get("ctrl_dt", 0.02))
    for e in pick.astype(int):
        X = dataset.states[e, : int(dataset.lengths[e])].astype(np.float64)
        cond = None if dataset.conditionings is None else dataset.conditionings[e, 0].astype(np.float32)
        out.append(Clip(names[e] if names else f"episode {e}", cond, heading_velocity(X, dt), X))
    return out


def read_summary(data: str | Path) -> dict | None:
    """The import summary written next to an imported dataset (``clips.npz.json``), if any."""
    path = Path(str(data) + ".json")
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


PAIRS = {"diagonal": ((0, 3), (1, 2)), "lateral": ((0, 2), (1, 3))}  # leg indices in FL FR RL RR


def foot_contacts(X: np.ndarray, height: float = CONTACT_HEIGHT) -> np.ndarray:
    """Contact signals ``(T, 4)`` (1.0 when a foot's bottom is within ``height`` of the floor) of states
    ``(T, 37)``, from the Go2's forward kinematics (the legs in FL FR RL RR order)."""
    from dynaflow.data.sources.clips import feet_in_world

    bottoms = feet_in_world(np.asarray(X, np.float64)[:, :19])[..., 2] - FOOT_RADIUS
    return (bottoms < height).astype(float)


def pair_correlations(contact: np.ndarray) -> dict[str, list[float]]:
    """Correlations of the contact signals of each diagonal and each lateral leg pair (NaN where a foot's
    signal never changes)."""

    def corr(a: int, b: int) -> float:
        if contact[:, a].std() == 0 or contact[:, b].std() == 0:
            return float("nan")
        return float(np.corrcoef(contact[:, a], contact[:, b])[0, 1])

    return {name: [corr(a, b) for a, b in pairs] for name, pairs in PAIRS.items()}


def contact_pattern(X: np.ndarray, height: float = CONTACT_HEIGHT) -> dict:
    """Mean correlation of the contact signals of the diagonal and of the lateral leg pairs (NaN where no
    pair's feet both change), and the duty factor of each foot, for states ``(T, 37)``."""
    contact = foot_contacts(X, height)
    pairs = pair_correlations(contact)
    out = {name: _nanmean(values) for name, values in pairs.items()}
    out["duty"] = contact.mean(axis=0).round(3).tolist()
    return out


def style_error(X: np.ndarray, clip: np.ndarray) -> float:
    """Mean over joints of |Δ mean| + |Δ std| of the joint angles of ``X`` against ``clip`` (rad)."""
    a, b = np.asarray(X, np.float64)[:, JOINTS], np.asarray(clip, np.float64)[:, JOINTS]
    return float(np.mean(np.abs(a.mean(0) - b.mean(0))) + np.mean(np.abs(a.std(0) - b.std(0))))


def align_to(clip: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """The clip moved (in the plane) and turned (about the vertical) to start at ``x0``'s position and
    heading: a ghost that walks beside the generated motion."""
    X = np.array(clip, np.float64)
    d = float(yaw_of(x0) - yaw_of(X[0]))
    c, s = np.cos(d), np.sin(d)
    R = np.array([[c, -s], [s, c]])
    X[:, 0:2] = (X[:, 0:2] - X[0, 0:2]) @ R.T + np.asarray(x0)[0:2]
    X[:, QUAT] = qmul(np.broadcast_to(qyaw(d), X[:, QUAT].shape), X[:, QUAT])
    X[:, LINVEL.start : LINVEL.start + 2] = X[:, LINVEL.start : LINVEL.start + 2] @ R.T
    return X


def clip_figures(X: np.ndarray, clip: Clip, stand: np.ndarray, dt: float) -> dict:
    """One run's figures (module docstring) from its true states ``X`` (T+1, 37)."""
    X = np.asarray(X, np.float64)
    ok = bool(np.all(np.isfinite(X)))
    down = ~stays_up(X[:, None]) if ok else np.ones(len(X), bool)
    fell = float(np.argmax(down) * dt) if down.any() else None
    warm = warm_steps(len(X), dt)  # speed and style are measured after the first second
    ach = heading_velocity(X[warm:], dt) if ok else np.full(3, np.nan)
    want = np.asarray(clip.speed, np.float64)
    v_clip, v_got = float(np.hypot(*want[:2])), float(np.hypot(*ach[:2]))
    out: dict = {
        "upright": fell is None,
        "fell_at_s": fell,
        "achieved": [float(v) for v in ach],
        "clip_speed": [float(v) for v in want],
        "speed_ratio": v_got / v_clip if v_clip >= SLOW else None,
        "speed_ok": None,
        "direction_deg": None,
        "direction_ok": None,
        "turn_ok": None,
    }
    if v_clip >= SLOW and ok:
        out["speed_ok"] = bool(v_got >= min(0.5 * v_clip, 0.5))  # half the clip's, 0.5 m/s for faster
        cos = float(ach[:2] @ want[:2] / max(v_got * v_clip, 1e-9))
        out["direction_deg"] = float(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        out["direction_ok"] = bool(v_got > 0.05 and out["direction_deg"] <= 45.0)
    if abs(want[2]) >= TURNING and ok:
        out["turn_ok"] = bool(ach[2] * want[2] > 0 and abs(ach[2]) >= 0.5 * abs(want[2]))
    moving = X[warm:] if ok else X[:1]
    err = style_error(moving, clip.states)
    still = style_error(np.asarray(stand, np.float64)[None], clip.states)
    out["style_error"] = err
    out["style_error_standing"] = still
    out["style_ratio"] = err / still if still > 0 else None
    mine, theirs = contact_pattern(moving), contact_pattern(clip.states)
    out["contacts"] = {"diagonal": mine["diagonal"], "lateral": mine["lateral"], "duty": mine["duty"]}
    out["clip_contacts"] = {"diagonal": theirs["diagonal"], "lateral": theirs["lateral"]}
    gap = theirs["diagonal"] - theirs["lateral"]
    mine_gap = mine["diagonal"] - mine["lateral"]
    out["contacts_ok"] = (
        None
        if not np.isfinite(gap) or abs(gap) < PATTERN_MIN
        else bool(np.isfinite(mine_gap) and mine_gap * gap > 0)
    )
    return out


def _stayed_up(X: np.ndarray) -> bool:
    """Whether states ``X`` (T+1, 37) stay up the whole run (a non-finite state counts as a fall)."""
    return bool(stays_up(X)) if np.all(np.isfinite(X)) else False


def clip_suite(
    policy,
    clips: Sequence[Clip],
    seconds: float = 10.0,
    seeds: int = 2,
    seed: int = 0,
    x0: np.ndarray | None = None,
    keep: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> dict:
    """Every clip × ``seeds`` runs (module docstring). ``x0`` defaults to the settled stand. Returns
    ``{"cells": [...], "summary": ..., "seconds", "fidelity", "kept": {clip name: (states, ghost)}}`` for
    the clips named in ``keep`` (their first seed's reference replay and the aligned clip)."""
    from dynaflow.generate import rollout_long

    dt = policy.rollout.ctrl_dt
    x0 = start_state(policy.rollout) if x0 is None else np.asarray(x0, np.float64)
    fidelity = "reference" if policy.has_actions else "generated"
    cells, kept = [], {}
    for i, clip in enumerate(clips):
        for s in range(seeds):
            res = rollout_long(
                policy, x0, clip.cond, seconds=seconds, seed=seed + s, replay=policy.has_actions
            )
            X = res.replays.get("reference", res.states)
            cell = {"clip": clip.name, "seed": s, **clip_figures(X, clip, x0, dt)}
            if "same" in res.replays:
                cell["upright_same"] = _stayed_up(res.replays["same"])
                # the generated motion itself (Φ's states): a fall here is the model's, not the replay's
                cell["upright_phi"] = _stayed_up(res.states)
            cells.append(cell)
            if s == 0 and clip.name in keep:
                kept[clip.name] = (X, align_to(clip.states, x0))
        if log:
            log(f"clip {i + 1}/{len(clips)}: {clip.name}")
    return {
        "cells": cells,
        "summary": summarise_clips(cells),
        "seconds": seconds,
        "fidelity": fidelity,
        "kept": kept,
    }


def _frac(values) -> float | None:
    v = [bool(x) for x in values if x is not None]
    return float(np.mean(v)) if v else None


def summarise_clips(cells: Sequence[dict]) -> dict:
    """Fractions of runs meeting each criterion (over the runs where it applies) and the median style
    ratio, over all clips and per clip."""

    def block(cs):
        ratios = [c["style_ratio"] for c in cs if c["style_ratio"] is not None]
        return {
            "runs": len(cs),
            "upright": _frac(c["upright"] for c in cs),
            "upright_same": _frac(c.get("upright_same") for c in cs),
            "upright_phi": _frac(c.get("upright_phi") for c in cs),
            "speed_ok": _frac(c["speed_ok"] for c in cs),
            "direction_ok": _frac(c["direction_ok"] for c in cs),
            "turn_ok": _frac(c["turn_ok"] for c in cs),
            "style_ratio_median": float(np.median(ratios)) if ratios else None,
            "style_ok": _frac(None if c["style_ratio"] is None else c["style_ratio"] <= 0.5 for c in cs),
            "contacts_ok": _frac(c["contacts_ok"] for c in cs),
        }

    names = list(dict.fromkeys(c["clip"] for c in cells))
    return {"all": block(cells), "clips": {n: block([c for c in cells if c["clip"] == n]) for n in names}}


def _nanmean(values) -> float:
    v = np.asarray(values, np.float64)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f} %"


def clip_section(result: dict, name: str) -> dict:
    """A report section: one row per clip (means over its seeds)."""
    rows = []
    for clip, s in result["summary"]["clips"].items():
        cs = [c for c in result["cells"] if c["clip"] == clip]
        ach = np.mean([c["achieved"] for c in cs], axis=0)
        want = cs[0]["clip_speed"]
        diag, lat = (_nanmean([c["contacts"][k] for c in cs]) for k in ("diagonal", "lateral"))
        cd, cl = cs[0]["clip_contacts"]["diagonal"], cs[0]["clip_contacts"]["lateral"]
        rows.append(
            [
                clip,
                f"{want[0]:.2f}, {want[1]:.2f}, {want[2]:.2f}",
                f"{ach[0]:.2f}, {ach[1]:.2f}, {ach[2]:.2f}",
                _pct(s["upright"]),
                _pct(s["speed_ok"]),
                _pct(s["direction_ok"])
                + (f" / turn {_pct(s['turn_ok'])}" if s["turn_ok"] is not None else ""),
                "n/a" if s["style_ratio_median"] is None else f"{s['style_ratio_median']:.2f}",
                f"{diag:+.2f} / {lat:+.2f} (clip {cd:+.2f} / {cl:+.2f})",
            ]
        )
    a = result["summary"]["all"]
    return {
        "title": f"Per clip ({name}, {result['seconds']:g} s chained open loop from a stand, "
        f"{result['fidelity']})",
        "text": f"{a['runs']} runs: {_pct(a['upright'])} upright the whole run, speed reached in "
        f"{_pct(a['speed_ok'])}, direction kept in {_pct(a['direction_ok'])}, turns followed in "
        f"{_pct(a['turn_ok'])}, style within half of standing still's error in {_pct(a['style_ok'])}, the "
        f"clip's contact pattern recognisable in {_pct(a['contacts_ok'])} (where each applies). Velocities "
        "are heading-frame (vx m/s, vy m/s, yaw rate rad/s) after the first second; style ratio: joint "
        "mean/std error over standing still's (<= 0.5 is the target); contacts: diagonal / lateral pair "
        "correlations.",
        "header": [
            "clip",
            "clip velocity",
            "achieved",
            "upright",
            "speed",
            "direction",
            "style ratio",
            "contacts diag / lat",
        ],
        "rows": rows,
    }
