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
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import traverse_util

from dynaflow.config import ConfigError, TrainConfig
from dynaflow.data.windows import Normalizer
from dynaflow.fileio import FileProblem, read_npz
from dynaflow.methods import MODEL_FIELDS, model_from_config
from dynaflow.robots.go2 import ACTION_DIM, STATE_DIM
from dynaflow.runtime import test_event

FORMAT = "dynaflow-checkpoint"
FORMAT_VERSION = 2
ARRAY_FILES = ("params.npz", "ema_params.npz", "opt_state.npz")
RUN_FILES = ("metrics.jsonl",)


class CheckpointError(ValueError):
    """A missing, truncated or incompatible checkpoint; the message names the path and the problem."""


def versions() -> dict[str, str]:
    """Versions of the packages that define what a checkpoint means."""
    import flax
    import mujoco
    import optax

    from dynaflow.version import __version__

    return {
        "dynaflow": __version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "mujoco": mujoco.__version__,
    }


# --------------------------------------------------------------------------------------------
# What config.json holds


def checkpoint_meta(
    config: TrainConfig,
    cond_dim: int | None,
    normalizer: Normalizer,
    step: int = 0,
    epoch: int = 0,
    best_val_loss: float | None = None,
    key: list[int] | None = None,
    skipped_updates: int = 0,
    nonfinite: int = 0,
    epoch_losses: list[float] | None = None,
) -> dict:
    """The ``config.json`` content of a checkpoint of a run with ``config`` (hashes and versions are
    added when it is saved)."""
    return {
        "train": config.to_dict(),
        "dims": {"state_dim": STATE_DIM, "action_dim": ACTION_DIM, "cond_dim": cond_dim},
        "normalizer": normalizer.to_dict(),
        "progress": {
            "step": int(step),
            "epoch": int(epoch),
            "best_val_loss": best_val_loss,
            "key": key,
            "skipped_updates": int(skipped_updates),
            "nonfinite": int(nonfinite),
            **({} if epoch_losses is None else {"epoch_losses": [float(v) for v in epoch_losses]}),
        },
    }


def model_meta(model, horizon: int, normalizer: Normalizer, sigma: float = 1.0, step: int = 0) -> dict:
    """:func:`checkpoint_meta` for a model built by hand (``create_action_predictor``) rather than trained
    by :func:`dynaflow.train.train`."""
    sizes = {
        name: getattr(model, name)
        for name in ("d_model", "n_heads", "depth", "dropout", "max_action", "mlp_ratio")
    }
    config = TrainConfig.from_flat(
        method=model.method.name, horizon=int(horizon), sigma=float(sigma), **sizes
    )
    return checkpoint_meta(config, model.cond_dim, normalizer, step=step)


def _err(cfg_path: Path, key: str, message: str) -> CheckpointError:
    return CheckpointError(f"{cfg_path}: key '{key}': {message}")


def _upgrade_v1(cfg_path: Path, config: dict) -> dict:
    """A version 1 ``config.json`` (``model``, ``rollout``, ``sigma`` and a flat ``train``) in version 2's
    layout."""
    model = config.get("model")
    if not isinstance(model, dict):
        raise _err(cfg_path, "model", f"expected an object, got {type(model).__name__}")
    flat = dict(config.get("train") or {}) if isinstance(config.get("train"), dict) else {}
    for name in ("d_model", "n_heads", "depth", "dropout", "max_action", "mlp_ratio"):
        if name in model:
            flat[name] = model[name]
    flat["method"] = model.get("method", flat.get("method", "dynaflow"))
    flat["horizon"] = model.get("horizon", flat.get("horizon", 16))
    if "sigma" in config:
        flat["sigma"] = config["sigma"]
    rollout = config.get("rollout") or {}
    if isinstance(rollout, dict):
        for name in ("ctrl_dt", "n_substeps", "action_scale"):
            if name in rollout:
                flat[name] = rollout[name]
    from dynaflow.config import leaf_fields

    leaves = leaf_fields()
    nested: dict = {}
    for name, value in flat.items():
        if name in leaves:
            path = leaves[name].path.split(".")
            (nested.setdefault(path[0], {}) if len(path) == 2 else nested)[path[-1]] = value
    return {
        "format": FORMAT,
        "format_version": 1,
        "train": nested,
        "dims": {
            "state_dim": model.get("state_dim", STATE_DIM),
            "action_dim": model.get("action_dim", ACTION_DIM),
            "cond_dim": model.get("cond_dim"),
        },
        "normalizer": config.get("normalizer"),
        "progress": {
            "step": config.get("step"),
            "epoch": config.get("epoch", 0),
            "best_val_loss": config.get("best_val_loss"),
            "key": config.get("key"),
            "skipped_updates": config.get("skipped_updates", 0),
        },
        "versions": config.get("versions", {}),
        "files": config.get("files", {}),
    }


def _int(cfg_path, key, value, low=0, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        want = f"an integer >= {low}" + (" or null" if optional else "")
        raise _err(cfg_path, key, f"expected {want}, got {value!r}")
    return value


def _validate_meta(cfg_path: Path, config: dict) -> dict:
    """Check every key a load uses; return the version-2 layout with ``train_config`` (a TrainConfig)."""
    if config.get("format_version") == 1:
        config = _upgrade_v1(cfg_path, config)
    for key in ("train", "dims", "normalizer", "progress"):
        if key not in config:
            raise _err(cfg_path, key, "missing")
        if not isinstance(config[key], dict):
            raise _err(cfg_path, key, f"expected an object, got {type(config[key]).__name__}")
    files = config.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise _err(cfg_path, "files", "expected an object mapping file names to SHA-256 hashes")
    unknown = set(files) - set(ARRAY_FILES)
    if unknown:
        raise _err(
            cfg_path, "files", f"unexpected file(s) {sorted(unknown)}; known: {', '.join(ARRAY_FILES)}"
        )
    dims = config["dims"]
    _int(cfg_path, "dims.cond_dim", dims.get("cond_dim"), low=1, optional=True)
    for name, want in (("state_dim", STATE_DIM), ("action_dim", ACTION_DIM)):
        if dims.get(name, want) != want:
            raise _err(cfg_path, f"dims.{name}", f"this DynaFlow's Go2 has {want}, got {dims.get(name)!r}")
    progress = config["progress"]
    _int(cfg_path, "progress.step", progress.get("step"))
    _int(cfg_path, "progress.epoch", progress.get("epoch", 0))
    _int(cfg_path, "progress.skipped_updates", progress.get("skipped_updates", 0))
    _int(cfg_path, "progress.nonfinite", progress.get("nonfinite", 0))
    losses = progress.get("epoch_losses", [])
    if not isinstance(losses, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in losses
    ):
        raise _err(cfg_path, "progress.epoch_losses", "expected a list of finite numbers")
    best = progress.get("best_val_loss")
    if best is not None and (isinstance(best, bool) or not isinstance(best, int | float)):
        raise _err(cfg_path, "progress.best_val_loss", f"expected a number or null, got {best!r}")
    key = progress.get("key")
    if key is not None and (
        not isinstance(key, list) or not all(isinstance(v, int) and 0 <= v < 2**32 for v in key)
    ):
        raise _err(cfg_path, "progress.key", f"expected a list of unsigned 32-bit integers, got {key!r}")
    try:
        config["normalizer_obj"] = Normalizer.from_dict(config["normalizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise _err(cfg_path, "normalizer", f"invalid ({e})") from e
    try:
        config["train_config"] = TrainConfig.from_dict(config["train"])
    except ConfigError as e:
        raise _err(cfg_path, e.field, e.message) from e
    except TypeError as e:
        raise _err(cfg_path, "train", f"invalid ({e})") from e
    return config


def model_kwargs(config: Mapping) -> dict:
    """Keyword arguments of :func:`dynaflow.methods.create_action_predictor` (sizes, method, cond_dim,
    horizon) for a validated ``config.json`` (what ``load_checkpoint(...)["model_config"]`` holds)."""
    train: TrainConfig = config["train_config"]
    kwargs = {name: getattr(train.model, name) for name in MODEL_FIELDS if hasattr(train.model, name)}
    kwargs.update(
        method=train.method,
        horizon=train.horizon,
        cond_dim=config["dims"].get("cond_dim"),
        state_dim=config["dims"].get("state_dim", STATE_DIM),
        action_dim=config["dims"].get("action_dim", ACTION_DIM),
    )
    return kwargs


# --------------------------------------------------------------------------------------------
# Saving and recovering


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


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _siblings(path: Path, kind: str) -> list[Path]:
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{path.name}.{kind}-*"), key=lambda p: p.stat().st_mtime)


def _complete(path: Path) -> bool:
    """A checkpoint directory whose config.json parses and whose array files match their hashes."""
    try:
        config = json.loads((path / "config.json").read_text())
        files = config.get("files") or {}
        return bool(files) and all(_sha256(path / name) == sha for name, sha in files.items())
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def recover(path: str | Path) -> str | None:
    """Finish or undo a save of ``path`` that a kill interrupted, and remove stale temporaries.

    A save writes ``.NAME.tmp-*``, moves an existing ``NAME`` to ``.NAME.old-*``, renames the temporary to
    ``NAME`` and deletes the old one. Killed between the two renames, ``NAME`` is missing: the newest
    complete temporary (or else the old checkpoint) becomes ``NAME`` again. Returns what was done, or None
    when there was nothing to do."""
    path = Path(path)
    tmps, olds = _siblings(path, "tmp"), _siblings(path, "old")
    if not tmps and not olds:
        return None
    done = None
    if not path.exists():
        for candidate, what in [
            *((t, "the interrupted save") for t in reversed(tmps)),
            *((o, "the previous checkpoint") for o in reversed(olds)),
        ]:
            if _complete(candidate):
                os.rename(candidate, path)
                _fsync_dir(path.parent)
                done = f"{path}: restored from {what} ({candidate.name}) after an interrupted save"
                break
    for stale in [*tmps, *olds]:
        if stale.exists():
            shutil.rmtree(stale, ignore_errors=True)
            done = done or f"{path}: removed {stale.name} left by an interrupted save"
    if done:
        warnings.warn(done, stacklevel=2)
    return done


def save_checkpoint(
    path: str | Path,
    params: Mapping,
    ema_params: Mapping,
    config: Mapping[str, Any],
    opt_state: Any = None,
) -> Path:
    """Write a checkpoint directory at ``path`` atomically (replacing an existing one).

    ``params`` / ``ema_params`` are the model's full variable dicts; ``config`` is the ``config.json``
    content from :func:`checkpoint_meta` (or :func:`model_meta`); ``opt_state`` is any pytree (saved as its
    leaves). Non-finite weights are refused: a checkpoint is always usable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    flat = {"params.npz": _flatten(params), "ema_params.npz": _flatten(ema_params)}
    for fname, arrays in flat.items():
        for name, value in arrays.items():
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                raise CheckpointError(f"{path / fname}: weight '{name}' is not finite; refusing to save it")
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for fname, arrays in flat.items():
            _write_npz(tmp / fname, arrays)
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
            json.dump(meta, f, indent=2, sort_keys=True, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        test_event("save", path.name)
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
            test_event("rename", path.name)  # the moment `path` is missing: recover() restores it
            os.rename(tmp, path)
            _fsync_dir(path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
            _fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# Loading


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


def resolve_checkpoint(path: str | Path, prefer: tuple[str, ...] = ("last",)) -> Path:
    """``path`` when it is a checkpoint directory; for a run directory, its first checkpoint in ``prefer``
    that exists (``path`` unchanged otherwise, so loading it names what is missing). An interrupted save of
    a preferred checkpoint is recovered first."""
    path = Path(path)
    if not (path / "config.json").exists() and path.is_dir():
        for name in prefer:
            recover(path / name)
            if (path / name / "config.json").exists():
                return path / name
    return path


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


# --------------------------------------------------------------------------------------------
# Run directories


def run_contents(run_dir: str | Path) -> list[str]:
    """What of an earlier run a directory holds: ``metrics.jsonl`` and checkpoint directories (or the
    leftovers of an interrupted save). Empty for a missing or unrelated directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    for p in sorted(run_dir.iterdir()):
        if p.is_dir() and (p / "config.json").exists():
            found.append(p.name)
        elif p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name) and p.is_dir():
            found.append(p.name)
    return found


def latest_checkpoint(run_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The checkpoint of ``run_dir`` with the most updates that loads completely (``--resume auto``),
    and notes, one line each: a checkpoint skipped because it does not load (damaged, truncated,
    incomplete), an interrupted save recovered.

    Interrupted saves are recovered first (:func:`recover`). Ties go to ``last``, then the newest file.
    ``(None, skipped)`` when the directory is missing, empty or holds no loadable checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None, []
    names = set()
    for p in run_dir.iterdir():
        if p.name.startswith(".") and (".tmp-" in p.name or ".old-" in p.name):
            names.add(p.name[1:].rsplit(".tmp-" if ".tmp-" in p.name else ".old-", 1)[0])
        elif p.is_dir():
            names.add(p.name)
    candidates = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in sorted(names):
            recover(run_dir / name)
    skipped = [str(w.message) for w in caught]
    for name in sorted(names):
        path = run_dir / name
        if not (path / "config.json").is_file():
            continue
        try:
            step = read_config(path)["progress"]["step"]
        except CheckpointError as e:
            skipped.append(f"skipping {path}: {e}")
            continue
        candidates.append((step, name == "last", (path / "config.json").stat().st_mtime, path))
    for *_, path in sorted(candidates, key=lambda c: c[:3], reverse=True):
        try:
            load_checkpoint(path, with_opt_state=True)
        except CheckpointError as e:
            skipped.append(f"skipping {path}: {e}")
            continue
        return path, skipped
    return None, skipped


def remove_run(run_dir: str | Path) -> None:
    """Delete what :func:`run_contents` lists (``--overwrite``); anything else in the directory stays."""
    run_dir = Path(run_dir)
    for name in run_contents(run_dir):
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()
