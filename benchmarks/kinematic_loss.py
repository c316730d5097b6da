"""Why DynaFlow learned to stand on kinematic data: what the loss charges a physical gait and standing.

    python benchmarks/kinematic_loss.py [--windows 256] [--horizon 16]

The kinematic set (``dynaflow data kinematic --source bundled``) is made from the gait library's simulated
episodes: same joints, the trunk gliding. So for each kinematic window the *physically right answer* is
known: the simulated episode's own window, which the recorded actions reproduce exactly in Φ. This script
scores, against kinematic windows, with the normaliser fit on the kinematic windows:

* ``simulated gait``: the simulated window (what the legs really do to the trunk);
* ``recorded actions``: Φ's rollout of the recorded actions from the kinematic start state;
* ``default pose``: Φ's rollout of zero actions (standing) from the same start;

under the uniform std floor and the physical one, comparing the trunk's velocities at every step or by
their window mean (``--trunk-loss``). A loss under which standing costs less than walking makes standing
what training converges to, whatever the optimiser does.
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp
import numpy as np

from dynaflow.data import Normalizer, bundled_dataset, load_dataset, window_index
from dynaflow.data.sources.kinematic import kinematic_from_gaits
from dynaflow.data.windows import relative_xy
from dynaflow.flow import TRUNK_LOSSES, loss_weights, weighted_state_error
from dynaflow.physics import create_go2_rollout
from dynaflow.robots.go2 import STATE_GROUPS
from dynaflow.runtime import enable_compilation_cache


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", type=int, default=256)
    p.add_argument("--horizon", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    enable_compilation_cache()
    H = args.horizon
    sim = load_dataset(bundled_dataset())
    kin_states = kinematic_from_gaits(sim.states, sim.conditionings)
    idx = window_index(sim, np.arange(sim.num_episodes), H, 4)
    pick = idx[np.random.default_rng(args.seed).choice(len(idx), args.windows, replace=False)]
    steps = pick[:, 1][:, None] + np.arange(H + 1)[None]
    Xs = sim.states[pick[:, 0][:, None], steps]
    Xk = kin_states[pick[:, 0][:, None], steps]
    A = sim.actions[pick[:, 0][:, None], steps[:, :-1]]
    all_kin = kin_states[idx[:, 0][:, None], idx[:, 1][:, None] + np.arange(H + 1)[None]]
    rollout = create_go2_rollout()
    phi = jax.jit(rollout.rollout)
    candidates = {
        "simulated gait": Xs,
        "recorded actions": np.asarray(phi(jnp.asarray(Xk[:, 0]), jnp.asarray(A))),
        "default pose": np.asarray(phi(jnp.asarray(Xk[:, 0]), jnp.zeros_like(jnp.asarray(A)))),
    }
    print(f"{platform.machine()}, {args.windows} kinematic windows of H = {H} (bundled gait library)")
    print(
        f"{'std floor':10s} {'trunk':7s} " + " ".join(f"{n:>17s}" for n in candidates) + "   standing / gait"
    )
    for floor in ("uniform", "physical"):
        norm = Normalizer.fit(all_kin, floor)
        for trunk in TRUNK_LOSSES:
            w = loss_weights(H, None, trunk)
            losses = {}
            for name, X in candidates.items():
                loss, _ = weighted_state_error(
                    jnp.asarray(relative_xy(X)), jnp.asarray(relative_xy(Xk)), jnp.asarray(norm.std), w
                )
                losses[name] = float(loss)
            ratio = losses["default pose"] / losses["simulated gait"]
            print(
                f"{floor:10s} {trunk:7s} "
                + " ".join(f"{v:17.3f}" for v in losses.values())
                + f"   {ratio:6.2f}{'  <- standing wins' if ratio < 1 else ''}"
            )
    norm = Normalizer.fit(all_kin, "uniform")
    print("\nnormaliser std of the trunk's rates on kinematic data (uniform floor):")
    for g in ("base_linvel", "base_angvel"):
        print(f"  {g}: {np.round(norm.std[STATE_GROUPS[g]], 3).tolist()}")


if __name__ == "__main__":
    main()
