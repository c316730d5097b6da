"""The ``dynaflow`` command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache (compiles are a user-visible cost on a CPU)."""
    import jax

    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dynaflow" / "jax"
    path = Path(os.environ.get("DYNAFLOW_JAX_CACHE", default))
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path


def cmd_physics(args: argparse.Namespace) -> int:
    """Check Phi on this machine: standing, MJX vs MuJoCo C, one gradient; print the figures."""
    import jax
    import jax.numpy as jnp

    from dynaflow.physics import create_go2_rollout, random_smooth_actions, replay_in_mujoco, upright

    if args.batch < 1 or args.horizon < 1:
        raise SystemExit(
            f"dynaflow physics: --batch and --horizon must be >= 1, got {args.batch}, {args.horizon}"
        )
    rollout = create_go2_rollout(n_substeps=args.substeps)
    x0 = rollout.home_state()
    print(
        f"Go2 model: {rollout.mj_model.nbody - 1} bodies, {rollout.mj_model.nu} PD actuators, "
        f"ctrl_dt {rollout.ctrl_dt} s, {rollout.n_substeps} substeps of {rollout.sim_dt * 1e3:.1f} ms, "
        f"action_scale {rollout.action_scale} rad; JAX on {jax.devices()[0].platform}"
    )

    t0 = time.perf_counter()
    stand = np.asarray(rollout(x0, np.zeros((250, 12))))
    print(
        f"standing 5 s (MJX, compile included {time.perf_counter() - t0:.1f} s): base z "
        f"{stand[:, 2].min():.3f}..{stand[:, 2].max():.3f} m, min uprightness {upright(stand).min():.4f}"
    )

    U = random_smooth_actions(
        np.random.default_rng(args.seed), args.batch, args.horizon, 1.0, rollout.ctrl_dt
    )
    xb = np.tile(x0, (args.batch, 1))
    t0 = time.perf_counter()
    X = np.asarray(rollout(xb, U))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = np.asarray(rollout(xb, U))
    run_s = time.perf_counter() - t0
    Xc = replay_in_mujoco(rollout, x0, U, fidelity=args.fidelity)
    err = np.abs(X - Xc)
    steps = args.batch * args.horizon * rollout.n_substeps
    print(
        f"MJX rollout B={args.batch} H={args.horizon}: {run_s * 1e3:.1f} ms "
        f"({steps / run_s:,.0f} physics steps/s; first call {compile_s:.1f} s)"
    )
    print(
        f"MJX vs MuJoCo C ({args.fidelity}): max |error| base pos {err[..., :3].max():.2e} m, "
        f"quat {err[..., 3:7].max():.2e}, joints {err[..., 7:19].max():.2e} rad, "
        f"velocities {err[..., 19:].max():.2e}"
    )

    def loss(u):
        return jnp.sum(rollout(jnp.asarray(xb, jnp.float32), u)[:, -1, :3])

    grad = jax.jit(jax.grad(loss))
    t0 = time.perf_counter()
    g = np.asarray(grad(jnp.asarray(U, jnp.float32)))
    print(
        f"gradient d(final base position)/dU: finite {bool(np.isfinite(g).all())}, "
        f"max |g| {np.abs(g).max():.3g} (first call {time.perf_counter() - t0:.1f} s)"
    )
    ok = (
        np.abs(stand[:, 2] - 0.27).max() <= 0.03
        and upright(stand).min() > 0.95
        and (args.fidelity != "same" or err[..., :19].max() <= 1e-3)
        and np.isfinite(g).all()
    )
    print("physics check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    from dynaflow import __version__

    parser = argparse.ArgumentParser(prog="dynaflow", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dynaflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("physics", help="check the differentiable Go2 simulator on this machine")
    p.add_argument("--batch", type=int, default=32, help="random action sequences to compare (default 32)")
    p.add_argument("--horizon", type=int, default=16, help="control steps per sequence (default 16)")
    p.add_argument("--substeps", type=int, default=4, help="physics steps per 20 ms control step")
    p.add_argument(
        "--fidelity",
        choices=("same", "reference"),
        default="same",
        help="MuJoCo C replay: the model's own options, or the converged reference solver",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_physics)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynaflow`` console script."""
    args = build_parser().parse_args(argv)
    enable_compilation_cache()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
