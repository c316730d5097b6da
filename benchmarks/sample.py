"""Benchmark of sampling: one-step latency (real-time replanning) and batched throughput.

    python benchmarks/sample.py                      # B = 1 and 64, H = 16, ode_steps 1 and 4
    python benchmarks/sample.py --batches 1 64 1024   # on a GPU

Times ``sample_trajectory`` as a user calls it (NumPy x0 in, arrays out, so host transfers count),
warm (after its compile), median of --repeats calls; next to it the two parts alone at the same batch:
the DiT forward and the MJX rollout forward. The model is untrained: its cost does not depend on its
weights. ``actions only`` is the call a closed-loop controller makes (``actions_only=True``: the states,
and with one ODE step the whole rollout, are not computed).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from dynaflow.methods import create_action_predictor
from dynaflow.physics import create_go2_rollout
from dynaflow.sampling import sample_trajectory


def median_ms(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--ode-steps", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--cond-dim", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    H = args.horizon

    rollout = create_go2_rollout()
    model, params = create_action_predictor(horizon=H, cond_dim=args.cond_dim)
    params = jax.tree.map(lambda a: a + 0.01, params)  # non-zero outputs, like a trained model
    dit = jax.jit(lambda p, x, t, c: model.apply(p, x, t, c))
    machine = f"{platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}"
    print(f"sampling H={H}, default DiT (d 384, 6 heads, depth 3), on {machine}")
    results = []
    for B in args.batches:
        x0 = np.tile(rollout.home_state().astype(np.float32), (B, 1))
        cond = np.zeros((B, args.cond_dim), np.float32)
        X = jnp.tile(jnp.asarray(x0)[:, None], (1, H + 1, 1))
        t_dit = median_ms(lambda X=X, cond=cond, B=B: dit(params, X, jnp.zeros((B,)), cond), args.repeats)
        U = jnp.zeros((B, H, 12))
        t_roll = median_ms(lambda x0=x0, U=U: rollout(x0, U), args.repeats)
        for K in args.ode_steps:
            t0 = time.perf_counter()
            jax.block_until_ready(
                sample_trajectory(model.apply, params, rollout, x0, horizon=H, ode_steps=K, cond=cond)
            )
            first = time.perf_counter() - t0
            key = jax.random.PRNGKey(1)
            t_s = median_ms(
                lambda x0=x0, cond=cond, K=K, key=key: sample_trajectory(
                    model.apply, params, rollout, x0, horizon=H, ode_steps=K, cond=cond, rng=key
                ),
                args.repeats,
            )
            t_a = median_ms(
                lambda x0=x0, cond=cond, K=K, key=key: sample_trajectory(
                    model.apply,
                    params,
                    rollout,
                    x0,
                    horizon=H,
                    ode_steps=K,
                    cond=cond,
                    rng=key,
                    actions_only=True,
                )[1],
                args.repeats,
            )
            r = {
                "batch": B,
                "actions_only_ms": t_a,
                "ode_steps": K,
                "latency_ms": t_s,
                "samples_per_s": B / t_s * 1e3,
                "dit_forward_ms": t_dit,
                "rollout_forward_ms": t_roll,
                "first_call_s": first,
            }
            results.append(r)
            print(
                f"  B={B:5d} ode_steps={K}: {t_s:8.2f} ms/call, actions only {t_a:8.2f} ms  "
                f"({r['samples_per_s']:10,.0f} samples/s; "
                f"DiT fwd {t_dit:.2f} ms, rollout fwd {t_roll:.2f} ms; first call {first:.1f} s)"
            )
    print(json.dumps({"machine": machine, "jax": jax.__version__, "horizon": H, "results": results}))


if __name__ == "__main__":
    main()
