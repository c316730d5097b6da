"""Checkpoints of a run: writing ``last``, ``best`` and ``epoch_NNNN`` (process 0, atomically, a stop
signal waiting for the save), and reading a run back to resume it."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dynaflow.checkpoint import (
    CheckpointError,
    checkpoint_meta,
    read_config,
    resolve_checkpoint,
    save_checkpoint,
)
from dynaflow.config import ConfigError, TrainConfig
from dynaflow.train.signals import StopRequests
from dynaflow.train.step import TrainState


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


def restore_state(state: TrainState, ckpt: dict, path: Path) -> tuple[TrainState, float]:
    """``state`` with a loaded checkpoint's step, weights, optimiser state, key and counters, and the
    run's best validation score so far; a checkpoint without a matching optimiser state is refused."""
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
