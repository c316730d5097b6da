"""Training: AdamW + warmup/cosine, global-norm clipping, EMA, a data-parallel train step, the loop, resume.

The step is a pure function of a small :class:`TrainState` pytree (Brax style); ``jax.jit`` sits at the
edge. The run's numbers (learning rate, schedule lengths, decay, clipping, loss weights) are *arguments*
of the compiled step, not constants in it: one compiled step serves every run of the same model, method
and data shapes, however long and at whatever learning rate (and JAX's persistent cache recognises it).

The batch is sharded along one ``data`` mesh axis over every device of every process and the state is
replicated, so one code path serves a laptop, one GPU, several, and several hosts
(:mod:`dynaflow.distributed`: each process loads its block of the batch, process 0 writes the files).

The loop reads as steps: :func:`prepare_run` (data, normaliser, model, state), :class:`RunLog`
(``metrics.jsonl``, W&B, progress), :class:`Checkpointer` (``last``, ``best``, ``epoch_NNNN``), and the
epoch loop in :func:`train`. Reproducibility: the per-step random key is ``fold_in(seed key, step)`` and
epoch ``e``'s window order is a permutation drawn from ``(seed, e)``, so a run resumed from any checkpoint
continues exactly as if it had never stopped. Stop signals (:class:`StopRequests`) save ``last`` first.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from dynaflow.checkpoint import (
    CheckpointError,
    checkpoint_meta,
    load_checkpoint,
    read_config,
    resolve_checkpoint,
    run_contents,
    save_checkpoint,
)
from dynaflow.config import ConfigError, TrainConfig
from dynaflow.data import (
    Dataset,
    Normalizer,
    gather_actions,
    gather_windows,
    load_dataset,
    split_episodes,
    window_index,
)
from dynaflow.fileio import atomic_write, check_output
from dynaflow.flow import loss_weights, trajectory_errors
from dynaflow.methods import build_model, get_method
from dynaflow.model import set_normalizer
from dynaflow.physics import Rollout, create_go2_rollout
from dynaflow.physics.rollout import random_worlds
from dynaflow.runtime import test_event
from dynaflow.sampling import make_sampler

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingInterrupted",
    "TrainingStopped",
    "config_from_checkpoint",
    "make_optimizer",
    "make_train_step",
    "train",
]


class TrainingStopped(RuntimeError):
    """The run cannot go on (too many consecutive non-finite updates); ``last`` was saved."""


class TrainingInterrupted(RuntimeError):
    """A stop signal (Ctrl-C, SIGTERM, SIGHUP, SIGUSR1): the run stopped cleanly after saving ``last``.
    ``exit_code`` is the shell's convention for it, 128 + the signal's number (130 for Ctrl-C)."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + int(signum)


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


# --------------------------------------------------------------------------------------------
# Optimiser: hyperparameters as arrays, so they are arguments of the compiled step


def hyperparameters(
    config: TrainConfig, total_steps: int, rest_state: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The step's runtime numbers: peak lr, warmup and decay lengths (updates), weight decay, clipping,
    EMA decay and the loss weights (:func:`~dynaflow.flow.loss_weights`; with ``--rest-starts``, also
    the standing state ``rest_state``, the fraction and ``--ease-in`` in steps)."""
    warmup = config.optim.warmup_steps
    if warmup is None:
        warmup = min(1000, max(1, total_steps // 20))
    warmup = max(0, min(warmup, total_steps - 1))
    f = np.float32
    weights = loss_weights(config.horizon, config.flow.weights, config.flow.trunk)
    if config.rest_starts > 0:
        if rest_state is None:
            raise ValueError("--rest-starts needs the standing state to start from (rest_state)")
        weights.update(
            rest=np.asarray(rest_state, f),
            rest_fraction=f(config.rest_starts),
            ease_steps=f(config.ease_in / config.sim.ctrl_dt),
        )
    return {
        "lr": f(config.optim.lr),
        "warmup": f(warmup),
        "decay_steps": f(max(total_steps, warmup + 1)),
        "weight_decay": f(config.optim.weight_decay),
        "grad_clip": f(config.optim.grad_clip),
        "ema_decay": f(config.optim.ema_decay),
        "weights": weights,
        "randomise": f(config.sim.randomise),
    }


def learning_rate(count, hyper, xp=jnp):
    """Linear warmup from 0 to ``lr`` over ``warmup`` updates, then cosine to 1 % of ``lr`` at
    ``decay_steps`` (NumPy with ``xp=np`` for logging; the same numbers as the compiled step)."""
    lr, warmup, decay = hyper["lr"], hyper["warmup"], hyper["decay_steps"]
    c = xp.asarray(count, xp.float32)
    warm = xp.where(warmup > 0, lr * xp.clip(c, 0, warmup) / xp.maximum(warmup, 1), lr)
    span = decay - warmup
    k = xp.clip(c - warmup, 0, span)
    decayed = lr * (0.99 * 0.5 * (1 + xp.cos(math.pi * k / span)) + 0.01)
    return xp.where(c < warmup, warm, decayed)


def make_optimizer(hyper: dict) -> optax.GradientTransformation:
    """AdamW on :func:`learning_rate`, after global-norm clipping (``hyper`` may hold traced arrays)."""
    return optax.chain(
        optax.clip_by_global_norm(hyper["grad_clip"]),
        optax.adamw(lambda count: learning_rate(count, hyper), weight_decay=hyper["weight_decay"]),
    )


_PLACEHOLDER = {k: np.float32(1.0) for k in ("lr", "warmup", "decay_steps", "weight_decay", "grad_clip")}


def init_opt_state(params) -> Any:
    """The optimiser state for ``params`` (its structure does not depend on the hyperparameters)."""
    return make_optimizer(_PLACEHOLDER).init(params)


# --------------------------------------------------------------------------------------------
# The step


def make_train_step(
    model, rollout: Rollout, time_distribution: str = "uniform", randomise: bool = False
) -> Callable:
    """``step(state, X1, cond, norm, hyper, A1=None) -> (state, metrics)``: one update, skipping any whose
    loss, gradient or resulting weights are not finite.

    ``norm`` is the model's ``normalizer`` collection and ``hyper`` the run's :func:`hyperparameters`: both
    arguments, so one compiled step serves every dataset and run length of the same shapes. ``A1`` are the
    windows' recorded actions, used only by the methods that learn from them. ``randomise``: each window
    rolls out in its own perturbed physics (:func:`~dynaflow.physics.rollout.random_worlds` at strength
    ``hyper["randomise"]``): domain randomisation."""
    method = model.method

    def step(state: TrainState, X1, cond, norm, hyper, A1=None):
        key = jax.random.fold_in(state.key, state.step)
        tx = make_optimizer(hyper)

        phi = rollout
        if randomise:
            worlds = random_worlds(jax.random.fold_in(key, 0x5EED), X1.shape[0], rollout, hyper["randomise"])

            def phi(x0, U):
                return rollout.rollout(x0, U, world=worlds)

        def loss_fn(params):
            variables = {"params": params, "normalizer": norm}
            return method.loss(
                model.apply, variables, phi, X1, cond, key, hyper["weights"], time_distribution, True, A1
            )

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        gnorm = optax.tree_utils.tree_norm(grads)
        ok = jnp.isfinite(loss) & jnp.isfinite(gnorm)
        grads = jax.tree.map(lambda g: jnp.where(ok, g, 0.0), grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = ok & jnp.isfinite(optax.tree_utils.tree_norm(params))  # never keep non-finite weights
        n = state.step - state.skipped  # successful updates so far
        decay = jnp.minimum(hyper["ema_decay"], (1.0 + n) / (10.0 + n))
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


_COMPILED: dict = {}


def _cached(kind: str, model, rollout: Rollout, time_distribution: str, make: Callable, extra=None):
    """One jitted function per (kind, model configuration, rollout, time distribution) in this process:
    a second run of the same configuration (a resume, the demo's, a notebook's) neither traces nor
    compiles again."""
    key = (kind, type(model), repr(model), rollout, time_distribution, extra)
    if key not in _COMPILED:
        if len(_COMPILED) > 32:
            _COMPILED.clear()
        _COMPILED[key] = make()
    return _COMPILED[key]


def compiled_step(model, rollout: Rollout, time_distribution: str, randomise: bool = False):
    """The jitted :func:`make_train_step` (state donated), cached."""
    return _cached(
        "step",
        model,
        rollout,
        time_distribution,
        lambda: jax.jit(make_train_step(model, rollout, time_distribution, randomise), donate_argnums=0),
        extra=bool(randomise),
    )


def compiled_val_loss(model, rollout: Rollout, time_distribution: str):
    """The jitted validation loss (fixed noise, no dropout) on given parameters, cached."""

    def make():
        def val_loss(params, X1, cond, key, norm, weights, A1=None):
            variables = {"params": params, "normalizer": norm}
            return model.method.loss(
                model.apply, variables, rollout, X1, cond, key, weights, time_distribution, False, A1
            )[0]

        return jax.jit(val_loss)

    return _cached("val_loss", model, rollout, time_distribution, make)


# --------------------------------------------------------------------------------------------
# Preparing a run


@dataclass
class TrainResult:
    """What :func:`train` returns: the final state, the run directory, every logged record, the
    normaliser, the model and the checkpoint names written (``last``, ``best``, ``epoch_NNNN``)."""

    state: TrainState
    run_dir: Path
    history: list[dict]
    normalizer: Normalizer
    model: Any
    saved: list[str]


@dataclass
class RunData:
    """A run's data: the dataset, its training and validation windows, and the normaliser."""

    dataset: Dataset
    train_idx: np.ndarray
    val_idx: np.ndarray
    normalizer: Normalizer


def prepare_data(
    config: TrainConfig, dataset: Dataset | None = None, normalizer: Normalizer | None = None
) -> RunData:
    """Load, split and window the dataset; fit the normaliser on training windows unless one is given
    (a resumed run keeps the statistics it started with)."""
    dataset = load_dataset(config.data) if dataset is None else dataset
    method = get_method(config.method)
    if method.needs_actions and dataset.actions is None:
        raise ValueError(
            f"{dataset.source}: key 'actions' missing; --method {config.method} learns from recorded actions "
            "(dynaflow and state-fm need states only)"
        )
    train_eps, val_eps = split_episodes(dataset, config.val_fraction, config.seed)
    span = config.horizon * config.chain  # a training sample: `chain` windows of H steps
    train_idx = window_index(dataset, train_eps, span, config.stride)
    val_idx = window_index(dataset, val_eps, span, config.stride)
    if len(train_idx) < config.batch:
        raise ValueError(
            f"{dataset.source}: {len(train_idx)} training windows of {span + 1} states, fewer than "
            f"--batch {config.batch}; use a smaller --batch or --stride, or more data"
        )
    if normalizer is None:
        rng = np.random.default_rng([config.seed, 7])
        fit_idx = train_idx[rng.choice(len(train_idx), min(len(train_idx), 20_000), replace=False)]
        normalizer = Normalizer.fit(gather_windows(dataset, fit_idx, config.horizon)[0], config.std_floor)
    if len(val_idx) > config.val_windows:
        val_idx = val_idx[
            np.random.default_rng([config.seed, 11]).choice(len(val_idx), config.val_windows, replace=False)
        ]
    return RunData(dataset, train_idx, val_idx, normalizer)


def _batch(data: RunData, rows: np.ndarray, config: TrainConfig, sharding):
    """(X1, cond, A1) of the global batch ``rows`` on the devices; A1 (recorded actions) only for the
    methods that learn from them. Each process gathers and uploads only its own block of the rows."""
    mine = distributed.local_rows(rows)
    X, c = gather_windows(data.dataset, mine, config.horizon * config.chain)
    A = (
        gather_actions(data.dataset, mine, config.horizon)
        if get_method(config.method).needs_actions
        else None
    )
    return tuple(None if v is None else distributed.global_batch(v, sharding, len(rows)) for v in (X, c, A))


def _restore(state: TrainState, ckpt: dict, path: Path) -> tuple[TrainState, float]:
    leaves = ckpt.get("opt_state_leaves")
    if leaves is None:
        raise CheckpointError(f"{path}: has no optimiser state (opt_state.npz); it cannot be resumed")
    template = jax.tree.leaves(state.opt_state)
    treedef = jax.tree.structure(state.opt_state)
    if len(leaves) != len(template) or any(
        np.shape(a) != np.shape(b) for a, b in zip(leaves, template, strict=True)
    ):
        raise CheckpointError(f"{path / 'opt_state.npz'}: optimiser state does not match this configuration")
    progress = ckpt["progress"]
    state = state.replace(
        step=jnp.asarray(ckpt["step"], jnp.int32),
        params=jax.tree.map(jnp.asarray, ckpt["params"]["params"]),
        ema=jax.tree.map(jnp.asarray, ckpt["ema_params"]["params"]),
        opt_state=jax.tree.unflatten(
            treedef, [jnp.asarray(v, t.dtype) for v, t in zip(leaves, template, strict=True)]
        ),
        key=jnp.asarray(np.asarray(progress["key"], np.uint32)).reshape(np.shape(state.key)),
        skipped=jnp.asarray(progress["skipped_updates"], jnp.int32),
        nonfinite=jnp.asarray(progress.get("nonfinite", 0), jnp.int32),
    )
    best = progress["best_val_loss"]
    return state, math.inf if best is None else float(best)


def config_from_checkpoint(path: str | Path, **overrides) -> TrainConfig:
    """The training config stored in a checkpoint (for ``--resume``), with flat-named overrides applied
    (``None`` values are ignored). A stored value of the wrong type is a one-line ``CheckpointError``
    naming the file and key."""
    path = resolve_checkpoint(path)
    stored = read_config(path)["train"]
    try:
        config = TrainConfig.from_dict(stored)
    except ConfigError as e:
        raise CheckpointError(f"{path / 'config.json'}: key '{e.field}': {e.message}") from e
    return config.replace(**{k: v for k, v in overrides.items() if v is not None})


# --------------------------------------------------------------------------------------------
# Writing: the run log and the checkpointer


class RunLog:
    """Where every record of the run goes: ``metrics.jsonl`` (process 0), W&B, the progress display and
    an optional hook. On resume, records after the checkpoint's step are dropped from ``metrics.jsonl``
    (they are about to be logged again)."""

    def __init__(
        self, run_dir: Path, config: TrainConfig, main: bool, progress: bool, hook, resume_step: int
    ):
        self.history: list[dict] = []
        self.hook = hook
        self.tty = progress and main and sys.stderr.isatty()
        self.enabled = progress and main
        self.file = None
        self.wandb = None
        if not main:
            return
        path = run_dir / "metrics.jsonl"
        if resume_step and path.exists():
            keep = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            atomic_write(path, "".join(line + "\n" for line in keep))
        elif path.exists() and not resume_step:
            path.unlink()
        self.file = open(path, "a")
        self.wandb = _wandb_run(config, run_dir)

    def record(self, rec: dict) -> None:
        self.history.append(rec)
        if self.file is not None:
            self.file.write(json.dumps(rec) + "\n")
            self.file.flush()
        if self.wandb is not None:
            self.wandb.log(rec, step=rec["step"])
        if self.hook is not None:
            self.hook(rec)

    def progress(self, epoch: int, epochs: int, i: int, n: int, loss: float, rate: float) -> None:
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

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


def _step_of(line: str) -> float:
    try:
        return float(json.loads(line).get("step", math.inf))
    except (ValueError, AttributeError):
        return math.inf  # a torn last line from a kill: dropped


def _wandb_run(config: TrainConfig, run_dir: Path):
    if config.log.wandb == "disabled":
        return None
    try:
        import wandb
    except ImportError as e:
        raise SystemExit(
            f"dynaflow train: --wandb {config.log.wandb} needs the wandb package; install it with "
            "pip install 'dynaflow[wandb]' (or use --wandb disabled)"
        ) from e
    return wandb.init(
        project=config.log.wandb_project,
        name=config.log.wandb_name,
        mode=config.log.wandb,
        dir=str(run_dir),
        config=config.to_dict(),
    )


class Checkpointer:
    """Writes the run's checkpoints (process 0 only): the state copied to the host once per save, then
    each name (``last``, ``best``, ``epoch_NNNN``) written atomically."""

    def __init__(
        self, run_dir: Path, config: TrainConfig, cond_dim: int | None, normalizer_vars, normalizer, main
    ):
        self.run_dir, self.config, self.cond_dim = run_dir, config, cond_dim
        self.normalizer_vars, self.normalizer, self.main = normalizer_vars, normalizer, main
        self.saved: list[str] = []
        self.last_step: int | None = None  # the step ``last`` holds (written by this process or resumed)
        self.last_time = time.perf_counter()  # when ``last`` was written
        self.stop: StopRequests | None = None  # signals wait for a save to finish

    def save(
        self,
        state: TrainState,
        names: list[str],
        step: int,
        epoch: int,
        best: float,
        epoch_losses: list[float] | None = None,
    ) -> None:
        """Write ``names`` (each atomically) with the run's state at ``step``; a stop signal arriving
        meanwhile waits until they are written. Only process 0 writes. ``epoch_losses``: the losses of an
        unfinished epoch so far (a resume logs that epoch's mean as if it had not stopped)."""
        if "last" in names:
            self.last_step, self.last_time = step, time.perf_counter()
        if not self.main:
            return
        with self.stop.saving_now() if self.stop is not None else contextlib.nullcontext():
            self._write(state, names, step, epoch, best, epoch_losses)

    def _write(
        self,
        state: TrainState,
        names: list[str],
        step: int,
        epoch: int,
        best: float,
        epoch_losses: list[float] | None = None,
    ) -> None:
        host = jax.device_get(state)
        full = {"params": host.params, "normalizer": self.normalizer_vars}
        ema = {"params": host.ema, "normalizer": self.normalizer_vars}
        meta = checkpoint_meta(
            self.config,
            self.cond_dim,
            self.normalizer,
            step=step,
            epoch=epoch,
            best_val_loss=None if not math.isfinite(best) else best,
            key=[int(v) for v in np.asarray(host.key).ravel()],
            skipped_updates=int(host.skipped),
            nonfinite=int(host.nonfinite),
            epoch_losses=epoch_losses,
        )
        for name in names:
            save_checkpoint(self.run_dir / name, full, ema, meta, host.opt_state)
            if name not in self.saved:
                self.saved.append(name)


#: The signals that stop a run cleanly: Ctrl-C, a scheduler's termination (SLURM, Kubernetes), a closed
#: terminal, and SLURM's usual pre-emption warning.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1")


class StopRequests:
    """Stop signals while training (:data:`STOP_SIGNALS`): the first only asks the loop to stop (it
    finishes the update, saves ``last`` and exits with 128 + the signal's number); a second one during a
    save waits for the save to finish; a second one at any other moment stops at once (the checkpoints on
    disk are complete either way). Outside the main thread nothing is installed."""

    def __init__(self) -> None:
        self.signum: int | None = None  # the first stop signal received
        self.saving = False
        self.deferred: int | None = None  # a second signal that arrived during a save
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
        elif self.saving:
            self.deferred = signum
        else:
            raise TrainingInterrupted(
                f"dynaflow train: interrupted at once by a second {signal_name(signum)} (nothing saved now; "
                "the checkpoints on disk are complete)",
                signum,
            )

    @contextlib.contextmanager
    def saving_now(self) -> Iterator[None]:
        """A save in progress: a signal arriving now waits until it is written."""
        before, self.saving = self.saving, True
        try:
            yield
        finally:
            self.saving = before


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, ``SIGINT (Ctrl-C)`` for 2, and so on."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    return name + " (Ctrl-C)" if signum == signal.SIGINT else name


def _stopped_message(signum: int, step: int, run_dir: Path) -> str:
    """The one line a stopped run prints: the signal, what was saved, and the command that continues it."""
    import shlex

    again = f"dynaflow train --resume {shlex.quote(str(run_dir))}"
    if jax.process_count() > 1:
        again += " (in every process, with the same --coordinator or --distributed flags)"
    if not distributed.is_main():
        return (
            f"dynaflow train: process {jax.process_index()}: interrupted by {signal_name(signum)} at step "
            f"{step}; process 0 saved {run_dir / 'last'}"
        )
    return (
        f"dynaflow train: interrupted by {signal_name(signum)} at step {step}; saved {run_dir / 'last'} "
        f"(step {step}); continue with: {again}"
    )


# --------------------------------------------------------------------------------------------
# The loop


def train(
    config: TrainConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    dataset: Dataset | None = None,
    rollout: Rollout | None = None,
    hook: Callable[[dict], None] | None = None,
    overwrite: bool = False,
    rest_state: Callable[[Rollout], np.ndarray] | None = None,
) -> TrainResult:
    """Run (or resume) training; checkpoints and ``metrics.jsonl`` go to ``config.log.save_dir``.

    ``resume`` is a checkpoint directory (or a run directory, whose ``last`` checkpoint is used). A
    ``save_dir`` that already holds a run is refused unless this is a resume or ``overwrite`` is set.
    ``hook`` is called with every record written to ``metrics.jsonl`` (progress displays).
    ``rest_state(rollout)``: the standing state that ``--rest-starts`` starts from (required with it;
    the CLI and the demo give :func:`dynaflow.data.sources.gaits.start_state`, where generation starts)."""
    t_start = time.perf_counter()
    config.validate()
    if config.data is None and dataset is None:
        raise ConfigError("data", "required (a demonstration NPZ)")
    run_dir = check_output(config.log.save_dir, "run directory", is_dir=True)
    resume_ckpt = None
    if resume is not None:
        resume = resolve_checkpoint(resume)
        resume_ckpt = load_checkpoint(resume, with_opt_state=True)
    elif not overwrite and (found := run_contents(run_dir)):
        raise ValueError(
            f"--save-dir {run_dir}: holds an earlier run ({', '.join(found)}); use --resume {run_dir} to "
            "continue it, --overwrite to replace it, or another --save-dir"
        )
    data = prepare_data(config, dataset, None if resume_ckpt is None else resume_ckpt["normalizer"])

    # every device of every process, or with one process the most of its devices that divide the batch
    mesh = distributed.data_mesh(config.batch)
    n_dev = mesh.size
    if config.batch % n_dev:
        raise ValueError(
            f"--batch {config.batch} must be divisible by the {n_dev} devices"
            + (f" of {jax.process_count()} processes" if jax.process_count() > 1 else "")
        )
    main = distributed.is_main()  # only process 0 writes checkpoints, metrics and logs
    data_sharding = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())

    rollout = rollout or create_go2_rollout(
        ctrl_dt=config.sim.ctrl_dt, n_substeps=config.sim.n_substeps, action_scale=config.sim.action_scale
    )
    init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
    m = config.model
    model = build_model(
        config.method,
        m.d_model,
        m.n_heads,
        m.depth,
        m.dropout,
        data.dataset.cond_dim,
        m.max_action,
        m.mlp_ratio,
    )
    x = jnp.zeros((1, config.horizon + 1, model.state_dim), jnp.float32).at[:, :, 3].set(1.0)
    c = None if model.cond_dim is None else jnp.zeros((1, model.cond_dim), jnp.float32)
    variables = dict(jax.jit(model.init)(init_key, x, jnp.zeros((1,)), c))
    variables = set_normalizer(variables, data.normalizer, config.flow.sigma)
    normalizer_vars = variables["normalizer"]

    steps_per_epoch = len(data.train_idx) // config.batch
    if config.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    rest = None
    if config.rest_starts > 0:
        if rest_state is None:
            raise ConfigError(
                "rest_starts", "needs rest_state, the standing state to start from (e.g. gaits.start_state)"
            )
        rest = np.asarray(rest_state(rollout), np.float32)
    hyper = hyperparameters(config, steps_per_epoch * config.epochs, rest)

    params = variables["params"]
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema=jax.tree.map(jnp.copy, params),
        opt_state=init_opt_state(params),
        key=run_key,
        nonfinite=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
    )
    best_val = math.inf
    if resume_ckpt is not None:
        state, best_val = _restore(state, resume_ckpt, resume)
    state = jax.device_put(state, replicated)

    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if overwrite and resume_ckpt is None:
            from dynaflow.checkpoint import remove_run

            remove_run(run_dir)
    step_fn = compiled_step(model, rollout, config.flow.time_distribution, config.sim.randomise > 0)
    val_loss_fn = compiled_val_loss(model, rollout, config.flow.time_distribution)
    sampler = make_sampler(model.apply, rollout, config.horizon, 1)
    hyper_dev = jax.device_put(hyper, replicated)
    norm_dev = jax.device_put(normalizer_vars, replicated)
    val_key = jax.random.fold_in(run_key, 2**30)
    step = int(state.step)
    resumed_at = step if resume_ckpt is not None else None
    resumed_losses = [] if resume_ckpt is None else resume_ckpt["progress"].get("epoch_losses") or []
    ckpt = Checkpointer(run_dir, config, data.dataset.cond_dim, normalizer_vars, data.normalizer, main)
    validate = Validation(
        data, config, val_loss_fn, sampler, normalizer_vars, hyper_dev, val_key, data_sharding
    )
    save_every_s = 60.0 * config.log.save_every_minutes
    log = None
    try:
        with StopRequests() as stop:  # from the first save on, a stop signal waits for a save to finish
            ckpt.stop = stop
            if resume_ckpt is None:
                # a fresh run holds a checkpoint from the start (before metrics.jsonl): a kill at any later
                # moment leaves a run that `--resume auto` continues, never one it would have to replace
                ckpt.save(state, ["last"], 0, 0, best_val)
            else:
                ckpt.last_step = step
            log = RunLog(
                run_dir, config, main, progress, hook, resume_step=step if resume_ckpt is not None else 0
            )
            log.line(
                f"training {config.method} on {len(data.train_idx)} windows ({len(data.val_idx)} validation) "
                f"of H={config.horizon}, {steps_per_epoch} steps/epoch, {n_dev} {jax.devices()[0].platform} "
                "device(s)"
                + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
                + f"; run dir {run_dir}"
            )
            if step < total_steps:
                log.line(
                    "compiling the train step (first call: about a minute on a CPU, seconds from the cache)"
                )
            test_event("start", step)
            # the untrained model's score, what every epoch is read against (unless already asked to stop)
            if step == 0 and len(data.val_idx) and not distributed.gather([stop.signum or 0]).any():
                test_event("validate", step)
                log.record({"step": 0, "epoch": 0, **validate(state)})
            while step < total_steps:
                epoch, offset = divmod(step, steps_per_epoch)
                order = np.random.default_rng([config.seed, epoch]).permutation(len(data.train_idx))
                t_epoch, losses, epoch_start = time.perf_counter(), [], step
                if offset and step == resumed_at:  # an epoch resumed in its middle: its losses so far
                    losses = list(resumed_losses)
                t_last, s_last = time.perf_counter(), step
                stopped_by = None
                for i in range(offset, steps_per_epoch):
                    if step >= total_steps:
                        break
                    # one exchange per update with several processes: a signal any process received
                    # stops them all at this step; process 0's clock decides the time budget
                    flags = distributed.gather(
                        [
                            stop.signum or 0,
                            config.time_budget_s is not None
                            and time.perf_counter() - t_start > config.time_budget_s,
                        ]
                    )
                    if flags[:, 0].any():
                        stopped_by = int(flags[:, 0].max())
                        break
                    if flags[0, 1] and step > 0:  # at least one update, so a checkpoint exists
                        total_steps = step  # out of time: validate and save this as the last step
                        break
                    rows = data.train_idx[order[i * config.batch : (i + 1) * config.batch]]
                    X1, c, A1 = _batch(data, rows, config, data_sharding)
                    state, m = step_fn(state, X1, c, norm_dev, hyper_dev, A1)
                    step += 1
                    loss = float(m["loss"])
                    test_event("update", step)
                    if np.isfinite(loss):
                        losses.append(loss)
                    if int(state.nonfinite) >= config.max_nonfinite:
                        ckpt.save(state, ["last"], step, epoch, best_val)
                        raise TrainingStopped(
                            f"dynaflow train: {config.max_nonfinite} consecutive non-finite losses, "
                            f"gradients or weights at step {step} (last loss {loss}); stopped. Earlier "
                            "checkpoints are intact; try a lower --lr or --grad-clip"
                        )
                    if step % config.log.log_every == 0 or i == steps_per_epoch - 1:
                        now = time.perf_counter()
                        rate = (step - s_last) / max(now - t_last, 1e-9)
                        t_last, s_last = now, step
                        log.record(
                            {
                                "step": step,
                                "epoch": epoch,
                                "train_loss": loss,
                                "lr": float(learning_rate(step - 1 - int(state.skipped), hyper, np)),
                                "grad_norm": float(m["grad_norm"]),
                                "steps_per_s": rate,
                                "skipped_updates": int(state.skipped),
                                **{k: float(v) for k, v in m.items() if k.startswith("mse_")},
                            }
                        )
                        log.progress(epoch, config.epochs, i + 1, steps_per_epoch, loss, rate)
                    ends_epoch = i == steps_per_epoch - 1 or step >= total_steps
                    if (
                        save_every_s > 0
                        and not ends_epoch  # the epoch's own save follows at once
                        and time.perf_counter() - ckpt.last_time >= save_every_s
                    ):
                        ckpt.save(state, ["last"], step, epoch, best_val, losses)  # mid-epoch; process 0
                if stopped_by is not None:
                    with stop.saving_now():  # from here on a second signal changes nothing
                        if ckpt.last_step != step:
                            ckpt.save(state, ["last"], step, epoch, best_val, losses)
                        distributed.barrier("dynaflow-train-stopped")  # process 0 has written `last`
                        raise TrainingInterrupted(_stopped_message(stopped_by, step, run_dir), stopped_by)
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
                if len(data.val_idx):
                    test_event("validate", step)
                    record.update(validate(state))
                log.record(record)
                score = record.get("val_loss", record["epoch_train_loss"])
                is_best = score is not None and score < best_val
                if is_best:
                    best_val = score
                finished_epoch = step % steps_per_epoch == 0
                names = ["last", "best"] if is_best else ["last"]
                if finished_epoch and (epoch + 1) % config.log.save_interval == 0:
                    names.append(f"epoch_{epoch + 1:04d}")
                ckpt.save(
                    state,
                    names,
                    step,
                    epoch + 1 if finished_epoch else epoch,
                    best_val,
                    None if finished_epoch else losses,
                )
                train_loss = record["epoch_train_loss"]
                log.line(
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
        if log is not None:
            log.close()
    return TrainResult(state, run_dir, log.history, data.normalizer, model, list(ckpt.saved))


@dataclass(frozen=True)
class Validation:
    """What scoring the validation windows needs: the run's data and config, the compiled loss and
    sampler, the normaliser variables, the step's hyperparameters, the fixed noise key and the sharding."""

    data: RunData
    config: TrainConfig
    val_loss: Callable
    sampler: Callable
    normalizer_vars: dict
    hyper: dict
    key: jax.Array
    sharding: Any

    def __call__(self, state: TrainState) -> dict:
        """Validation loss and TRE of one-step samples, with the EMA parameters, over fixed windows."""
        data, config = self.data, self.config
        losses, gens, refs = [], [], []
        variables = {"params": state.ema, "normalizer": self.normalizer_vars}
        for j in range(0, len(data.val_idx), config.batch):
            rows = data.val_idx[j : j + config.batch]
            n = len(rows)
            pad = config.batch - n  # every call at the training batch shape: one compile
            rows = np.concatenate([rows, rows[:1].repeat(pad, 0)]) if pad else rows
            Xs, cs, As = _batch(data, rows, config, self.sharding)
            X1 = distributed.to_host(Xs)
            k = jax.random.fold_in(self.key, j)
            loss = self.val_loss(state.ema, Xs, cs, k, self.normalizer_vars, self.hyper["weights"], As)
            losses.append(float(loss) * n)
            X_gen, _ = self.sampler(variables, Xs[:, 0], cs, k, jnp.float32(config.flow.sigma))
            gens.append(distributed.to_host(X_gen)[:n])
            refs.append(X1[:n, : config.horizon + 1])  # TRE of the first window (chains start there)
        out = {"val_loss": float(np.sum(losses) / len(data.val_idx))}
        tre = trajectory_errors(np.concatenate(gens), np.concatenate(refs), data.normalizer.std)
        out.update({f"val_{k}": v for k, v in tre.items()})
        return out
