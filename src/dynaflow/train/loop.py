"""The training loop: open the run, set it up, run its epochs (updates, logs, time-based saves, stop
signals, validation, checkpoints), and return what it made."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dynaflow import distributed
from dynaflow.checkpoint import load_checkpoint, resolve_checkpoint, run_contents
from dynaflow.config import ConfigError, TrainConfig
from dynaflow.data import Dataset, Normalizer
from dynaflow.fileio import check_output
from dynaflow.methods import build_model
from dynaflow.model import set_normalizer
from dynaflow.physics import Rollout
from dynaflow.runtime import test_event
from dynaflow.sampling import make_sampler
from dynaflow.train.batches import RunData, Validation, device_batch, prepare_data
from dynaflow.train.checkpointer import Checkpointer, restore_state
from dynaflow.train.record import RunLog
from dynaflow.train.signals import StopRequests, TrainingInterrupted, TrainingStopped, stopped_message
from dynaflow.train.step import (
    TrainState,
    compiled_step,
    compiled_val_loss,
    hyperparameters,
    init_opt_state,
    learning_rate,
)


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
    run_dir, resume, resume_ckpt = _open(config, resume, dataset, overwrite)
    data = prepare_data(config, dataset, None if resume_ckpt is None else resume_ckpt["normalizer"])
    rollout = rollout or config.sim.rollout()
    if rollout.solver != config.sim.solver:  # the checkpoint would name another simulator than the one used
        raise ValueError(f"rollout: solver {rollout.solver!r}, the config's --solver {config.sim.solver!r}")
    run = _setup(config, run_dir, data, rollout, rest_state, resume, resume_ckpt)
    if run.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if overwrite and resume_ckpt is None:
            from dynaflow.checkpoint import remove_run

            remove_run(run_dir)
    loop = None
    try:
        with StopRequests() as stop:  # from the first save on, a stop signal waits for a save to finish
            loop = _Loop(run, stop, t_start, progress, hook)
            loop.execute()
        distributed.barrier("dynaflow-train-done")  # process 0 has written the last checkpoint
    finally:
        if loop is not None:
            loop.log.close()
    saved = list(run.ckpt.saved)
    return TrainResult(loop.state, run_dir, loop.log.history, data.normalizer, run.model, saved)


def _open(
    config: TrainConfig, resume: str | Path | None, dataset: Dataset | None, overwrite: bool
) -> tuple[Path, Path | None, dict | None]:
    """The run directory and the checkpoint to resume (loaded with its optimiser state), after checking
    the config and that a new run replaces nothing unasked."""
    config.validate()
    if config.data is None and dataset is None:
        raise ConfigError("data", "required (a demonstration NPZ)")
    run_dir = check_output(config.log.save_dir, "run directory", is_dir=True)
    if resume is not None:
        resume = resolve_checkpoint(resume)
        return run_dir, resume, load_checkpoint(resume, with_opt_state=True)
    if not overwrite and (found := run_contents(run_dir)):
        raise ValueError(
            f"--save-dir {run_dir}: holds an earlier run ({', '.join(found)}); use --resume {run_dir} to "
            "continue it, --overwrite to replace it, or another --save-dir"
        )
    return run_dir, None, None


@dataclass
class _Run:
    """Everything a run's loop works with, set up once: config, data, devices, model, compiled step,
    schedule, checkpointer and validation."""

    config: TrainConfig
    run_dir: Path
    data: RunData
    model: Any
    n_dev: int
    main: bool  # only process 0 writes checkpoints, metrics and logs
    data_sharding: NamedSharding
    state: TrainState
    best_val: float
    hyper: dict
    hyper_dev: dict
    norm_dev: dict
    step_fn: Callable
    steps_per_epoch: int
    total_steps: int
    resumed: bool
    resumed_losses: list
    ckpt: Checkpointer
    validate: Validation


def _setup(
    config: TrainConfig,
    run_dir: Path,
    data: RunData,
    rollout: Rollout,
    rest_state: Callable | None,
    resume: Path | None,
    resume_ckpt: dict | None,
) -> _Run:
    """The devices, the model and its initial (or resumed) state, the schedule and the compiled
    functions of a run."""
    # every device of every process, or with one process the most of its devices that divide the batch
    mesh = distributed.data_mesh(config.batch)
    if config.batch % mesh.size:
        raise ValueError(
            f"--batch {config.batch} must be divisible by the {mesh.size} devices"
            + (f" of {jax.process_count()} processes" if jax.process_count() > 1 else "")
        )
    replicated = NamedSharding(mesh, P())
    init_key, run_key = jax.random.split(jax.random.PRNGKey(config.seed))
    model, normalizer_vars, state = _initial_state(config, data, init_key, run_key)
    best_val = math.inf
    if resume_ckpt is not None:
        state, best_val = restore_state(state, resume_ckpt, resume)
    steps_per_epoch, total_steps = _schedule(config, data)
    rest = None
    if config.rest_starts > 0:
        if rest_state is None:
            raise ConfigError(
                "rest_starts", "needs rest_state, the standing state to start from (e.g. gaits.start_state)"
            )
        rest = np.asarray(rest_state(rollout), np.float32)
    hyper = hyperparameters(config, steps_per_epoch * config.epochs, rest)
    hyper_dev = jax.device_put(hyper, replicated)
    data_sharding = NamedSharding(mesh, P("data"))
    main = distributed.is_main()
    sampler = make_sampler(model.apply, rollout, config.horizon, 1)
    val_loss_fn = compiled_val_loss(model, rollout, config.flow.time_distribution)
    val_key = jax.random.fold_in(run_key, 2**30)
    return _Run(
        config=config,
        run_dir=run_dir,
        data=data,
        model=model,
        n_dev=mesh.size,
        main=main,
        data_sharding=data_sharding,
        state=jax.device_put(state, replicated),
        best_val=best_val,
        hyper=hyper,
        hyper_dev=hyper_dev,
        norm_dev=jax.device_put(normalizer_vars, replicated),
        step_fn=compiled_step(model, rollout, config.flow.time_distribution, config.sim.randomise > 0),
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        resumed=resume_ckpt is not None,
        resumed_losses=[] if resume_ckpt is None else resume_ckpt["progress"].get("epoch_losses") or [],
        ckpt=Checkpointer(run_dir, config, data.dataset.cond_dim, normalizer_vars, data.normalizer, main),
        validate=Validation(
            data, config, val_loss_fn, sampler, normalizer_vars, hyper_dev, val_key, data_sharding
        ),
    )


def _initial_state(config: TrainConfig, data: RunData, init_key, run_key) -> tuple[Any, dict, TrainState]:
    """The model, its normaliser variables and a fresh :class:`TrainState` (weights from ``init_key``)."""
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
    return model, variables["normalizer"], state


def _schedule(config: TrainConfig, data: RunData) -> tuple[int, int]:
    """Updates per epoch and in total (``--steps-per-epoch`` and ``--max-steps`` cap them)."""
    steps_per_epoch = len(data.train_idx) // config.batch
    if config.steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    return steps_per_epoch, total_steps


class _Loop:
    """The epochs of one run: its mutable part (state, step, best score, the step it ends at)."""

    def __init__(self, run: _Run, stop: StopRequests, t_start: float, progress: bool, hook) -> None:
        self.run, self.stop, self.t_start = run, stop, t_start
        self.config = run.config
        self.state, self.best_val, self.total_steps = run.state, run.best_val, run.total_steps
        self.step = int(run.state.step)
        self.resumed_at = self.step if run.resumed else None
        self.compiled = False
        run.ckpt.stop = stop
        if not run.resumed:
            # a fresh run holds a checkpoint from the start (before metrics.jsonl): a kill at any later
            # moment leaves a run that `--resume auto` continues, never one it would have to replace
            run.ckpt.save(self.state, ["last"], 0, 0, self.best_val)
        else:
            run.ckpt.last_step = self.step
        self.log = RunLog(run.run_dir, self.config, run.main, progress, hook, self.step if run.resumed else 0)

    def execute(self) -> None:
        """Announce the run, score the untrained model, run the epochs; a stop signal that arrived after
        the last update still ends the command with its code (the run is complete and saved)."""
        run, stop = self.run, self.stop
        self._announce()
        test_event("start", self.step)
        # the untrained model's score, what every epoch is read against (unless already asked to stop)
        if self.step == 0 and len(run.data.val_idx) and not distributed.gather([stop.signum or 0]).any():
            test_event("validate", self.step)
            self.log.record({"step": 0, "epoch": 0, **run.validate(self.state)})
        while self.step < self.total_steps:
            if not self._epoch():
                break
        late = distributed.gather([stop.signum or 0])[:, 0]
        if late.any():  # during the last validation or save: `last` already holds the final step
            self._stopped(int(late.max()), self.step // run.steps_per_epoch, [])

    def _announce(self) -> None:
        run = self.run
        self.log.line(
            f"training {self.config.method} on {len(run.data.train_idx)} windows ({len(run.data.val_idx)} "
            f"validation) of H={self.config.horizon}, {run.steps_per_epoch} steps/epoch, {run.n_dev} "
            f"{jax.devices()[0].platform} device(s)"
            + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
            + f"; run dir {run.run_dir}"
        )
        if self.step < self.total_steps:
            self.log.line(
                "compiling the train step (first call: about a minute on a CPU, seconds from the cache)"
            )

    def _epoch(self) -> bool:
        """One epoch (or the rest of a resumed one); False when the run ends before it starts."""
        run, config = self.run, self.config
        epoch, offset = divmod(self.step, run.steps_per_epoch)
        order = np.random.default_rng([config.seed, epoch]).permutation(len(run.data.train_idx))
        t_epoch, epoch_start = time.perf_counter(), self.step
        losses = list(run.resumed_losses) if offset and self.step == self.resumed_at else []
        stopped_by = self._updates(epoch, offset, order, losses)
        if stopped_by is not None:
            self._stopped(stopped_by, epoch, losses)
        if self.step == epoch_start:  # the budget ran out before this epoch's first update
            return False
        if self.step % run.steps_per_epoch == 0 or self.step >= self.total_steps:
            self._end_epoch(epoch, epoch_start, t_epoch, losses)
        return True

    def _updates(self, epoch: int, offset: int, order: np.ndarray, losses: list) -> int | None:
        """The epoch's updates from ``offset``; the stop signal's number when one ends them early."""
        run, config = self.run, self.config
        t_last, s_last = time.perf_counter(), self.step
        for i in range(offset, run.steps_per_epoch):
            if self.step >= self.total_steps:
                break
            # one exchange per update with several processes: a signal any process received stops them
            # all at this step; process 0's clock decides the time budget
            out_of_time = config.time_budget_s is not None and time.perf_counter() - self.t_start > (
                config.time_budget_s
            )
            flags = distributed.gather([self.stop.signum or 0, out_of_time])
            if flags[:, 0].any():
                return int(flags[:, 0].max())
            if flags[0, 1] and self.step > 0:  # at least one update, so a checkpoint exists
                self.total_steps = self.step  # out of time: validate and save this as the last step
                break
            loss, metrics = self._update(order[i * config.batch : (i + 1) * config.batch])
            if np.isfinite(loss):
                losses.append(loss)
            self._check_finite(epoch, loss)
            if self.step % config.log.log_every == 0 or i == run.steps_per_epoch - 1:
                now = time.perf_counter()
                rate = (self.step - s_last) / max(now - t_last, 1e-9)
                t_last, s_last = now, self.step
                self._log_update(epoch, loss, metrics, rate)
                self.log.progress(epoch, config.epochs, i + 1, run.steps_per_epoch, loss, rate)
            ends_epoch = i == run.steps_per_epoch - 1 or self.step >= self.total_steps
            self._save_by_time(epoch, losses, ends_epoch)
        return None

    def _update(self, order_rows: np.ndarray) -> tuple[float, dict]:
        run = self.run
        rows = run.data.train_idx[order_rows]
        X1, c, A1 = device_batch(run.data, rows, self.config, run.data_sharding)
        args = (self.state, X1, c, run.norm_dev, run.hyper_dev, A1)
        if not self.compiled:  # several processes start the step's collectives together
            distributed.compile_together(run.step_fn, *args, name="train-step")
            self.compiled = True
        self.state, metrics = run.step_fn(*args)
        self.step += 1
        loss = float(metrics["loss"])
        test_event("update", self.step)
        return loss, metrics

    def _check_finite(self, epoch: int, loss: float) -> None:
        config = self.config
        if int(self.state.nonfinite) >= config.max_nonfinite:
            self.run.ckpt.save(self.state, ["last"], self.step, epoch, self.best_val)
            raise TrainingStopped(
                f"dynaflow train: {config.max_nonfinite} consecutive non-finite losses, gradients or weights "
                f"at step {self.step} (last loss {loss}); stopped. Earlier checkpoints are intact; try a "
                "lower --lr or --grad-clip"
            )

    def _log_update(self, epoch: int, loss: float, metrics: dict, rate: float) -> None:
        count = self.step - 1 - int(self.state.skipped)
        self.log.record(
            {
                "step": self.step,
                "epoch": epoch,
                "train_loss": loss,
                "lr": float(learning_rate(count, self.run.hyper, np)),
                "grad_norm": float(metrics["grad_norm"]),
                "steps_per_s": rate,
                "skipped_updates": int(self.state.skipped),
                **{k: float(v) for k, v in metrics.items() if k.startswith("mse_")},
            }
        )

    def _save_by_time(self, epoch: int, losses: list, ends_epoch: bool) -> None:
        """``last`` mid-epoch once ``--save-every-minutes`` have passed since it was written (not at an
        epoch's end, whose own save follows at once)."""
        save_every_s = 60.0 * self.config.log.save_every_minutes
        ckpt = self.run.ckpt
        if save_every_s > 0 and not ends_epoch and time.perf_counter() - ckpt.last_time >= save_every_s:
            ckpt.save(self.state, ["last"], self.step, epoch, self.best_val, losses)  # process 0 writes

    def _stopped(self, signum: int, epoch: int, losses: list) -> None:
        """Save ``last`` at this step unless it holds it already, then end with the signal's line."""
        with self.stop.saving_now():  # from here on a second signal changes nothing
            ckpt = self.run.ckpt
            if ckpt.last_step != self.step:
                ckpt.save(self.state, ["last"], self.step, epoch, self.best_val, losses)
            distributed.barrier("dynaflow-train-stopped")  # process 0 has written `last`
            raise TrainingInterrupted(stopped_message(signum, self.step, self.run.run_dir), signum)

    def _end_epoch(self, epoch: int, epoch_start: int, t_epoch: float, losses: list) -> None:
        """Validate, log, and save ``last`` (``best`` when it improved, ``epoch_NNNN`` at the interval)."""
        run, config, step = self.run, self.config, self.step
        record = {
            "step": step,
            "epoch": epoch,
            "epoch_train_loss": float(np.mean(losses)) if losses else None,
            "epoch_seconds": time.perf_counter() - t_epoch,
        }
        if len(run.data.val_idx):
            test_event("validate", step)
            record.update(run.validate(self.state))
        self.log.record(record)
        score = record.get("val_loss", record["epoch_train_loss"])
        is_best = score is not None and score < self.best_val
        if is_best:
            self.best_val = score
        finished_epoch = step % run.steps_per_epoch == 0
        names = ["last", "best"] if is_best else ["last"]
        if finished_epoch and (epoch + 1) % config.log.save_interval == 0:
            names.append(f"epoch_{epoch + 1:04d}")
        next_epoch = epoch + 1 if finished_epoch else epoch
        run.ckpt.save(self.state, names, step, next_epoch, self.best_val, None if finished_epoch else losses)
        self.log.line(self._epoch_line(record, epoch, epoch_start))

    def _epoch_line(self, record: dict, epoch: int, epoch_start: int) -> str:
        train_loss = record["epoch_train_loss"]
        return (
            f"epoch {epoch + 1}/{self.config.epochs} step {self.step}: train loss "
            + (f"{train_loss:.4f}" if train_loss is not None else "n/a (all updates skipped)")
            + f", {(self.step - epoch_start) / record['epoch_seconds']:.2f} steps/s"
            + (
                f", val loss {record['val_loss']:.4f}, val TRE {record['val_tre']:.3f}"
                if "val_loss" in record
                else ""
            )
            + (f", skipped {int(self.state.skipped)}" if int(self.state.skipped) else "")
        )
