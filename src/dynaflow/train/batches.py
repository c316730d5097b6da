"""The data a run samples from: the dataset split into training and validation windows, the normaliser
fitted on the training windows, each update's batch on the devices, and the validation score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dynaflow import distributed
from dynaflow.config import TrainConfig
from dynaflow.data import (
    Dataset,
    Normalizer,
    gather_actions,
    gather_windows,
    load_dataset,
    split_episodes,
    window_index,
)
from dynaflow.flow import trajectory_errors
from dynaflow.methods import get_method
from dynaflow.train.step import TrainState


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


def device_batch(data: RunData, rows: np.ndarray, config: TrainConfig, sharding):
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
    compiled: list = field(default_factory=list)  # non-empty once compiled (see compile_together)

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
            Xs, cs, As = device_batch(data, rows, config, self.sharding)
            X1 = distributed.to_host(Xs)
            k = jax.random.fold_in(self.key, j)
            loss_args = (state.ema, Xs, cs, k, self.normalizer_vars, self.hyper["weights"], As)
            sample_args = (variables, Xs[:, 0], cs, k, jnp.float32(config.flow.sigma))
            if not self.compiled:  # several processes start the programs' collectives together
                distributed.compile_together(self.val_loss, *loss_args, name="val-loss")
                distributed.compile_together(self.sampler, *sample_args, name="val-sampler")
                self.compiled.append(True)
            losses.append(float(self.val_loss(*loss_args)) * n)
            X_gen, _ = self.sampler(*sample_args)
            gens.append(distributed.to_host(X_gen)[:n])
            refs.append(X1[:n, : config.horizon + 1])  # TRE of the first window (chains start there)
        out = {"val_loss": float(np.sum(losses) / len(data.val_idx))}
        tre = trajectory_errors(np.concatenate(gens), np.concatenate(refs), data.normalizer.std)
        out.update({f"val_{k}": v for k, v in tre.items()})
        return out
