"""Reading a checkpoint back: its validated ``config.json`` and its weights (hash-checked, read without
pickle, checked against the model the config describes, finite); every problem is one line
(:class:`CheckpointError`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from dynaflow.checkpoint.meta import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    _validate_meta,
    model_kwargs,
)
from dynaflow.checkpoint.save import _sha256, _unflatten, recover
from dynaflow.config import TrainConfig
from dynaflow.fileio import FileProblem, read_npz
from dynaflow.methods import model_from_config


def _member(path: Path, name: str) -> Path:
    """``path / name``, refusing a symbolic link or anything that resolves outside the checkpoint."""
    p = path / name
    if p.is_symlink() or (p.exists() and p.resolve().parent != path.resolve()):
        raise CheckpointError(
            f"{p}: is a symbolic link; a checkpoint's files must be regular files inside it"
        )
    return p


def _read_weights(path: Path, name: str, expected_sha: str | None) -> dict[str, np.ndarray]:
    p = _member(path, name)
    if not p.is_file():
        raise CheckpointError(f"{p}: missing (the checkpoint is incomplete)")
    if expected_sha is not None and _sha256(p) != expected_sha:
        raise CheckpointError(f"{p}: contents do not match the hash in config.json (truncated or replaced)")
    try:
        return read_npz(p, "weights file")
    except FileProblem as e:
        raise CheckpointError(str(e)) from e


def read_config(path: str | Path) -> dict:
    """The validated ``config.json`` of a checkpoint directory, in version 2's layout (plus
    ``train_config``, a :class:`~dynaflow.config.TrainConfig`, and ``normalizer_obj``)."""
    path = Path(path)
    if not path.exists():
        recover(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.is_file():
        raise CheckpointError(
            f"{path}: a checkpoint is a directory with config.json and .npz weights, not a file"
        )
    cfg_path = _member(path, "config.json")
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing (not a DynaFlow checkpoint directory)")
    try:
        with open(cfg_path) as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from e
    except OSError as e:
        raise CheckpointError(f"{cfg_path}: cannot be read ({e.strerror})") from e
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{cfg_path}: not a DynaFlow checkpoint (holds a {type(config).__name__}, not an object)"
        )
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: not a DynaFlow checkpoint (format {config.get('format')!r})")
    if config.get("format_version") not in (1, FORMAT_VERSION):
        raise CheckpointError(
            f"{cfg_path}: format_version {config.get('format_version')!r} is not supported "
            f"(this DynaFlow reads versions 1 and {FORMAT_VERSION})"
        )
    return _validate_meta(cfg_path, config)


def load_checkpoint(path: str | Path, with_opt_state: bool = False) -> dict[str, Any]:
    """Load a checkpoint directory.

    Returns a dict with ``params`` and ``ema_params`` (full variable dicts for ``model.apply``),
    ``model_config`` (the keyword arguments of ``create_action_predictor`` that rebuild its model:
    method, sizes, ``cond_dim``, ``horizon``), ``config`` (the validated ``config.json``), ``train_config``,
    ``cond_dim``, ``normalizer`` (a :class:`~dynaflow.data.Normalizer`), ``sigma``, ``step`` and ``progress``;
    with ``with_opt_state`` also ``opt_state_leaves`` (a list, or None when the checkpoint has none). The
    weights are checked against the model config (names and shapes) and must be finite."""
    path = Path(path)
    config = read_config(path)
    cfg_path = path / "config.json"
    hashes = config.get("files", {})
    params = _unflatten(_read_weights(path, "params.npz", hashes.get("params.npz")))
    ema = _unflatten(_read_weights(path, "ema_params.npz", hashes.get("ema_params.npz")))
    kwargs = model_kwargs(config)
    try:
        model = model_from_config(kwargs)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: key 'train.model' is invalid ({e})") from e
    _check_against_model(path, model, kwargs["horizon"], params, "params.npz")
    _check_against_model(path, model, kwargs["horizon"], ema, "ema_params.npz")
    train_config: TrainConfig = config["train_config"]
    out = {
        "params": params,
        "ema_params": ema,
        "model_config": kwargs,
        "config": config,
        "train_config": train_config,
        "cond_dim": kwargs["cond_dim"],
        "normalizer": config["normalizer_obj"],
        "sigma": train_config.flow.sigma,
        "step": int(config["progress"]["step"]),
        "progress": config["progress"],
    }
    if with_opt_state:
        if (path / "opt_state.npz").exists():
            leaves = _read_weights(path, "opt_state.npz", hashes.get("opt_state.npz"))
            out["opt_state_leaves"] = [leaves[k] for k in sorted(leaves)]
        else:
            out["opt_state_leaves"] = None
    return out


def _check_against_model(path: Path, model, horizon: int, variables: Mapping, fname: str) -> None:
    cond = None if model.cond_dim is None else jax.ShapeDtypeStruct((1, model.cond_dim), np.float32)
    try:
        expected = jax.eval_shape(
            model.init,
            jax.random.PRNGKey(0),
            jax.ShapeDtypeStruct((1, horizon + 1, model.state_dim), np.float32),
            jax.ShapeDtypeStruct((1,), np.float32),
            cond,
        )
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path / 'config.json'}: key 'train.model' is invalid ({e})") from e
    want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(dict(expected), sep="/").items()}
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    got = {k: tuple(np.shape(v)) for k, v in flat.items()}
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{path / fname}: weights do not match the model in config.json ({what})")
    for k, shape in want.items():
        if got[k] != shape:
            raise CheckpointError(
                f"{path / fname}: weight '{k}' has shape {got[k]}, the model in config.json needs {shape}"
            )
    for k, value in flat.items():
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointError(f"{path / fname}: weight '{k}' has dtype {arr.dtype}, expected floats")
        if not np.all(np.isfinite(arr)):
            raise CheckpointError(
                f"{path / fname}: weight '{k}' holds NaN or inf (the run diverged); this checkpoint "
                "cannot be used"
            )
