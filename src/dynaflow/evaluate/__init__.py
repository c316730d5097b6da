"""Evaluation: how close generated motions are to held-out demonstrations, and how physical they are.

* **TRE** (trajectory error): generated vs demonstrated states from the same x0 and c, mean per step
  over steps 1..H; ``tre`` in normalised units (RMS over dimensions), ``tre_<group>`` the mean Euclidean
  error of each state group in physical units.
* **SAE** (state-action error, admissibility): generated states vs MuJoCo C's replay of the generated
  actions with the same model and options ("same" fidelity), max and mean absolute difference. DynaFlow's
  states *are* a rollout of its actions, so this measures MJX-vs-C agreement: it should be ~1e-5.
* **Reference divergence**: the same against the converged "reference" simulator (elliptic cone, 2 ms,
  100 Newton iterations): how far the motion would drift in a higher-fidelity simulator.
* Also, from :mod:`dynaflow.evaluate.metrics`: the one-step SAE, executability in the reference simulator
  (upright fraction, base drift), plausibility (foot penetration and sliding, joint limits, quaternion
  norm), MMD to the held-out windows and diversity (normalised units).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from dynaflow.data import gather_windows, load_dataset, window_index
from dynaflow.evaluate import metrics as M
from dynaflow.flow import trajectory_errors
from dynaflow.physics import STATE_GROUPS, replay_in_mujoco


def evaluate_checkpoint(
    policy,
    dataset: str | Path,
    num_samples: int = 100,
    batch: int = 32,
    ode_steps: int = 1,
    seed: int = 0,
    reference: bool = True,
) -> dict:
    """Sample from ``policy`` at held-out windows of ``dataset`` and compute TRE, SAE and divergence."""
    if num_samples < 1 or batch < 1 or ode_steps < 1:
        raise ValueError(
            f"--num-samples, --batch and --ode-steps must be >= 1, got {num_samples}, {batch}, {ode_steps}"
        )
    ds = load_dataset(dataset)
    if (ds.cond_dim or None) != policy.cond_dim:
        raise ValueError(
            f"{ds.source}: key 'conditionings': the checkpoint takes cond_dim={policy.cond_dim}, "
            f"the dataset has {ds.cond_dim}"
        )
    H = policy.horizon
    index = window_index(ds, np.arange(ds.num_episodes), H, stride=H)
    rng = np.random.default_rng(seed)
    if len(index) > num_samples:
        index = index[np.sort(rng.choice(len(index), num_samples, replace=False))]
    X_ref, cond = gather_windows(ds, index, H)
    n = len(index)
    gens, acts, times = [], [], []
    for j in range(0, n, batch):
        sl = slice(j, min(j + batch, n))
        pad = batch - (sl.stop - sl.start)  # one batch shape: one compile
        x0 = np.concatenate([X_ref[sl, 0], np.repeat(X_ref[sl.start : sl.start + 1, 0], pad, 0)])
        c = (
            None
            if cond is None
            else np.concatenate([cond[sl], np.repeat(cond[sl.start : sl.start + 1], pad, 0)])
        )
        t0 = time.perf_counter()
        X, U = policy.sample(x0, c, rng=jax.random.PRNGKey(seed * 100_003 + j), ode_steps=ode_steps)
        times.append(time.perf_counter() - t0)
        gens.append(X[: batch - pad])
        acts.append(U[: batch - pad])
    X_gen, U_gen = np.concatenate(gens), np.concatenate(acts)
    metrics = {"num_samples": n, "horizon": H, "ode_steps": ode_steps, "dataset": str(dataset)}
    metrics.update(trajectory_errors(X_gen, X_ref, policy.normalizer.std))
    same = replay_in_mujoco(policy.rollout, X_gen[:, 0], U_gen, "same")
    metrics.update(M.replay_errors(X_gen, same, "sae"))
    metrics.update(M.sae_one_step(policy.rollout, X_gen, U_gen))
    if reference:
        ref = replay_in_mujoco(policy.rollout, X_gen[:, 0], U_gen, "reference")
        metrics.update(M.replay_errors(X_gen, ref, "ref_div"))
        metrics.update(M.replay_outcome(X_gen, ref, "exec_reference"))
    metrics.update(M.plausibility(policy.rollout.mj_model, X_gen, policy.rollout.ctrl_dt))
    std = policy.normalizer.std
    if n >= 2:
        metrics["mmd_rbf"] = M.mmd_rbf(X_gen[:, 1:] / std, X_ref[:, 1:] / std)
        metrics["diversity"] = M.diversity(X_gen[:, 1:] / std)
    warm = times[1:] or times
    metrics["sample_seconds_per_batch"] = float(np.median(warm))
    metrics["first_call_seconds"] = float(times[0])
    return metrics


def format_table(metrics: dict) -> str:
    """A plain-text table of the headline metrics."""
    rows = [
        ("samples", f"{metrics['num_samples']} (H={metrics['horizon']}, ode_steps={metrics['ode_steps']})"),
        ("TRE (normalised RMS)", f"{metrics['tre']:.4f}"),
    ]
    units = {
        "base_pos": "m",
        "base_quat": "",
        "joint_pos": "rad",
        "base_linvel": "m/s",
        "base_angvel": "rad/s",
        "joint_vel": "rad/s",
    }
    for name in STATE_GROUPS:
        rows.append((f"TRE {name}", f"{metrics[f'tre_{name}']:.4f} {units[name]}".rstrip()))
    rows.append(
        ("SAE vs MuJoCo C (same), max / mean", f"{metrics['sae_max']:.2e} / {metrics['sae_mean']:.2e}")
    )
    if "ref_div_max" in metrics:
        rows.append(
            (
                "divergence vs reference sim, max / mean",
                f"{metrics['ref_div_max']:.2e} / {metrics['ref_div_mean']:.2e}",
            )
        )
    rows.append(
        (
            "SAE one-step form, max / mean",
            f"{metrics['sae_one_step_max']:.2e} / {metrics['sae_one_step_mean']:.2e}",
        )
    )
    if "exec_reference_success" in metrics:
        rows.append(
            (
                "executable in reference sim (upright), drift",
                f"{100 * metrics['exec_reference_success']:.0f} %, "
                f"{metrics['exec_reference_drift_mean']:.3f} m",
            )
        )
    rows.append(
        (
            "foot penetration max / sliding mean",
            f"{metrics['foot_penetration_max'] * 100:.2f} cm / {metrics['foot_sliding_mean']:.3f} m/s",
        )
    )
    if "mmd_rbf" in metrics:
        rows.append(
            ("MMD (RBF) vs held-out, diversity", f"{metrics['mmd_rbf']:.4f}, {metrics['diversity']:.2f}")
        )
    rows.append(("sampling time per batch (warm)", f"{metrics['sample_seconds_per_batch'] * 1e3:.1f} ms"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
