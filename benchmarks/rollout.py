"""Benchmark of Phi(x0, U): MuJoCo C vs MJX throughput, gradient cost, compile time, memory.

    python benchmarks/rollout.py                 # the CPU figures recorded in BENCHMARKS.md
    python benchmarks/rollout.py --batches 1 64 256 1024 4096   # on a GPU

Every figure is measured in this one run (the machines are shared and noisy: ratios taken side by
side are what the targets are about). Times are the minimum over --repeats calls (median shown too).
The persistent compilation cache is off here so that compile times are real.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from dynaflow.physics import create_go2_rollout, random_smooth_actions, replay_in_mujoco


def timed(fn, *args, repeats: int) -> tuple[float, float]:
    jax.block_until_ready(fn(*args))
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        ts.append(time.perf_counter() - t0)
    return float(np.min(ts)), float(np.median(ts))


def mujoco_c_steps_per_s(
    model: mujoco.MjModel, x0: np.ndarray, U: np.ndarray, rollout, repeats: int
) -> float:
    """Single-thread MuJoCo C steps/s under the same 50 Hz control law (one mj_step call per 20 ms)."""
    data = mujoco.MjData(model)
    targets = rollout.targets(U)
    best = np.inf
    for _ in range(repeats):
        mujoco.mj_resetData(model, data)
        data.qpos[:] = x0[:19]
        t0 = time.perf_counter()
        for u in targets:
            data.ctrl[:] = u
            mujoco.mj_step(model, data, nstep=rollout.n_substeps)
        best = min(best, time.perf_counter() - t0)
    return len(U) * rollout.n_substeps / best


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--grad-batches", type=int, nargs="+", default=[64])
    ap.add_argument("--memory-horizons", type=int, nargs="*", default=[16, 64, 128])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--skip-unrolled", action="store_true", help="skip the plain mjx.step gradient")
    ap.add_argument(
        "--specialised", action="store_true", help="Φ on dynaflow.physics.legged's stages (specialised=True)"
    )
    ap.add_argument("--json", help="also write the figures to this JSON file")
    return ap.parse_args()


def describe_machine() -> dict:
    """Print the machine line; the figures' dict, started with the device."""
    dev = jax.devices()[0]
    print(
        f"# machine: {platform.processor() or platform.machine()}, {jax.device_count()} x {dev.device_kind} "
        f"({dev.platform}), jax {jax.__version__}, mujoco {mujoco.__version__}"
    )
    return {"device": dev.device_kind, "platform": dev.platform}


def bench_mujoco_c(r, x_home: np.ndarray, rng: np.random.Generator) -> float:
    """MuJoCo C, one thread: steps/s of the simulated model (printed with the full model's too)."""
    Uc = random_smooth_actions(rng, 1, 500, 1.0)[0]
    c_sim = mujoco_c_steps_per_s(r.sim_model, x_home, Uc, r, 5)
    c_full = mujoco_c_steps_per_s(r.mj_model, x_home, Uc, r, 5)
    print(
        f"MuJoCo C, 1 thread: {c_sim:,.0f} steps/s (simulated model); "
        f"{c_full:,.0f} steps/s (with visual geoms)"
    )
    return c_sim


def bench_forward(r, x_home: np.ndarray, rng: np.random.Generator, args, c_sim: float) -> dict:
    """MJX forward at each of --batches: time, steps/s (against MuJoCo C) and compile time."""
    H = args.horizon
    fwd = jax.jit(lambda x0, U: r(x0, U))
    figures = {}
    for B in args.batches:
        x0 = jnp.asarray(np.tile(x_home, (B, 1)), jnp.float32)
        U = jnp.asarray(random_smooth_actions(rng, B, H, 1.0), jnp.float32)
        compiled, c_s = compile_time(fwd, x0, U)
        tmin, tmed = timed(compiled, x0, U, repeats=args.repeats)
        sps = B * H * r.n_substeps / tmin
        figures[B] = {"s": tmin, "median_s": tmed, "steps_per_s": sps, "compile_s": c_s}
        print(
            f"MJX forward B={B:5d} H={H}: {tmin * 1e3:8.2f} ms (median {tmed * 1e3:.2f}), "
            f"{sps:,.0f} steps/s = {sps / c_sim:.2f} x MuJoCo C; compile {c_s:.1f} s"
        )
    return figures


def make_grad(ro, target):
    """The jitted value_and_grad of a squared error of ``ro(x0, U)`` to ``target``, in (U, x0)."""

    def loss(U, x0):
        return jnp.mean((ro(x0, U) - target) ** 2)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def compile_time(fn, *args) -> tuple[object, float]:
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def time_alternating(fwd_c, grad_c, x0, U, repeats: int) -> tuple[float, float, float, float]:
    """Minimum and median seconds of the forward and of the gradient, called in alternation (so a noisy
    neighbour slows both alike): ``(f_min, f_med, g_min, g_med)``."""
    jax.block_until_ready(fwd_c(x0, U))
    jax.block_until_ready(grad_c(U, x0))
    tf, tg = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fwd_c(x0, U))
        tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jax.block_until_ready(grad_c(U, x0))
        tg.append(time.perf_counter() - t0)
    return min(tf), float(np.median(tf)), min(tg), float(np.median(tg))


def bench_unrolled(target, U, x0, f_min: float, repeats: int) -> dict:
    """The plain mjx.step autodiff (gradient='unrolled'): its time against the forward, and compile time."""
    ru = create_go2_rollout(gradient="unrolled")
    grad_u, u_compile = compile_time(make_grad(ru, target), U, x0)
    u_min, _ = timed(grad_u, U, x0, repeats=repeats)
    print(
        f"  plain mjx.step autodiff (gradient='unrolled'): {u_min * 1e3:.1f} ms "
        f"= ratio {u_min / f_min:.2f}; compile {u_compile:.1f} s"
    )
    return {"unrolled_grad_s": u_min, "unrolled_compile_s": u_compile}


def bench_gradient(r, x_home: np.ndarray, rng: np.random.Generator, B: int, args) -> dict:
    """Forward + gradient at batch ``B``: the gradient's cost as a ratio to the forward, compile times."""
    H = args.horizon
    x0 = jnp.asarray(np.tile(x_home, (B, 1)), jnp.float32)
    U = jnp.asarray(random_smooth_actions(rng, B, H, 1.0), jnp.float32)
    target = jnp.asarray(np.tile(x_home, (B, H + 1, 1)), jnp.float32)
    fwd_b = jax.jit(lambda x0, U: r(x0, U))
    fwd_c, fwd_compile = compile_time(fwd_b, x0, U)
    grad_c, grad_compile = compile_time(make_grad(r, target), U, x0)
    f_min, f_med, g_min, g_med = time_alternating(fwd_c, grad_c, x0, U, args.repeats)
    row = {
        "forward_s": f_min,
        "grad_s": g_min,
        "ratio": g_min / f_min,
        "ratio_median": g_med / f_med,
        "compile_forward_s": fwd_compile,
        "compile_grad_s": grad_compile,
    }
    print(
        f"value_and_grad B={B} H={H}: {g_min * 1e3:.1f} ms vs forward {f_min * 1e3:.1f} ms: "
        f"ratio {g_min / f_min:.2f} (medians: {g_med / f_med:.2f})"
    )
    print(f"compile: forward {fwd_compile:.1f} s, value_and_grad {grad_compile:.1f} s")
    if not args.skip_unrolled:
        row.update(bench_unrolled(target, U, x0, f_min, args.repeats))
    return row


def bench_memory(x_home: np.ndarray, args) -> dict:
    """Peak XLA buffers of the gradient at the first of --grad-batches, per --memory-horizons, with and
    without remat."""
    B = args.grad_batches[0]
    x0 = jnp.asarray(np.tile(x_home, (B, 1)), jnp.float32)
    figures = {}
    for remat in (False, True):
        ro = create_go2_rollout(remat=remat)
        for Hm in args.memory_horizons:
            Um = jnp.zeros((B, Hm, 12), jnp.float32)
            tgt = jnp.zeros((B, Hm + 1, 37), jnp.float32)

            def loss(U, x0, ro=ro, tgt=tgt):
                return jnp.mean((ro(x0, U) - tgt) ** 2)

            mem = jax.jit(jax.grad(loss)).lower(Um, x0).compile().memory_analysis()
            peak = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
            figures[f"H{Hm}_remat{int(remat)}"] = peak
            print(
                f"gradient memory B={B} H={Hm:4d} remat={remat!s:5}: {peak / 2**20:8.1f} MiB "
                f"(XLA buffers: temp {mem.temp_size_in_bytes / 2**20:.1f} MiB)"
            )
    return figures


def bench_agreement(r, x_home: np.ndarray, H: int) -> dict:
    """MJX against MuJoCo C (same and reference fidelity) on 32 random action sequences per amplitude."""
    figures = {}
    for amp in (0.3, 0.6, 1.0):
        Ua = random_smooth_actions(np.random.default_rng(1), 32, H, amp)
        X = np.asarray(r(np.tile(x_home, (32, 1)), Ua))
        row = {}
        for fid in ("same", "reference"):
            err = np.abs(X - replay_in_mujoco(r, x_home, Ua, fidelity=fid))
            row[fid] = {
                "pos_max": float(err[..., :19].max()),
                "pos_median": float(np.median(err[..., :19].max((1, 2)))),
                "vel_max": float(err[..., 19:].max()),
            }
        figures[amp] = row
        print(
            f"MJX vs MuJoCo C, 32 x H={H}, |u| <= {amp}: same max {row['same']['pos_max']:.1e} "
            f"(median {row['same']['pos_median']:.1e}), reference max {row['reference']['pos_max']:.1e} "
            f"(median {row['reference']['pos_median']:.1e}); velocity (same) {row['same']['vel_max']:.1e}"
        )
    return figures


def main() -> None:
    args = parse_args()
    jax.config.update("jax_enable_compilation_cache", False)
    out = describe_machine()
    r = create_go2_rollout(specialised=args.specialised)
    x_home = r.home_state()
    rng = np.random.default_rng(0)  # drawn from by MuJoCo C, then forward, then gradient, in that order
    c_sim = bench_mujoco_c(r, x_home, rng)
    out["mujoco_c_steps_per_s"] = c_sim
    out["forward"] = bench_forward(r, x_home, rng, args, c_sim)
    out["gradient"] = {B: bench_gradient(r, x_home, rng, B, args) for B in args.grad_batches}
    out["memory"] = bench_memory(x_home, args)
    out["agreement"] = bench_agreement(r, x_home, args.horizon)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()
