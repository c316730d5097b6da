"""Checkpoints: a directory of ``config.json`` + NumPy ``.npz`` weights (no pickle), written atomically.

Layout of a checkpoint directory::

    config.json       format, the run's config (stored once), data dimensions, normaliser, progress,
                      package versions, file hashes
    params.npz        the model variables (``params/...`` and ``normalizer/...``), flattened by path
    ema_params.npz    the same, EMA weights
    opt_state.npz     optional: optimiser state leaves (``leaf_00000`` ...), to resume training

``config.json`` (format version 2)::

    {"format": "dynaflow-checkpoint", "format_version": 2,
     "train": {...TrainConfig, nested: model, optim, flow, sim, log...},
     "dims": {"state_dim": 37, "action_dim": 12, "cond_dim": 7 or null},
     "normalizer": {"mean": [...], "std": [...]},
     "progress": {"step", "epoch", "best_val_loss", "key", "skipped_updates", "nonfinite",
                  "epoch_losses" (an unfinished epoch's losses so far)},
     "versions": {...}, "files": {"params.npz": "<sha256>", ...}}

Version 1 checkpoints (model and rollout settings stored beside a flat training config) still load.

Safety: a checkpoint is written to a hidden temporary directory next to its destination and renamed into
place; replacing an existing one moves the old one aside first, so a kill at any moment leaves either the
old or the new checkpoint complete, and the next load or save of that name puts it back automatically
(:func:`recover`) and removes stale temporaries. Every array file's SHA-256 is checked on load; files are
read with ``allow_pickle=False``; a member that is a symbolic link, or weights that are not finite, are
refused. Every problem is one line (:class:`CheckpointError`) naming the file and key.

The package by concern: :mod:`~dynaflow.checkpoint.meta` (what ``config.json`` holds and its validation),
:mod:`~dynaflow.checkpoint.save` (the atomic save and :func:`recover`), :mod:`~dynaflow.checkpoint.load`
(reading and checking a checkpoint) and :mod:`~dynaflow.checkpoint.runs` (run directories).
"""

from dynaflow.checkpoint.load import load_checkpoint, read_config
from dynaflow.checkpoint.meta import (
    ARRAY_FILES,
    FORMAT,
    FORMAT_VERSION,
    RUN_FILES,
    CheckpointError,
    checkpoint_meta,
    model_kwargs,
    model_meta,
    versions,
)
from dynaflow.checkpoint.runs import latest_checkpoint, remove_run, resolve_checkpoint, run_contents
from dynaflow.checkpoint.save import recover, save_checkpoint

__all__ = [
    "ARRAY_FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "RUN_FILES",
    "CheckpointError",
    "checkpoint_meta",
    "latest_checkpoint",
    "load_checkpoint",
    "model_kwargs",
    "model_meta",
    "read_config",
    "recover",
    "remove_run",
    "resolve_checkpoint",
    "run_contents",
    "save_checkpoint",
    "versions",
]
