"""Training: AdamW + warmup/cosine, global-norm clipping, EMA, a data-parallel train step, the loop, resume.

The step is a pure function of a small :class:`TrainState` pytree (Brax style); ``jax.jit`` sits at the
edge. The batch is sharded along one ``data`` mesh axis over every device of every process and the state
is replicated, so one code path serves a laptop, one GPU, several, and several hosts
(:mod:`dynaflow.distributed`: each process loads its block of the batch, process 0 writes the files).

Reproducibility: the per-step random key is ``fold_in(seed key, step)`` and epoch ``e``'s window order is
a permutation drawn from ``(seed, e)``, so a run resumed from any checkpoint continues exactly as if it had
never stopped (parameters, optimiser, EMA, step, random numbers and data order).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dynaflow import distributed
from dynaflow.checkpoint import load_checkpoint, read_config, resolve_checkpoint, save_checkpoint
from dynaflow.data import (
    Dataset,
    Normalizer,
    gather_actions,
    gather_windows,
    load_dataset,
    split_episodes,
    window_index,
)
from dynaflow.flow import (
    TIME_DISTRIBUTIONS,
    baseline_loss,
    flow_matching_loss,
    make_sampler,
    state_weights,
    trajectory_errors,
)
from dynaflow.model import METHODS, create_action_predictor, model_config, set_normalizer
from dynaflow.physics import Rollout, create_go2_rollout


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in every checkpoint; ``--resume`` reads it back)."""

    data: str
    method: str = "dynaflow"  # or a baseline in the same harness: state-fm, state-fm-id, bc
    epochs: int = 100
    batch: int = 32
    horizon: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.995
    d_model: int = 384
    n_heads: int = 6
    depth: int = 3
    dropout: float = 0.1
    max_action: float = 2.0
    save_dir: str = "checkpoints"
    save_interval: int = 10
    seed: int = 0
    val_fraction: float = 0.1
    stride: int = 1
    steps_per_epoch: int | None = None  # cap on updates per epoch (None: one pass over the windows)
    max_steps: int | None = None  # stop after this many updates in total (saves ``last``)
    time_budget_s: float | None = None  # stop (validate, save ``last``) once this much wall time is spent
    warmup_steps: int | None = None  # None: 5 % of all updates, at most 1000
    grad_clip: float = 1.0
    sigma: float = 1.0
    time_distribution: str = "uniform"
    weights: dict[str, float] = field(default_factory=dict)
    val_windows: int = 256  # validation windows scored each epoch (loss and TRE)
    max_nonfinite: int = 20  # this many consecutive non-finite updates stop the run
    log_every: int = 10
    wandb: str = "disabled"
    wandb_project: str = "dynaflow"
    wandb_name: str | None = None
    ctrl_dt: float = 0.02
    n_substeps: int = 4
    action_scale: float = 0.5

    def validate(self) -> None:
        checks = [
            (self.method in METHODS, "--method", self.method, f"one of {METHODS}"),
            (self.epochs >= 1, "--epochs", self.epochs, ">= 1"),
            (self.batch >= 1, "--batch", self.batch, ">= 1"),
            (self.horizon >= 1, "--horizon", self.horizon, ">= 1"),
            (self.lr > 0, "--lr", self.lr, "> 0"),
            (self.weight_decay >= 0, "--weight-decay", self.weight_decay, ">= 0"),
            (0 <= self.ema_decay < 1, "--ema-decay", self.ema_decay, "in [0, 1)"),
            (self.save_interval >= 1, "--save-interval", self.save_interval, ">= 1"),
            (self.sigma > 0, "--sigma", self.sigma, "> 0"),
            (self.grad_clip > 0, "--grad-clip", self.grad_clip, "> 0"),
            (self.max_nonfinite >= 1, "--max-nonfinite", self.max_nonfinite, ">= 1"),
            (
                self.time_budget_s is None or self.time_budget_s > 0,
                "--time-budget",
                self.time_budget_s,
                "> 0 seconds",
            ),
            (
                self.time_distribution in TIME_DISTRIBUTIONS,
                "--time-dist",
                self.time_distribution,
                f"one of {TIME_DISTRIBUTIONS}",
            ),
            (
                self.wandb in ("online", "offline", "disabled"),
                "--wandb",
                self.wandb,
                "online, offline or disabled",
            ),
        ]
        for ok, flag, value, want in checks:
            if not ok:
                raise ValueError(f"{flag}: expected {want}, got {value!r}")
        state_weights(self.horizon, self.weights)  # validates group names and values


@flax.struct.dataclass
class TrainState:
    """The whole mutable state of a run; a pytree, replicated over devices."""

    step: jax.Array  # updates attempted (int32)
    params: dict  # trainable parameters (the "params" collection)
    ema: dict  # their exponential moving average
    opt_state: Any
    key: jax.Array  # the run's base PRNG key; step keys are fold_in(key, step)
    nonfinite: jax.Array  # consecutive non-finite updates
    skipped: jax.Array  # total skipped updates


def make_optimizer(config: TrainConfig, total_steps: int) -> tuple[optax.GradientTransformation, Callable]:
    """AdamW on a linear-warmup + cosine schedule (to 1 % of ``lr``), after global-norm clipping."""
    warmup = config.warmup_steps
    if warmup is None:
        warmup = min(1000, max(1, total_steps // 20))
    warmup = max(0, min(warmup, total_steps - 1))
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup else config.lr,
        peak_value=config.lr,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.01 * config.lr,
    )
    tx = optax.chain(
        optax.clip_by_global_norm(config.grad_clip),
        optax.adamw(schedule, weight_decay=config.weight_decay),
    )
    return tx, schedule


def _loss(model, rollout: Rollout, config: TrainConfig, train: bool) -> Callable:
    """``loss(params, X1, cond, key, norm, A1) -> (loss, aux)`` for the run's method."""
    weights = jnp.asarray(state_weights(config.horizon, config.weights))

    def loss_fn(params, X1, cond, key, norm, A1=None):
        variables = {"params": params, "normalizer": norm}
        if config.method == "dynaflow":
            return flow_matching_loss(
                model.apply, variables, rollout, X1, cond, key, weights, config.time_distribution, train
            )
        return baseline_loss(
            config.method, model.apply, variables, X1, cond, key, weights, config.time_distribution, train, A1
        )

    return loss_fn


def make_train_step(model, rollout: Rollout, tx, config: TrainConfig) -> Callable:
    """``step(state, X1, cond, norm, A1=None) -> (state, metrics)``: one update, skipping non-finite ones.

    ``norm`` is the model's ``normalizer`` collection, an argument (not a constant) so that one compiled
    step serves every dataset of the same shapes (and JAX's persistent cache recognises it). ``A1`` are
    the windows' recorded actions, used only by the baselines that learn from them."""
    loss_fn = _loss(model, rollout, config, train=True)

    def step(state: TrainState, X1, cond, norm, A1=None):
        key = jax.random.fold_in(state.key, state.step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, X1, cond, key, norm, A1)
        gnorm = optax.tree_utils.tree_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        grads = jax.tree.map(lambda g: jnp.where(ok, g, 0.0), grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        n = state.step - state.skipped  # successful updates so far
        decay = jnp.minimum(config.ema_decay, (1.0 + n) / (10.0 + n))
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, params)

        def keep(new, old):
            return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)

        new_state = state.replace(
            step=state.step + 1,
            params=keep(params, state.params),
            ema=keep(ema, state.ema),
            opt_state=keep(opt_state, state.opt_state),
            nonfinite=jnp.where(ok, 0, state.nonfinite + 1),
            skipped=state.skipped + jnp.where(ok, 0, 1),
        )
        metrics = {
            "loss": loss,
            "grad_norm": gnorm,
            "ok": ok,
            **{f"mse_{k}": v for k, v in aux["per_group"].items()},
        }
        return new_state, metrics

    return step


def make_eval_fns(model, rollout: Rollout, config: TrainConfig):
    """Validation loss (fixed noise, no dropout) and one-step samples, both on given parameters."""
    loss_fn = _loss(model, rollout, config, train=False)

    def val_loss(params, X1, cond, key, norm, A1=None):
        return loss_fn(params, X1, cond, key, norm, A1)[0]

    sampler = make_sampler(model.apply, rollout, config.horizon, 1)
    return jax.jit(val_loss), sampler


# --------------------------------------------------------------------------------------------
# The loop


class TrainingStopped(RuntimeError):
    """Raised when the run cannot go on (too many consecutive non-finite updates)."""


@dataclass
class TrainResult:
    state: TrainState
    run_dir: Path
    history: list[dict]
    normalizer: Normalizer
    model: Any


class _Progress:
    """A one-line progress bar on a terminal; plain per-epoch lines otherwise (logs, CI)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()

    def update(self, epoch: int, epochs: int, i: int, n: int, loss: float, rate: float) -> None:
        if not self.tty:
            return
        filled = int(20 * i / max(n, 1))
        sys.stderr.write(
            f"\repoch {epoch + 1}/{epochs} [{'#' * filled}{'.' * (20 - filled)}] {i}/{n} "
            f"loss {loss:.4f} {rate:.2f} steps/s   "
        )
        sys.stderr.flush()

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r" + " " * 100 + "\r")
        print(text, file=sys.stderr, flush=True)


def _wandb_run(config: TrainConfig, run_dir: Path):
    if config.wandb == "disabled":
        return None
    try:
        import wandb
    except ImportError as e:
        raise SystemExit(
            f"dynaflow train: --wandb {config.wandb} needs the wandb package; install it with "
            "pip install 'dynaflow[wandb]' (or use --wandb disabled)"
        ) from e
    return wandb.init(
        project=config.wandb_project,
        name=config.wandb_name,
        mode=config.wandb,
        dir=str(run_dir),
        config=dataclasses.asdict(config),
    )


def prepare_data(config: TrainConfig, dataset: Dataset | None = None, normalizer: Normalizer | None = None):
    """Load, split and window the dataset; fit the normaliser on training windows unless one is given
    (a resumed run keeps the statistics it started with)."""
    dataset = load_dataset(config.data) if dataset is None else dataset
    if config.method in ("state-fm-id", "bc") and dataset.actions is None:
        raise ValueError(
            f"{dataset.source}: key 'actions' missing; --method {config.method} learns from recorded actions "
            "(dynaflow and state-fm need states only)"
        )
    train_eps, val_eps = split_episodes(dataset, config.val_fraction, config.seed)
    train_idx = window_index(dataset, train_eps, config.horizon, config.stride)
    val_idx = window_index(dataset, val_eps, config.horizon, config.stride)
    if len(train_idx) < config.batch:
        raise ValueError(
            f"{dataset.source}: {len(train_idx)} training windows of {config.horizon + 1} states, fewer than "
            f"--batch {config.batch}; use a smaller --batch or --stride, or more data"
        )
    if normalizer is None:
        rng = np.random.default_rng([config.seed, 7])
        fit_idx = train_idx[rng.choice(len(train_idx), min(len(train_idx), 20_000), replace=False)]
        normalizer = Normalizer.fit(gather_windows(dataset, fit_idx, config.horizon)[0])
    if len(val_idx) > config.val_windows:
        val_idx = val_idx[
            np.random.default_rng([config.seed, 11]).choice(len(val_idx), config.val_windows, replace=False)
        ]
    return dataset, train_idx, val_idx, normalizer


def _batch(dataset: Dataset, rows: np.ndarray, config: TrainConfig, sharding):
    """(X1, cond, A1) of the global batch ``rows`` on the devices; A1 (recorded actions) only for the
    methods that learn from them. Each process gathers and uploads only its own block of the rows."""
    mine = distributed.local_rows(rows)
    X, c = gather_windows(dataset, mine, config.horizon)
    A = gather_actions(dataset, mine, config.horizon) if config.method in ("state-fm-id", "bc") else None
    return tuple(None if v is None else distributed.global_batch(v, sharding, len(rows)) for v in (X, c, A))


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    dataset: Dataset | None = None,
    rollout: Rollout | None = None,
    hook: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Run (or resume) training; checkpoints and ``metrics.jsonl`` go to ``config.save_dir``.

    ``resume`` is a checkpoint directory (or a run directory, whose ``last`` checkpoint is used).
    ``hook`` is called with every record written to ``metrics.jsonl`` (progress displays)."""
    t_start = time.perf_counter()
    config.validate()
    resume_ckpt = None
    if resume is not None:
        resume = resolve_checkpoint(resume)
        resume_ckpt = load_checkpoint(resume, with_opt_state=True)
    dataset, train_idx, val_idx, normalizer = prepare_data(
        config, dataset, None if resume_ckpt is None else resume_ckpt["normalizer"]
    )

    n_dev = jax.device_count()  # every device of every process (see dynaflow.distributed)
    if config.batch % n_dev:
        raise ValueError(
            f"--batch {config.batch} must be divisible by the {n_dev} devices"
            + (f" of {jax.process_count()} processes" if jax.process_count() > 1 else "")
        )
    mesh = distributed.data_mesh()
    main = distributed.is_main()  # only process 0 writes checkpoints, metrics and logs
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())

    rollout = rollout or create_go2_rollout(
        ctrl_dt=config.ctrl_dt, n_substeps=config.n_substeps, action_scale=config.action_scale
    )
    key = jax.random.PRNGKey(config.seed)
    init_key, run_key = jax.random.split(key)
    model, variables = create_action_predictor(
        horizon=config.horizon,
        d_model=config.d_model,
        n_heads=config.n_heads,
        depth=config.depth,
        dropout=config.dropout,
        cond_dim=dataset.cond_dim,
        rng=init_key,
        max_action=config.max_action,
        method=config.method,
    )
    variables = set_normalizer(variables, normalizer, config.sigma)
    normalizer_vars = variables["normalizer"]

    steps_per_epoch = len(train_idx) // config.batch
    if config.steps_per_epoch is not None:
        steps_per_epoch = max(1, min(steps_per_epoch, config.steps_per_epoch))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    tx, schedule = make_optimizer(config, steps_per_epoch * config.epochs)

    params = variables["params"]
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema=jax.tree.map(jnp.copy, params),
        opt_state=tx.init(params),
        key=run_key,
        nonfinite=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    best_val = math.inf
    if resume_ckpt is not None:
        state, best_val = _restore(state, resume_ckpt, resume)
    state = jax.device_put(state, replicated)

    run_dir = Path(config.save_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    step_fn = jax.jit(make_train_step(model, rollout, tx, config), donate_argnums=0)
    val_loss_fn, sampler = make_eval_fns(model, rollout, config)
    val_key = jax.random.fold_in(run_key, 2**30)
    wb = _wandb_run(config, run_dir) if main else None
    bar = _Progress(progress and main)
    history: list[dict] = []
    metrics_file = open(run_dir / "metrics.jsonl", "a") if main else None

    def log(record: dict) -> None:
        history.append(record)
        if metrics_file is not None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
        if wb is not None:
            wb.log(record, step=record["step"])
        if hook is not None:
            hook(record)

    def ckpt_config(step: int, epoch: int, best: float) -> dict:
        return {
            "model": model_config(model, config.horizon),
            "rollout": {
                "ctrl_dt": rollout.ctrl_dt,
                "n_substeps": rollout.n_substeps,
                "action_scale": rollout.action_scale,
                "default_pose": [float(v) for v in rollout.default_pose],
            },
            "normalizer": normalizer.to_dict(),
            "sigma": config.sigma,
            "train": dataclasses.asdict(config),
            "step": step,
            "epoch": epoch,
            "best_val_loss": None if not math.isfinite(best) else best,
            "key": [int(v) for v in np.asarray(state.key).ravel()],
            "skipped_updates": int(state.skipped),
        }

    def save(names: list[str], step: int, epoch: int, best: float) -> None:
        if not main:
            return
        host = jax.device_get(state)  # once for all the names (replicated: readable on every process)
        full = {"params": host.params, "normalizer": normalizer_vars}
        ema = {"params": host.ema, "normalizer": normalizer_vars}
        meta = ckpt_config(step, epoch, best)
        for name in names:
            save_checkpoint(run_dir / name, full, ema, meta, host.opt_state)

    norm_dev = jax.device_put(normalizer_vars, replicated)

    def validate() -> dict:
        return _validate(
            state,
            dataset,
            val_idx,
            config,
            val_loss_fn,
            sampler,
            normalizer_vars,
            normalizer,
            val_key,
            data_sharding,
        )

    step = int(state.step)
    bar.line(
        f"training on {len(train_idx)} windows ({len(val_idx)} validation) of H={config.horizon}, "
        f"{steps_per_epoch} steps/epoch, {n_dev} {jax.devices()[0].platform} device(s)"
        + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
        + f"; run dir {run_dir}"
    )
    try:
        if step == 0 and len(val_idx):  # the untrained model's score: what every epoch is read against
            log({"step": 0, "epoch": 0, **validate()})
        while step < total_steps:
            epoch, offset = divmod(step, steps_per_epoch)
            order = np.random.default_rng([config.seed, epoch]).permutation(len(train_idx))
            t_epoch, losses, epoch_start = time.perf_counter(), [], step
            t_last, s_last = time.perf_counter(), step
            for i in range(offset, steps_per_epoch):
                if step >= total_steps:
                    break
                out_of_time = config.time_budget_s is not None and distributed.agree(
                    time.perf_counter() - t_start > config.time_budget_s  # process 0's clock decides
                )
                if out_of_time and step > 0:  # at least one update, so a checkpoint exists
                    total_steps = step  # out of time: validate and save this as the last step
                    break
                rows = train_idx[order[i * config.batch : (i + 1) * config.batch]]
                X1, c, A1 = _batch(dataset, rows, config, data_sharding)
                state, m = step_fn(state, X1, c, norm_dev, A1)
                step += 1
                loss = float(m["loss"])
                if np.isfinite(loss):
                    losses.append(loss)
                if int(state.nonfinite) >= config.max_nonfinite:
                    save(["last"], step, epoch, best_val)
                    raise TrainingStopped(
                        f"dynaflow train: {config.max_nonfinite} consecutive non-finite losses or gradients "
                        f"at step {step} (last loss {loss}); stopped. Earlier checkpoints are intact; try a "
                        f"lower --lr or --grad-clip"
                    )
                if step % config.log_every == 0 or i == steps_per_epoch - 1:
                    now = time.perf_counter()
                    rate = (step - s_last) / max(now - t_last, 1e-9)
                    t_last, s_last = now, step
                    log(
                        {
                            "step": step,
                            "epoch": epoch,
                            "train_loss": loss,
                            "lr": float(schedule(step - 1)),
                            "grad_norm": float(m["grad_norm"]),
                            "steps_per_s": rate,
                            "skipped_updates": int(state.skipped),
                            **{k: float(v) for k, v in m.items() if k.startswith("mse_")},
                        }
                    )
                    bar.update(epoch, config.epochs, i + 1, steps_per_epoch, loss, rate)
            epoch_done = step % steps_per_epoch == 0 or step >= total_steps
            if step == epoch_start:  # the budget ran out before this epoch's first update
                break
            if not epoch_done:
                continue
            record = {
                "step": step,
                "epoch": epoch,
                "epoch_train_loss": float(np.mean(losses)) if losses else None,
                "epoch_seconds": time.perf_counter() - t_epoch,
            }
            if len(val_idx):
                record.update(validate())
            log(record)
            score = record.get("val_loss", record["epoch_train_loss"])
            is_best = score is not None and score < best_val
            if is_best:
                best_val = score
            finished_epoch = step % steps_per_epoch == 0
            names = ["last", "best"] if is_best else ["last"]
            if finished_epoch and (epoch + 1) % config.save_interval == 0:
                names.append(f"epoch_{epoch + 1:04d}")
            save(names, step, epoch + 1 if finished_epoch else epoch, best_val)
            train_loss = record["epoch_train_loss"]
            bar.line(
                f"epoch {epoch + 1}/{config.epochs} step {step}: train loss "
                + (f"{train_loss:.4f}" if train_loss is not None else "n/a (all updates skipped)")
                + f", {(step - epoch_start) / record['epoch_seconds']:.2f} steps/s"
                + (
                    f", val loss {record['val_loss']:.4f}, val TRE {record['val_tre']:.3f}"
                    if "val_loss" in record
                    else ""
                )
                + (f", skipped {int(state.skipped)}" if int(state.skipped) else "")
            )
        distributed.barrier("dynaflow-train-done")  # process 0 has written the last checkpoint
    finally:
        if metrics_file is not None:
            metrics_file.close()
        if wb is not None:
            wb.finish()
    return TrainResult(state=state, run_dir=run_dir, history=history, normalizer=normalizer, model=model)


def _validate(
    state, dataset, val_idx, config, val_loss_fn, sampler, normalizer_vars, normalizer, key, data_sharding
) -> dict:
    """Validation loss and TRE of one-step samples, with the EMA parameters, over fixed windows."""
    losses, gens, refs = [], [], []
    n_dev = jax.device_count()
    variables = {"params": state.ema, "normalizer": normalizer_vars}
    for j in range(0, len(val_idx), config.batch):
        rows = val_idx[j : j + config.batch]
        n = len(rows)
        pad = (-n) % n_dev  # keep the batch divisible by the devices
        rows = np.concatenate([rows, rows[:1].repeat(pad, 0)]) if pad else rows
        Xs, cs, As = _batch(dataset, rows, config, data_sharding)
        X1 = distributed.to_host(Xs)
        k = jax.random.fold_in(key, j)
        losses.append(float(val_loss_fn(state.ema, Xs, cs, k, normalizer_vars, As)) * n)
        X_gen, _ = sampler(variables, Xs[:, 0], cs, k, jnp.float32(config.sigma))
        gens.append(distributed.to_host(X_gen)[:n])
        refs.append(X1[:n])
    out = {"val_loss": float(np.sum(losses) / len(val_idx))}
    tre = trajectory_errors(np.concatenate(gens), np.concatenate(refs), normalizer.std)
    out.update({f"val_{k}": v for k, v in tre.items()})
    return out


def _restore(state: TrainState, ckpt: dict, path: Path) -> tuple[TrainState, float]:
    leaves = ckpt.get("opt_state_leaves")
    if leaves is None:
        raise ValueError(f"{path}: has no optimiser state (opt_state.npz); it cannot be resumed")
    template = jax.tree.leaves(state.opt_state)
    treedef = jax.tree.structure(state.opt_state)
    if len(leaves) != len(template) or any(
        np.shape(a) != np.shape(b) for a, b in zip(leaves, template, strict=True)
    ):
        raise ValueError(f"{path / 'opt_state.npz'}: optimiser state does not match this configuration")
    cfg = ckpt["config"]
    key_data = np.asarray(cfg["key"], np.uint32)
    state = state.replace(
        step=jnp.asarray(ckpt["step"], jnp.int32),
        params=jax.tree.map(jnp.asarray, ckpt["params"]["params"]),
        ema=jax.tree.map(jnp.asarray, ckpt["ema_params"]["params"]),
        opt_state=jax.tree.unflatten(
            treedef, [jnp.asarray(v, t.dtype) for v, t in zip(leaves, template, strict=True)]
        ),
        key=jnp.asarray(key_data).reshape(np.shape(state.key)),
        skipped=jnp.asarray(cfg.get("skipped_updates", 0), jnp.int32),
    )
    best = cfg.get("best_val_loss")
    return state, math.inf if best is None else float(best)


def config_from_checkpoint(path: str | Path, **overrides) -> TrainConfig:
    """The training config stored in a checkpoint (for ``--resume``), with overrides applied."""
    path = resolve_checkpoint(path)
    stored = read_config(path).get("train")
    if not isinstance(stored, dict):
        raise ValueError(f"{path / 'config.json'}: key 'train' missing; this checkpoint cannot be resumed")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = {k: v for k, v in stored.items() if k in known}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**merged)
