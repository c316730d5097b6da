"""Running an evaluation: sample from a checkpoint on held-out demonstrations and compute every metric.

Every metric is a function in :mod:`dynaflow.evaluate.metrics` (formulas in its docstring), defined for the
reader once in :mod:`dynaflow.evaluate.catalogue`; this module samples and puts them together. What
:func:`evaluate_run` reports:

* **TRE** (trajectory error): generated vs demonstrated states from the same x0 and c, mean per step
  over steps 1..H; ``tre`` in normalised units (RMS over dimensions), ``tre_<group>`` the mean Euclidean
  error of each state group in physical units. Windows come from the checkpoint's held-out episodes when
  the dataset is the one it was trained on (``episodes`` says which).
* **SAE** (statewise admissibility error), two forms: ``sae_*`` the rollout form, generated states vs
  MuJoCo C's replay of the generated actions from x0 with the same model and options (DynaFlow's states
  *are* a rollout of its actions, so this is MJX-vs-C agreement, ~1e-5); ``sae_one_step_*`` each
  generated x_{k+1} vs one simulated step from the generated x_k with u_k. A states-only baseline
  (``state-fm``) has no actions: n/a (NaN); ``state-fm-id`` is scored with its inverse-dynamics actions.
  ``sae_best_action_*`` scores every model the same way: the one-step error with the best action for
  each transition (Adam through MJX's control step, from the model's own actions when it has them).
* **Reference divergence / executability**: the actions replayed open loop in the converged "reference"
  simulator: ``ref_div_*`` state divergence, ``exec_reference_success`` upright fraction,
  ``exec_reference_drift_*`` final horizontal drift (m).
* **Long horizon** (``long_*``): windows chained for ``long_seconds`` from held-out episodes' first states
  (per gait on a gait-conditioned dataset), the whole action sequence replayed open loop in MuJoCo C
  ("same" and "reference"): success rate (upright throughout) and final drift.
* **Command tracking** (``track_*_err``) and **gait fidelity** (``gait_accuracy``, ``gait_accuracy_<gait>``)
  on those long runs, measured on the reference replay (on the generated states for a states-only model):
  mean |achieved − commanded| (vx, vy, yaw rate) after the first second, and the fraction of runs whose
  every leg's contact phase is within 0.15 cycles of the conditioned gait's design.
* **Plausibility** (foot penetration and sliding, joint limits, quaternion norm), **MMD** to the held-out
  windows and **diversity** (normalised units), and the sampling time.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import jax
import numpy as np

from dynaflow.data import Dataset, gather_windows, load_dataset, window_index
from dynaflow.data.sources.gaits import COND_DIM, GAITS, SPECS, phase_offsets
from dynaflow.evaluate import metrics as M
from dynaflow.flow import trajectory_errors
from dynaflow.physics import replay_in_mujoco, stays_up
from dynaflow.policy import check_conditioning, held_out_episodes

NAN = float("nan")
WARMUP_SECONDS = 1.0  # tracking and gait phases are measured after this transient


def sample_batched(policy, x0, cond, batch: int, ode_steps: int, seed: int):
    """Samples in fixed-size batches (one compile); returns X, U (or None) and per-batch seconds."""
    n = len(x0)
    gens, acts, times = [], [], []
    for j in range(0, n, batch):
        sl = slice(j, min(j + batch, n))
        pad = batch - (sl.stop - sl.start)
        xb = np.concatenate([x0[sl], np.repeat(x0[sl.start : sl.start + 1], pad, 0)])
        cb = (
            None
            if cond is None
            else np.concatenate([cond[sl], np.repeat(cond[sl.start : sl.start + 1], pad, 0)])
        )
        t0 = time.perf_counter()
        X, U = policy.sample(xb, cb, rng=jax.random.PRNGKey(seed * 100_003 + j), ode_steps=ode_steps)
        times.append(time.perf_counter() - t0)
        gens.append(X[: batch - pad])
        acts.append(None if U is None else U[: batch - pad])
    U = None if acts[0] is None else np.concatenate(acts)
    return np.concatenate(gens), U, times


def _nan_keys(prefix: str, stats: tuple[str, ...]) -> dict[str, float]:
    return {f"{prefix}_{s}": NAN for s in stats}


def window_metrics(
    policy, X_gen, U_gen, X_ref, reference: bool = True, best_action: bool = True
) -> tuple[dict, np.ndarray | None]:
    """TRE, both SAE forms (and the best-action one-step SAE), reference divergence and executability,
    plausibility, MMD and diversity of generated windows against the demonstrations; also the mean
    one-step SAE per step (H,) (best-action form for a states-only model)."""
    out = dict(trajectory_errors(X_gen, X_ref, policy.normalizer.std))
    per_step = None
    if best_action:
        stats, errors = M.sae_best_action(policy.rollout, X_gen, policy.normalizer.std, U0=U_gen)
        out.update(stats)
        if U_gen is None:
            per_step = errors.mean(axis=(0, 2))
    if U_gen is None:  # a states-only generator: nothing to replay
        out.update(_nan_keys("sae", ("max", "mean")))
        out.update(_nan_keys("sae_one_step", ("max", "mean")))
        if reference:
            out.update(_nan_keys("ref_div", ("max", "mean")))
            out.update(_nan_keys("exec_reference", ("success", "drift_mean", "drift_max")))
    else:
        same = replay_in_mujoco(policy.rollout, X_gen[:, 0], U_gen, "same")
        out.update(M.replay_errors(X_gen, same, "sae"))
        one = M.one_step_errors(policy.rollout, X_gen, U_gen)
        out.update(M.error_stats(one, "sae_one_step"))
        per_step = one.mean(axis=(0, 2))
        if reference:
            ref = replay_in_mujoco(policy.rollout, X_gen[:, 0], U_gen, "reference")
            out.update(M.replay_errors(X_gen, ref, "ref_div"))
            out.update(M.replay_outcome(X_gen, ref, "exec_reference"))
    out.update(M.plausibility(policy.rollout.mj_model, X_gen, policy.rollout.ctrl_dt))
    std = policy.normalizer.std
    if len(X_gen) >= 2:
        out["mmd_rbf"] = M.mmd_rbf(X_gen[:, 1:] / std, X_ref[:, 1:] / std)
        out["diversity"] = M.diversity(X_gen[:, 1:] / std)
    return out, per_step


def _gait_of(cond: np.ndarray) -> str:
    onehot = cond[3:COND_DIM]
    return GAITS[int(np.argmax(onehot))] if onehot.max() > 0.5 else "stand"


def long_horizon_metrics(
    policy, ds: Dataset, episodes: np.ndarray, seconds: float = 10.0, per_group: int = 2, seed: int = 0
) -> tuple[dict, dict]:
    """Chained generation for ``seconds`` from the first state of up to ``per_group`` episodes per gait
    (one group on a dataset without gait conditioning), replayed open loop; see the module docstring."""
    dt = policy.rollout.ctrl_dt
    gait_data = ds.cond_dim == COND_DIM
    groups: dict[str, list[int]] = {}
    for e in episodes:
        name = _gait_of(ds.conditionings[e, 0]) if gait_data else "all"
        if len(groups.setdefault(name, [])) < per_group:
            groups[name].append(int(e))
    warm = int(round(WARMUP_SECONDS / dt))
    out: dict = {"long_seconds": float(seconds)}
    success = {"same": [], "reference": []}
    drift = {"same": [], "reference": []}
    upright, forward, track, gait_ok = [], [], [], {}
    plots: dict = {}
    for name, eps in groups.items():
        x0 = ds.states[eps, 0]
        cond = None if ds.conditionings is None else ds.conditionings[eps, 0]
        X, U = policy.generate_open_loop(x0, cond, seconds=seconds, rng=seed)
        upright.append(stays_up(X))
        forward.append(X[:, -1, 0] - X[:, 0, 0])
        measured = X
        if U is not None:
            for fid in ("same", "reference"):
                replay = replay_in_mujoco(policy.rollout, X[:, 0], U, fid)
                success[fid].append(stays_up(replay))
                drift[fid].append(np.linalg.norm(replay[:, -1, :2] - X[:, -1, :2], axis=-1))
            measured = replay
        if gait_data and X.shape[1] > warm + 2:
            err = M.command_tracking(measured[:, warm:], cond, dt)
            track.append((len(eps), [err["track_vx_err"], err["track_vy_err"], err["track_yaw_err"]]))
            if name in SPECS and name != "stand":
                feet = M.foot_positions(policy.rollout.mj_model, measured[:, warm:])
                phases = phase_offsets(M.contacts(feet), SPECS[name].period, dt)
                ok = [M.gait_accuracy(p[None], np.asarray(SPECS[name].offsets)) for p in phases]
                gait_ok[name] = ok
        if "long_drift" not in plots or name == "trot":
            window = slice(warm, warm + int(round(2.0 / dt)))
            demo = ds.states[eps[0], : ds.lengths[eps[0]]]
            plots.update(
                long_forward=X[0, :, 0] - X[0, 0, 0],
                long_drift=None if U is None else np.linalg.norm(measured[0, :, :2] - X[0, :, :2], axis=-1),
                contacts=M.contacts(M.foot_positions(policy.rollout.mj_model, measured[0, window])),
                contacts_ref=M.contacts(M.foot_positions(policy.rollout.mj_model, demo[window])),
                contacts_group=name,
                long_states=measured[0],
                long_demo=demo,
            )
    out["long_generated_upright"] = float(np.concatenate(upright).mean())
    out["long_generated_forward_m"] = float(np.concatenate(forward).mean())
    for fid in ("same", "reference"):
        out[f"long_{fid}_success"] = float(np.concatenate(success[fid]).mean()) if success[fid] else NAN
        out[f"long_{fid}_drift_mean"] = float(np.concatenate(drift[fid]).mean()) if drift[fid] else NAN
    if track:
        err = np.average([e for _, e in track], axis=0, weights=[n for n, _ in track])
        out.update(track_vx_err=float(err[0]), track_vy_err=float(err[1]), track_yaw_err=float(err[2]))
    if gait_ok:
        out["gait_accuracy"] = float(np.mean([v for vs in gait_ok.values() for v in vs]))
        out.update({f"gait_accuracy_{g}": float(np.mean(v)) for g, v in gait_ok.items()})
    out["long_measured_on"] = "reference replay" if policy.has_actions else "generated states"
    return out, plots


def evaluate_run(
    policy,
    dataset: str | Path,
    num_samples: int = 100,
    batch: int = 32,
    ode_steps: int = 1,
    seed: int = 0,
    reference: bool = True,
    long_seconds: float = 10.0,
    long_per_group: int = 2,
    best_action: bool = True,
) -> dict:
    """Every metric for one checkpoint: ``{"metrics": {...}, "plots": {...}}`` (plots: arrays for the
    report). ``long_seconds=0`` skips the long-horizon part."""
    if num_samples < 1 or batch < 1 or ode_steps < 1:
        raise ValueError(
            f"--num-samples, --batch and --ode-steps must be >= 1, got {num_samples}, {batch}, {ode_steps}"
        )
    ds = load_dataset(dataset)
    check_conditioning(policy, ds)
    H = policy.horizon
    episodes, which = held_out_episodes(policy, ds)
    index = window_index(ds, episodes, H, stride=H)
    rng = np.random.default_rng(seed)
    if len(index) > num_samples:
        index = index[np.sort(rng.choice(len(index), num_samples, replace=False))]
    X_ref, cond = gather_windows(ds, index, H)
    X_gen, U_gen, times = sample_batched(policy, X_ref[:, 0], cond, batch, ode_steps, seed)
    metrics = {
        "method": policy.method,
        "num_samples": len(index),
        "horizon": H,
        "ode_steps": ode_steps,
        "dataset": str(dataset),
        "episodes": which,
    }
    window, per_step = window_metrics(policy, X_gen, U_gen, X_ref, reference, best_action)
    metrics.update(window)
    # warm: the batches after the first (which compiles); one batch has no warm time
    metrics["sample_seconds_per_batch"] = float(np.median(times[1:])) if len(times) > 1 else NAN
    metrics["first_call_seconds"] = float(times[0])
    plots = {
        "X_gen": X_gen[:8],
        "X_ref": X_ref[:8],
        "sae_over_horizon": per_step,
        "ctrl_dt": policy.rollout.ctrl_dt,
    }
    if long_seconds > 0:
        long, long_plots = long_horizon_metrics(policy, ds, episodes, long_seconds, long_per_group, seed)
        metrics.update(long)
        plots.update(long_plots)
    return {"metrics": metrics, "plots": plots}


def evaluate_report(
    checkpoints: list[str | Path],
    dataset: str | Path,
    out_dir: str | Path,
    provenance: dict,
    use_ema: bool = True,
    videos: bool = False,
    log=print,
    sections: list[dict] = (),
    extra_videos: dict[str, list[str]] | None = None,
    transfer: dict | None = None,
    transfer_results: dict[str, dict] | None = None,
    **kwargs,
) -> dict:
    """Evaluate several checkpoints (DynaFlow and baselines) on one dataset with the same seeds and
    write the side-by-side report (:func:`dynaflow.evaluate.report.write_report`) into ``out_dir``:
    ``metrics.json``, ``report.md``, ``report.html``, ``plots/`` and, with ``videos``, one MP4 per
    checkpoint of its long-horizon motion (the demonstration as a ghost). ``sections`` are extra tables
    and ``extra_videos`` maps a method to more video paths (relative to ``out_dir``), both as
    :func:`~dynaflow.evaluate.report.write_report` takes them. ``transfer``: run the transfer suite
    (:func:`~dynaflow.evaluate.transfer.transfer_suite`, these keyword arguments) for every checkpoint with
    actions and gait conditioning; its tables follow the metrics. ``transfer_results`` maps a method to a
    suite already run (the demo's). Returns the written paths."""
    from dynaflow.evaluate.report import write_report
    from dynaflow.policy import DynaFlowPolicy

    out_dir = Path(out_dir)
    runs, names = [], set()
    for ckpt in checkpoints:
        t0 = time.perf_counter()
        policy = DynaFlowPolicy.from_checkpoint(ckpt, use_ema=use_ema)
        result = evaluate_run(policy, dataset, **kwargs)
        name = policy.method if policy.method not in names else f"{policy.method} ({Path(ckpt).name})"
        names.add(name)
        run = {"name": name, "checkpoint": str(ckpt), "method": policy.method, **result}
        if videos and result["plots"].get("long_states") is not None:
            from dynaflow.render import render_motion

            slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
            path = render_motion(
                result["plots"]["long_states"],
                out_dir / "videos" / f"{slug}.mp4",
                ghost=result["plots"].get("long_demo"),
                fast=True,
            )
            run["videos"] = [str(path.relative_to(out_dir))]
        run["videos"] = run.get("videos", []) + list((extra_videos or {}).get(policy.method, []))
        found = (transfer_results or {}).get(policy.method)
        if found is None and transfer is not None and policy.has_actions and policy.cond_dim == COND_DIM:
            from dynaflow.evaluate.transfer import transfer_suite

            found = transfer_suite(policy, **{"log": log, **transfer})
        if found is not None:
            from dynaflow.evaluate.transfer import headline, transfer_section

            run["transfer"] = found
            result["metrics"].update(headline(found))
            sections = [*sections, *(transfer_section(found, name, m) for m in found["summary"])]
        runs.append(run)
        log(f"evaluated {ckpt} ({policy.method}) in {time.perf_counter() - t0:.0f} s")
    return write_report(out_dir, runs, provenance, sections)
