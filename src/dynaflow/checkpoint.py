"""Checkpoints: a directory of ``config.json`` + NumPy ``.npz`` weights (no pickle), written atomically.

Layout of a checkpoint directory::

    config.json       format, model / rollout / training config, normaliser, step, versions, file hashes
    params.npz        the model variables (``params/...`` and ``normalizer/...``), flattened by path
    ema_params.npz    the same, EMA weights
    opt_state.npz     optional: optimiser state leaves (``leaf_00000`` ...), to resume training

A checkpoint is written to a hidden temporary directory next to its destination and renamed into
place, so an interrupted save never leaves a half-written checkpoint under the final name. Every
array file's SHA-256 is recorded in ``config.json`` and checked on load (a truncated or swapped file
is named in the error).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from dynaflow.data import Normalizer

FORMAT = "dynaflow-checkpoint"
FORMAT_VERSION = 1
ARRAY_FILES = ("params.npz", "ema_params.npz", "opt_state.npz")


class CheckpointError(ValueError):
    """A missing, truncated or incompatible checkpoint; the message names the path and the problem."""


def versions() -> dict[str, str]:
    """Versions of the packages that define what a checkpoint means."""
    import flax
    import mujoco
    import optax

    from dynaflow import __version__

    return {
        "dynaflow": __version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "mujoco": mujoco.__version__,
    }


def _flatten(tree: Mapping) -> dict[str, np.ndarray]:
    flat = traverse_util.flatten_dict(jax.device_get(dict(tree)), sep="/")
    return {k: np.asarray(v) for k, v in flat.items()}


def _unflatten(arrays: Mapping[str, np.ndarray]) -> dict:
    return traverse_util.unflatten_dict(dict(arrays), sep="/")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    path: str | Path,
    params: Mapping,
    ema_params: Mapping,
    config: Mapping[str, Any],
    opt_state: Any = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing an existing one).

    ``params`` / ``ema_params`` are the model's full variable dicts; ``config`` is JSON-serialisable and
    should hold ``model``, ``rollout``, ``normalizer`` (``Normalizer.to_dict()``), ``step`` and whatever
    training state a resume needs; ``opt_state`` is any pytree (saved as its leaves)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_npz(tmp / "params.npz", _flatten(params))
        _write_npz(tmp / "ema_params.npz", _flatten(ema_params))
        if opt_state is not None:
            leaves = jax.device_get(jax.tree.leaves(opt_state))
            _write_npz(tmp / "opt_state.npz", {f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(leaves)})
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            **dict(config),
            "versions": versions(),
            "files": {name: _sha256(tmp / name) for name in ARRAY_FILES if (tmp / name).exists()},
        }
        with open(tmp / "config.json", "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _read_npz(path: Path, expected_sha: str | None) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (the checkpoint is incomplete)")
    if expected_sha is not None and _sha256(path) != expected_sha:
        raise CheckpointError(
            f"{path}: contents do not match the hash in config.json (truncated or replaced)"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e})") from e


def resolve_checkpoint(path: str | Path, prefer: tuple[str, ...] = ("last",)) -> Path:
    """``path`` when it is a checkpoint directory; for a run directory, its first checkpoint in ``prefer``
    that exists (``path`` unchanged otherwise, so loading it names what is missing)."""
    path = Path(path)
    if not (path / "config.json").exists():
        for name in prefer:
            if (path / name / "config.json").exists():
                return path / name
    return path


def read_config(path: str | Path) -> dict:
    """The validated ``config.json`` of a checkpoint directory."""
    path = Path(path)
    if not path.exists():
        hint = ""
        leftovers = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.exists() else []
        if leftovers:
            hint = f" (an interrupted save left {leftovers[-1]}: rename it to {path.name})"
        raise CheckpointError(f"{path}: no such checkpoint{hint}")
    if path.is_file():
        raise CheckpointError(
            f"{path}: a checkpoint is a directory with config.json and .npz weights, not a file"
        )
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path}: missing (not a DynaFlow checkpoint directory)")
    try:
        with open(cfg_path) as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({e})") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: not a DynaFlow checkpoint (format {config.get('format')!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{cfg_path}: format_version {config.get('format_version')} is not supported "
            f"(this DynaFlow reads version {FORMAT_VERSION})"
        )
    for key in ("model", "normalizer", "step"):
        if key not in config:
            raise CheckpointError(f"{cfg_path}: key '{key}' missing")
    return config


def load_checkpoint(path: str | Path, with_opt_state: bool = False) -> dict[str, Any]:
    """Load a checkpoint directory.

    Returns a dict with ``params`` and ``ema_params`` (full variable dicts for ``model.apply``),
    ``config``, ``cond_dim``, ``normalizer`` (a :class:`~dynaflow.data.Normalizer`) and ``step``; with
    ``with_opt_state`` also ``opt_state_leaves`` (a list, or None when the checkpoint has none). The
    weights are checked against the model config (names and shapes)."""
    path = Path(path)
    config = read_config(path)
    hashes = config.get("files", {})
    params = _unflatten(_read_npz(path / "params.npz", hashes.get("params.npz")))
    ema = _unflatten(_read_npz(path / "ema_params.npz", hashes.get("ema_params.npz")))
    try:
        normalizer = Normalizer.from_dict(config["normalizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / 'config.json'}: key 'normalizer' is invalid ({e})") from e
    _check_against_model(path, config["model"], params, "params.npz")
    _check_against_model(path, config["model"], ema, "ema_params.npz")
    out = {
        "params": params,
        "ema_params": ema,
        "config": config,
        "cond_dim": config["model"].get("cond_dim"),
        "normalizer": normalizer,
        "step": int(config["step"]),
    }
    if with_opt_state:
        if (path / "opt_state.npz").exists():
            leaves = _read_npz(path / "opt_state.npz", hashes.get("opt_state.npz"))
            out["opt_state_leaves"] = [leaves[k] for k in sorted(leaves)]
        else:
            out["opt_state_leaves"] = None
    return out


def _check_against_model(path: Path, model_cfg: Mapping, variables: Mapping, fname: str) -> None:
    from dynaflow.model import ActionPredictor, model_kwargs

    try:
        kwargs = model_kwargs(model_cfg)
        model = ActionPredictor(**kwargs)
        horizon = int(model_cfg.get("horizon", 4))
        cond = (
            None if kwargs["cond_dim"] is None else jax.ShapeDtypeStruct((1, kwargs["cond_dim"]), np.float32)
        )
        expected = jax.eval_shape(
            model.init,
            jax.random.PRNGKey(0),
            jax.ShapeDtypeStruct((1, horizon + 1, kwargs["state_dim"]), np.float32),
            jax.ShapeDtypeStruct((1,), np.float32),
            cond,
        )
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path / 'config.json'}: key 'model' is invalid ({e})") from e
    want = {k: tuple(v.shape) for k, v in _flatten_shapes(expected).items()}
    got = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(dict(variables), sep="/").items()}
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


def _flatten_shapes(tree) -> dict:
    return traverse_util.flatten_dict(jax.tree.map(lambda s: s, dict(tree)), sep="/")
