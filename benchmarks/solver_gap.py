"""Which of Φ's solver settings do open-loop plans depend on? (issue 27: bound and pace fall or slow open loop
in the reference simulator.)

    python benchmarks/solver_gap.py [--checkpoint RUN] [--seeds 8] [--seconds 10] [--noise SIGMA]
        [--gaits trot pace bound pronk] [--data NPZ] [--solver one-step|converged] [--json out.json]

Open-loop action sequences are replayed in MuJoCo C (float64) under Φ's own options ("same") and then with
one setting at a time changed to the converged reference simulator's
(:func:`dynaflow.physics.replay.use_reference_solver`), and with all of them ("reference"):

* ``elliptic``: the elliptic friction cone instead of Φ's pyramidal one;
* ``dt``: the reference's physics step (2 ms, 10 substeps) instead of Φ's 5 ms (4 substeps);
* ``iterations``: a converged Newton solve (100 iterations, tight tolerances) instead of Φ's single one;
* ``warm start``: the solver warm-started from the last step's solution (Φ starts it cold).

The sequences are the bundled gait data's recorded actions (each 4 s episode; the gait library's
controller made them in MuJoCo C with Φ's options), and with ``--checkpoint`` a model's own plans: 10 s
chained open loop from a settled stand at each gait's evaluation commands. For each gait and setting it
prints the share of runs that stay upright and the median distance covered as a fraction of the plan's own
(Φ's states). A setting that alone turns a plan over is what the plan relies on.

The other direction (``--library N``, default 12): the gait library's controller makes N episodes of 4 s
per gait under Φ's options with settings changed (:data:`MAKERS`), and their recorded actions are replayed
open loop in the reference simulator: which contact solve makes demonstrations that transfer.
``--noise`` adds Gaussian noise of that size (in action units) to every action first: a plan that is merely
sensitive to small errors fails under Φ's own options too. ``--data`` scores another gait-library NPZ and
``--solver`` says which Φ made it (``dynaflow data gaits --solver``): "same" is then that Φ's options. A
model's plans are scored under the Φ its run trained in (``dynaflow train --solver``).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time

import mujoco
import numpy as np

from dynaflow import create_go2_rollout
from dynaflow.data import bundled_dataset, load_dataset
from dynaflow.data.conditioning import GAITS
from dynaflow.physics.replay import replay_in_model, stays_up, use_reference_solver

SETTINGS = ("same", "elliptic", "dt", "iterations", "warm start", "reference")
#: Φ's options with these settings changed to the reference's (Φ's 5 ms step kept), for --library.
MAKERS = ("same", "warm start", "elliptic", "iterations", "iterations+elliptic")


def solver(rollout, setting: str) -> tuple[mujoco.MjModel, int]:
    """Φ's model with ``setting`` (one of :data:`SETTINGS`, or several joined by ``+``) changed to the
    reference simulator's; its physics steps per control step."""
    ref = copy.deepcopy(rollout.mj_model)
    n_ref = use_reference_solver(ref, rollout)
    if setting == "reference":
        return ref, n_ref
    m, n = copy.deepcopy(rollout.mj_model), rollout.n_substeps
    for part in setting.split("+"):
        if part == "elliptic":
            m.opt.cone = ref.opt.cone
        elif part == "dt":
            m.opt.timestep, n = ref.opt.timestep, n_ref
        elif part == "iterations":
            for name in ("iterations", "ls_iterations", "tolerance", "ls_tolerance"):
                setattr(m.opt, name, getattr(ref.opt, name))
        elif part == "warm start":
            m.opt.disableflags = ref.opt.disableflags
        elif part != "same":
            raise ValueError(f"setting: expected one of {', '.join(SETTINGS)}, got {setting!r}")
    return m, n


def replayed(rollout, model: mujoco.MjModel, n_sub: int, runs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """``runs`` (X, U) replayed open loop in ``model`` from each X[0]: the share upright and the median
    distance covered as a fraction of the plan's own (runs that move under 0.2 m are left out of it)."""
    up, ratio = [], []
    for X, U in runs:
        R = replay_in_model(rollout, model, n_sub, X[0], U)
        up.append(bool(stays_up(R)))
        planned = X[-1, 0] - X[0, 0]
        ratio.append((R[-1, 0] - R[0, 0]) / planned if abs(planned) > 0.2 else np.nan)
    med = float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None
    return {"runs": len(runs), "upright": float(np.mean(up)) if up else None, "distance_ratio_median": med}


def score(rollout, runs: list[tuple[np.ndarray, np.ndarray]], noise: float = 0.0) -> dict[str, dict]:
    """For each setting, :func:`replayed` of ``runs`` (X, U), each action with Gaussian ``noise`` added
    (the same draw for every setting)."""
    rng = np.random.default_rng(0)
    runs = [(X, U + noise * rng.standard_normal(U.shape)) for X, U in runs]
    return {setting: replayed(rollout, *solver(rollout, setting), runs) for setting in SETTINGS}


def data_runs(gait: str, path=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The episodes of ``gait`` in a gait-library dataset (the bundled one by default): (states, recorded
    actions)."""
    ds = load_dataset(path or bundled_dataset())
    idx = np.where(ds.conditionings[:, 0, 3 + GAITS.index(gait)] > 0.5)[0]
    return [(ds.states[i].astype(np.float64), ds.actions[i].astype(np.float64)) for i in idx]


def library_transfer(rollout, maker: str, gait: str, episodes: int) -> dict:
    """The gait library's episodes of ``gait`` made under Φ with ``maker`` changed, replayed open loop in
    the reference simulator: upright share and median distance ratio."""
    from dynaflow.data.sources.gaits import episode_ok, sample_command, simulate_episode, start_state

    made = copy.copy(rollout)
    object.__setattr__(made, "mj_model", solver(rollout, maker)[0])  # n_substeps kept: Φ's 5 ms step
    x0, rng = start_state(made), np.random.default_rng(1)
    runs = []
    for _ in range(episodes):
        X, U, _ = simulate_episode(made, gait, sample_command(rng, gait), 200, x0)
        if episode_ok(X):
            runs.append((X, U))
    return replayed(rollout, *solver(rollout, "reference"), runs)


def model_runs(policy, gait: str, seeds: int, seconds: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """A model's 10 s chained open-loop plans of ``gait`` at its evaluation commands, one per seed."""
    from dynaflow.data.sources.gaits import EVAL_COMMANDS, start_state
    from dynaflow.generate import Segment, rollout_long

    x0 = start_state(policy.rollout)
    runs = []
    for command in EVAL_COMMANDS[gait]:
        cond = Segment(gait, command, seconds).cond()
        for seed in range(seeds):
            res = rollout_long(policy, x0, cond, seconds=seconds, seed=seed, replay=False)
            runs.append((np.asarray(res.states, np.float64), np.asarray(res.actions, np.float64)))
    return runs


def print_table(label: str, table: dict[str, dict[str, dict]], columns=SETTINGS) -> None:
    print(f"\n{label}: upright share / median distance as a fraction of the plan's")
    print(f"{'gait':8s}" + "".join(f"{s:>22s}" for s in columns))
    for gait, row in table.items():
        cells = []
        for s in columns:
            c = row[s]
            d = "n/a" if c["distance_ratio_median"] is None else f"{c['distance_ratio_median']:.2f}"
            u = "n/a" if c["upright"] is None else f"{c['upright']:.2f}"
            cells.append(f"{u} / {d}")
        print(f"{gait:8s}" + "".join(f"{c:>22s}" for c in cells), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="also a model's own open-loop plans (a run directory or checkpoint)")
    p.add_argument("--seeds", type=int, default=8, help="plans per command with --checkpoint")
    p.add_argument("--seconds", type=float, default=10.0, help="length of a model's plans")
    p.add_argument("--gaits", nargs="+", default=list(GAITS), choices=list(GAITS))
    p.add_argument(
        "--library", type=int, default=12, help="gait-library episodes per gait and maker (0: skip)"
    )
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise added to every action first")
    p.add_argument("--data", help="a gait-library NPZ to score instead of the bundled data")
    p.add_argument(
        "--solver",
        default="one-step",
        choices=("one-step", "converged"),
        help="Φ's contact solve that 'same' means for the data and the library (a model's plans are scored "
        "under its own run's)",
    )
    p.add_argument("--json", help="write the tables here")
    args = p.parse_args()
    rollout = create_go2_rollout(solver=args.solver)
    t0 = time.perf_counter()
    result = {"machine": platform.platform(), "settings": list(SETTINGS), "noise": args.noise}
    result["solver"] = args.solver
    result["data"] = {g: score(rollout, data_runs(g, args.data), args.noise) for g in args.gaits}
    noisy = f", action noise {args.noise:g}" if args.noise else ""
    print_table(f"{args.data or 'bundled data'}, recorded actions ({args.solver}{noisy})", result["data"])
    if args.library:
        made = {g: {m: library_transfer(rollout, m, g, args.library) for m in MAKERS} for g in args.gaits}
        result["library"] = made
        print_table(
            "gait-library episodes made under Φ with (column) changed, replayed in the reference",
            made,
            MAKERS,
        )
    if args.checkpoint:
        from dynaflow.policy import DynaFlowPolicy

        policy = DynaFlowPolicy.from_checkpoint(args.checkpoint)  # in the Φ its run trained in
        plans = {g: model_runs(policy, g, args.seeds, args.seconds) for g in args.gaits}
        result["model"] = {g: score(policy.rollout, runs, args.noise) for g, runs in plans.items()}
        result["model_solver"] = policy.rollout.solver
        label = (
            f"{args.checkpoint} (Φ {policy.rollout.solver}): {args.seconds:g} s open-loop plans, "
            f"{args.seeds} seeds/command{noisy}"
        )
        print_table(label, result["model"])
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
