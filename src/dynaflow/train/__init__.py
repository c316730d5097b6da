"""Training: AdamW + warmup/cosine, global-norm clipping, EMA, a data-parallel train step, the loop, resume.

The package reads by concern:

- :mod:`~dynaflow.train.step`: the compiled update, a pure function of a small :class:`TrainState` pytree
  whose hyperparameters are arguments (one compiled step serves every run of the same shapes);
- :mod:`~dynaflow.train.batches`: the data a run samples from (windows, normaliser, device batches) and the
  validation score;
- :mod:`~dynaflow.train.loop`: :func:`train`, the epochs with their log (:mod:`~dynaflow.train.record`),
  checkpoints (:mod:`~dynaflow.train.checkpointer`) and stop signals (:mod:`~dynaflow.train.signals`).

The batch is sharded along one ``data`` mesh axis over every device of every process and the state is
replicated, so one code path serves a laptop, one GPU, several, and several hosts
(:mod:`dynaflow.distributed`: each process loads its block of the batch, process 0 writes the files).
Reproducibility: the per-step random key is ``fold_in(seed key, step)`` and epoch ``e``'s window order is a
permutation drawn from ``(seed, e)``, so a run resumed from any checkpoint continues exactly as if it had
never stopped. Stop signals (:class:`StopRequests`) save ``last`` first.
"""

from dynaflow.config import TrainConfig
from dynaflow.train.batches import RunData, Validation, device_batch, prepare_data
from dynaflow.train.checkpointer import Checkpointer, config_from_checkpoint, restore_state
from dynaflow.train.loop import TrainResult, train
from dynaflow.train.record import RunLog
from dynaflow.train.signals import (
    STOP_SIGNALS,
    StopRequests,
    TrainingInterrupted,
    TrainingStopped,
    signal_name,
    stopped_message,
)
from dynaflow.train.step import (
    TrainState,
    compiled_step,
    compiled_val_loss,
    hyperparameters,
    init_opt_state,
    learning_rate,
    make_optimizer,
    make_train_step,
)

__all__ = [
    "STOP_SIGNALS",
    "Checkpointer",
    "RunData",
    "RunLog",
    "StopRequests",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "TrainingInterrupted",
    "TrainingStopped",
    "Validation",
    "compiled_step",
    "compiled_val_loss",
    "config_from_checkpoint",
    "device_batch",
    "hyperparameters",
    "init_opt_state",
    "learning_rate",
    "make_optimizer",
    "make_train_step",
    "prepare_data",
    "restore_state",
    "signal_name",
    "stopped_message",
    "train",
]
