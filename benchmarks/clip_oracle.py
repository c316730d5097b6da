"""What the best open-loop planner could do with each clip: receding-horizon action optimisation through Φ.

    python benchmarks/clip_oracle.py --data clips.npz [--seconds 8] [--iters 60] [--lookahead 1]
        [--max-clips 8] [--save plans.npz] [--json oracle.json]

For every clip, starting from the settled stand as generation does, an action sequence is optimised
window by window: H actions (the demo's horizon) minimise the loss DynaFlow trains with on such data
(:data:`dynaflow.demo.EXTERNAL_RECIPE`: physical std floors, the trunk compared by its window mean, the clip
re-anchored where the robot is and eased into over ``ease_in`` seconds) by Adam through the differentiable
rollout, with ``--lookahead`` windows in view; the first window is executed in Φ and the next one planned
from where it ended. No network: this is the per-clip optimum of DynaFlow's own objective with open-loop
windows, so it separates two questions about a model that falls on a clip:

* **can the clip be tracked in Φ at all** (its plan's states: upright, speed, style, as
  :func:`dynaflow.evaluate.clips.clip_figures` scores a model), so that a model falling in Φ is a learning
  gap, not an infeasible target;
* **does the plan survive open loop elsewhere**: the whole action sequence replayed in MuJoCo C with Φ's
  options (float64 instead of MJX's float32) and in the converged reference simulator, as
  :func:`dynaflow.evaluate.clips.clip_suite` judges a model. A plan that tracks in Φ and falls in the
  replay rides an unstable motion: it needs feedback, or a gait that is stable without it.

Costs about 10 s of CPU per clip-second after compiling (2-core CPU, H = 16, 60 iterations).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynaflow.config import ModelConfig
from dynaflow.data import Normalizer, gather_windows, load_dataset, window_index
from dynaflow.data.sources.gaits import start_state
from dynaflow.data.windows import relative_xy
from dynaflow.demo import EXTERNAL_RECIPE, DemoSettings
from dynaflow.evaluate.clips import align_to, clip_figures, clips_of, read_summary
from dynaflow.flow import ease_in, loss_weights, reanchor, weighted_state_error
from dynaflow.physics import create_go2_rollout, replay_in_mujoco
from dynaflow.runtime import enable_compilation_cache


def plan(rollout, targets, x0, std, horizon, lookahead, iters, lr, ease_steps, max_action, log=print):
    """Receding-horizon plans for clips ``targets`` (B, T, 37) aligned to ``x0``: returns the executed
    actions (B, n·H, 12) and Φ's states (B, n·H + 1, 37), n = (T - 1) // H - lookahead + 1 windows."""
    B, T = targets.shape[:2]
    H, L = horizon, horizon * lookahead
    n = (T - 1) // H - lookahead + 1
    weights = loss_weights(L, None, EXTERNAL_RECIPE["trunk"])
    # the ease's fraction per step (row 0 is the start, kept by ease_in; ease_steps 0: 1 from step 1)
    s_all = jnp.broadcast_to(jnp.clip(jnp.arange(T, dtype=jnp.float32) / max(ease_steps, 1.0), 0, 1), (B, T))
    opt = optax.adam(lr)

    def loss_fn(z, x, target):
        X = rollout.rollout(x, max_action * jnp.tanh(z))
        return weighted_state_error(relative_xy(X), relative_xy(target), std, weights)[0]

    @jax.jit
    def solve(z, x, target):
        def step(carry, _):
            z, st = carry
            loss, g = jax.value_and_grad(loss_fn)(z, x, target)
            upd, st = opt.update(g, st)
            return (optax.apply_updates(z, upd), st), loss

        (z, _), losses = jax.lax.scan(step, (z, opt.init(z)), None, iters)
        return z, losses

    x = jnp.asarray(np.broadcast_to(x0, (B, x0.shape[-1])), jnp.float32)
    targets = jnp.asarray(targets, jnp.float32)
    z = jnp.zeros((B, L, 12), jnp.float32)
    actions, states = [], [np.asarray(x)[:, None]]
    t0 = time.perf_counter()
    for k in range(n):
        seg = slice(k * H, k * H + L + 1)
        z, losses = solve(z, x, ease_in(reanchor(targets[:, seg], x), s_all[:, seg]))
        U = max_action * jnp.tanh(z[:, :H])
        X = rollout.rollout(x, U)
        actions.append(np.asarray(U))
        states.append(np.asarray(X[:, 1:]))
        x = X[:, -1]
        z = jnp.concatenate([z[:, H:], jnp.zeros((B, H, 12), jnp.float32)], axis=1)  # warm start
        if k % 10 == 0 or k == n - 1:
            log(
                f"  window {k + 1}/{n}: loss {float(losses[0]):.2f} -> {float(losses[-1]):.2f}, "
                f"{time.perf_counter() - t0:.0f} s"
            )
    return np.concatenate(actions, axis=1), np.concatenate(states, axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="clips NPZ (dynaflow data import / kinematic)")
    p.add_argument("--seconds", type=float, default=8.0, help="planned seconds (capped by the shortest clip)")
    p.add_argument("--iters", type=int, default=60, help="Adam iterations per window")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--lookahead", type=int, default=1, help="windows optimised together (the first is run)")
    p.add_argument("--max-clips", type=int, default=8)
    p.add_argument("--save", help="write the plans (actions, Φ's states, x0) to this NPZ")
    p.add_argument("--json", help="write every clip's figures here")
    args = p.parse_args()
    enable_compilation_cache()
    settings = DemoSettings()
    H = settings.horizon
    data = load_dataset(args.data)
    clips = clips_of(data, read_summary(args.data), args.max_clips)
    rollout = create_go2_rollout()
    dt = rollout.ctrl_dt
    windows, _ = gather_windows(data, window_index(data, np.arange(data.num_episodes), H, 4), H)
    std = jnp.asarray(Normalizer.fit(windows, EXTERNAL_RECIPE["std_floor"]).std, jnp.float32)
    x0 = start_state(rollout)
    shortest = min(len(c.states) for c in clips)
    T = min(int(round(args.seconds / dt)) + H * (args.lookahead - 1), shortest - 1) + 1
    targets = np.stack([align_to(c.states, x0)[:T] for c in clips])
    print(
        f"{platform.machine()}, {len(clips)} clips of {args.data}, H = {H}, lookahead {args.lookahead}, "
        f"{args.iters} Adam iterations per window"
    )
    max_action = ModelConfig().max_action  # the DiT's action bound
    U, X = plan(
        rollout,
        targets,
        x0,
        std,
        H,
        args.lookahead,
        args.iters,
        args.lr,
        EXTERNAL_RECIPE["ease_in"] / dt,
        max_action,
    )
    replays = {f: replay_in_mujoco(rollout, x0, U, fidelity=f) for f in ("same", "reference")}
    if args.save:
        np.savez(args.save, actions=U, states=X, x0=x0)
    print(f"\nplans of {U.shape[1] * dt:.1f} s; speed and style after the first second")
    print(
        f"{'clip':24s} {'clip vx vy wz':>17s}   {'in Φ: achieved':>18s}  up  style   "
        f"{'fell s: same':>12s} {'reference':>9s} {'style':>5s}"
    )
    rows = []

    def fell(f):
        return "-" if f["fell_at_s"] is None else f"{f['fell_at_s']:.1f}"

    for b, clip in enumerate(clips):
        figs = {"phi": clip_figures(X[b], clip, x0, dt)}
        figs.update({f: clip_figures(R[b], clip, x0, dt) for f, R in replays.items()})
        rows.append({"clip": clip.name, **figs})
        phi, ref = figs["phi"], figs["reference"]
        print(
            f"{clip.name[:24]:24s} {' '.join(f'{v:5.2f}' for v in clip.speed)}   "
            f"{' '.join(f'{v:5.2f}' for v in phi['achieved'])}  {'yes' if phi['upright'] else ' no'} "
            f"{phi['style_ratio']:5.2f}   {fell(figs['same']):>12s} {fell(ref):>9s} {ref['style_ratio']:5.2f}"
        )
    for where in ("phi", "same", "reference"):
        up = np.mean([r[where]["upright"] for r in rows])
        style = np.median([r[where]["style_ratio"] for r in rows])
        print(f"{where:9s}: upright {up:.0%}, style ratio median {style:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "clips": rows}, indent=1))


if __name__ == "__main__":
    main()
