"""Benchmark of one DynaFlow training step and what it is made of.

    python benchmarks/train_step.py                # B = 64, H = 16, default model (d 384, 6 heads, depth 3)
    python benchmarks/train_step.py --batch 256    # on a GPU

Three jitted functions on the same batch, called in alternation (the machines are shared and noisy):

* **train step**: the whole update (noise, DiT forward, MJX rollout, loss, backward through both, AdamW,
  EMA, non-finite guard), as ``dynaflow train`` runs it;
* **rollout gradient alone**: value_and_grad of a loss of Φ(x0, U) with respect to U (same B, H);
* **DiT alone**: forward + backward of the action predictor with a loss on its output, plus the AdamW
  update and EMA: the learning overhead around the physics.

Prints the medians, the DiT share of the step and the compile times (persistent cache off).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dynaflow.config import TrainConfig
from dynaflow.methods import create_action_predictor
from dynaflow.physics import create_go2_rollout, random_smooth_actions
from dynaflow.train import TrainState, hyperparameters, init_opt_state, make_optimizer, make_train_step


def compile_time(fn, *args) -> tuple[object, float]:
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def initial_state(params) -> TrainState:
    """A fresh run's state for ``params`` (seed 0)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema=jax.tree.map(jnp.copy, params),
        opt_state=init_opt_state(params),
        key=jax.random.PRNGKey(0),
        nonfinite=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )


def demo_step(
    batch: int,
    horizon: int,
    d_model: int,
    n_heads: int,
    depth: int,
    dropout: float = 0.0,
    solver: str | None = None,
):
    """The jitted train step ``dynaflow train`` runs (sharded over this process's devices like it), its
    state and the arguments of one update on random smooth demonstrations: ``(step, state, args)``, called
    as ``state, metrics = step(state, *args)``. Defaults to the demo's dropout (0); ``solver``: Φ's contact
    solve (None: the checkout's default)."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from dynaflow import distributed

    rollout = create_go2_rollout() if solver is None else create_go2_rollout(solver=solver)
    rng = np.random.default_rng(0)
    U_demo = random_smooth_actions(rng, batch, horizon, 0.8)
    X1 = np.asarray(rollout(np.tile(rollout.home_state(), (batch, 1)), U_demo), np.float32)
    cond = rng.normal(size=(batch, 7)).astype(np.float32)
    config = TrainConfig.from_flat(
        data="-", batch=batch, horizon=horizon, d_model=d_model, n_heads=n_heads, depth=depth, lr=1e-3
    )
    model, variables = create_action_predictor(
        horizon=horizon, d_model=d_model, n_heads=n_heads, depth=depth, cond_dim=7, dropout=dropout
    )
    params = variables["params"]
    try:
        mesh = distributed.data_mesh(batch)
    except TypeError:  # a checkout from before data_mesh took the batch (benchmarks/update_speed.py)
        mesh = distributed.data_mesh()
    rows, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
    state = initial_state(params)
    args = (
        jax.device_put(X1, rows),
        jax.device_put(cond, rows),
        jax.device_put(variables["normalizer"], replicated),
        jax.device_put(jax.tree.map(jnp.asarray, hyperparameters(config, 10_000)), replicated),
    )
    step = jax.jit(make_train_step(model, rollout), donate_argnums=0)
    return step, jax.device_put(state, replicated), args


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=384)
    ap.add_argument("--n-heads", type=int, default=6)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--cond-dim", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=10)
    return ap.parse_args()


def demonstrations(rollout, B: int, H: int, cond_dim: int):
    """Random smooth demonstrations from the standing state: ``(U_demo, X1, cond)`` (seed 0)."""
    rng = np.random.default_rng(0)
    U_demo = random_smooth_actions(rng, B, H, 0.8)
    X1 = np.asarray(rollout(np.tile(rollout.home_state(), (B, 1)), U_demo), np.float32)
    cond = jnp.asarray(rng.normal(size=(B, cond_dim)), jnp.float32)
    return U_demo, jnp.asarray(X1), cond


def make_dit_step(model, tx, B: int):
    """Forward + backward of the action predictor with a loss on its output, then AdamW and EMA."""

    def dit_step(state, X, cond, norm):
        def loss(p):
            u = model.apply(
                {"params": p, "normalizer": norm},
                X,
                jnp.full((B,), 0.5),
                cond,
                train=True,
                rngs={"dropout": jax.random.PRNGKey(1)},
            )
            return jnp.mean(jnp.square(u - 0.1))

        value, grads = jax.value_and_grad(loss)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = jax.tree.map(lambda e, p: 0.995 * e + 0.005 * p, state.ema, params)
        return state.replace(params=params, opt_state=opt_state, ema=ema), value

    return dit_step


def time_in_alternation(step_fn, grad_fn, dit_fn, state, X1, cond, norm, hyper, U0, repeats: int) -> dict:
    """Median seconds of the train step, the rollout gradient and the DiT step, called in turn (after two
    warm-up rounds)."""
    times = {"train_step": [], "rollout_grad": [], "dit": []}
    s = state
    for _ in range(2):  # warm up
        s, _ = step_fn(s, X1, cond, norm, hyper)
        jax.block_until_ready(grad_fn(U0, X1[:, 0]))
        jax.block_until_ready(dit_fn(state, X1, cond, norm))
    for _ in range(repeats):
        t0 = time.perf_counter()
        s, m = step_fn(s, X1, cond, norm, hyper)
        jax.block_until_ready(m["loss"])
        times["train_step"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jax.block_until_ready(grad_fn(U0, X1[:, 0]))
        times["rollout_grad"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        jax.block_until_ready(dit_fn(state, X1, cond, norm))
        times["dit"].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def report(B: int, H: int, n_params: int, med: dict, c_step: float, c_grad: float, c_dit: float) -> None:
    """Print the medians, the DiT share of the step and the compile times, then all of them as JSON."""
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
        "batch": B,
        "horizon": H,
        "model_params": int(n_params),
        "train_step_ms": med["train_step"] * 1e3,
        "rollout_grad_ms": med["rollout_grad"] * 1e3,
        "dit_fwd_bwd_opt_ms": med["dit"] * 1e3,
        "dit_share_of_step": med["dit"] / med["train_step"],
        "step_minus_rollout_grad_ms": (med["train_step"] - med["rollout_grad"]) * 1e3,
        "compile_train_step_s": c_step,
        "compile_rollout_grad_s": c_grad,
        "compile_dit_s": c_dit,
    }
    print(f"train step B={B} H={H}, DiT {n_params / 1e6:.2f} M params, on {result['machine']}")
    print(f"  whole train step        {result['train_step_ms']:8.1f} ms   (compile {c_step:.1f} s)")
    print(f"  rollout gradient alone  {result['rollout_grad_ms']:8.1f} ms   (compile {c_grad:.1f} s)")
    print(f"  DiT fwd+bwd+AdamW+EMA   {result['dit_fwd_bwd_opt_ms']:8.1f} ms   (compile {c_dit:.1f} s)")
    print(f"  DiT share of the step   {100 * result['dit_share_of_step']:8.1f} %")
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    B, H = args.batch, args.horizon

    rollout = create_go2_rollout()
    U_demo, X1, cond = demonstrations(rollout, B, H, args.cond_dim)

    config = TrainConfig.from_flat(
        data="-", batch=B, horizon=H, d_model=args.d_model, n_heads=args.n_heads, depth=args.depth, lr=1e-4
    )
    hyper = jax.tree.map(jnp.asarray, hyperparameters(config, 10_000))
    model, variables = create_action_predictor(
        horizon=H, d_model=args.d_model, n_heads=args.n_heads, depth=args.depth, cond_dim=args.cond_dim
    )
    params = variables["params"]
    n_params = sum(x.size for x in jax.tree.leaves(params))
    tx = make_optimizer(hyper)
    state = initial_state(params)
    norm = variables["normalizer"]

    step_fn, c_step = compile_time(jax.jit(make_train_step(model, rollout)), state, X1, cond, norm, hyper)

    def rollout_grad(U, x0):
        return jax.value_and_grad(lambda u: jnp.mean(jnp.square(rollout(x0, u) - X1)))(U)

    U0 = jnp.asarray(U_demo, jnp.float32)
    grad_fn, c_grad = compile_time(jax.jit(rollout_grad), U0, X1[:, 0])
    dit_fn, c_dit = compile_time(jax.jit(make_dit_step(model, tx, B)), state, X1, cond, norm)

    med = time_in_alternation(step_fn, grad_fn, dit_fn, state, X1, cond, norm, hyper, U0, args.repeats)
    report(B, H, n_params, med, c_step, c_grad, c_dit)


if __name__ == "__main__":
    jax.config.update("jax_enable_compilation_cache", False)
    main()
