"""Benchmark of the evaluation: the time to score 100 samples with every metric, stage by stage.

    python benchmarks/evaluate.py                           # a trained checkpoint is not needed
    python benchmarks/evaluate.py --checkpoint dynaflow_demo/runs/dynaflow --samples 100

Without ``--checkpoint`` it scores an untrained DiT of the demo's size (d 128, depth 2, H 16) on the
bundled gait data: the cost of the metrics does not depend on the weights (except that a robot that
falls early makes the reference simulator's contacts cheaper, so a trained checkpoint is the honest
figure for the long-horizon part). Prints one line per stage, warm (samplers compiled first) and the
total; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from dynaflow.checkpoint import model_meta, save_checkpoint
from dynaflow.data import Normalizer, bundled_dataset, gather_windows, load_dataset, window_index
from dynaflow.evaluate import held_out_episodes, long_horizon_metrics
from dynaflow.evaluate import metrics as M
from dynaflow.evaluate.run import sample_batched
from dynaflow.flow import trajectory_errors
from dynaflow.methods import create_action_predictor
from dynaflow.model import set_normalizer
from dynaflow.physics import replay_in_mujoco
from dynaflow.policy import DynaFlowPolicy


def untrained_checkpoint(path: Path, data: Path, horizon: int) -> None:
    ds = load_dataset(data)
    model, params = create_action_predictor(horizon=horizon, d_model=128, n_heads=4, depth=2, cond_dim=7)
    X, _ = gather_windows(ds, window_index(ds, np.arange(ds.num_episodes), horizon, horizon), horizon)
    norm = Normalizer.fit(X)
    params = set_normalizer(params, norm, 1.0)
    params = jax.tree.map(lambda a: a + 0.01 if a.ndim == 2 else a, params)  # non-zero actions
    save_checkpoint(path, params, params, model_meta(model, horizon, norm))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--dataset", default=str(bundled_dataset()))
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--long-seconds", type=float, default=10.0)
    ap.add_argument("--long-per-gait", type=int, default=2)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    ckpt = args.checkpoint
    if ckpt is None:
        ckpt = Path(tmp.name) / "untrained"
        untrained_checkpoint(ckpt, Path(args.dataset), 16)
    policy = DynaFlowPolicy.from_checkpoint(ckpt)
    ds = load_dataset(args.dataset)
    H = policy.horizon
    episodes, _ = held_out_episodes(policy, ds)
    index = window_index(ds, episodes, H, stride=H)
    index = index[np.random.default_rng(0).choice(len(index), min(args.samples, len(index)), replace=False)]
    X_ref, cond = gather_windows(ds, index, H)
    sample_batched(policy, X_ref[:, 0], cond, args.batch, 1, 0)  # compile
    policy.sample(X_ref[:1, 0], cond[:1])
    long_horizon_metrics(policy, ds, episodes, 0.4, args.long_per_gait)  # compiles its batch shape

    times: dict[str, float] = {}

    def stage(name, fn):
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        return out

    X, U, _ = stage("sample", lambda: sample_batched(policy, X_ref[:, 0], cond, args.batch, 1, 0))
    stage("TRE", lambda: trajectory_errors(X, X_ref, policy.normalizer.std))
    stage(
        "SAE rollout form (MuJoCo C replay, same)",
        lambda: replay_in_mujoco(policy.rollout, X[:, 0], U, "same"),
    )
    stage("SAE one-step form", lambda: M.one_step_errors(policy.rollout, X, U))
    stage(
        "reference replay (divergence, executability)",
        lambda: replay_in_mujoco(policy.rollout, X[:, 0], U, "reference"),
    )
    stage("plausibility", lambda: M.plausibility(policy.rollout.mj_model, X, policy.rollout.ctrl_dt))
    std = policy.normalizer.std
    stage(
        "MMD + diversity",
        lambda: (M.mmd_rbf(X[:, 1:] / std, X_ref[:, 1:] / std), M.diversity(X[:, 1:] / std)),
    )
    stage(
        f"long horizon ({args.long_seconds:g} s x {args.long_per_gait} per gait, 2 replays, tracking, gait)",
        lambda: long_horizon_metrics(policy, ds, episodes, args.long_seconds, args.long_per_gait),
    )
    machine = f"{platform.machine()}, {jax.devices()[0].device_kind}"
    print(f"evaluation of {len(X)} samples (H={H}) on {machine}; checkpoint {args.checkpoint or 'untrained'}")
    for name, t in times.items():
        print(f"  {name:<75s} {t:7.2f} s")
    total = sum(times.values())
    print(f"  {'total':<75s} {total:7.2f} s")
    print(
        json.dumps({"samples": len(X), "horizon": H, "seconds": times, "total_s": total, "machine": machine})
    )


if __name__ == "__main__":
    main()
