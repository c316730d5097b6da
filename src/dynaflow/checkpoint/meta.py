"""What a checkpoint's ``config.json`` holds: the format's constants, the content a save writes
(:func:`checkpoint_meta`, :func:`model_meta`), and the validation a load runs on it (version 1 upgraded to
version 2's layout), every problem one line naming the file and key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import jax

from dynaflow.config import ConfigError, TrainConfig
from dynaflow.data.windows import Normalizer
from dynaflow.methods import MODEL_FIELDS
from dynaflow.robots.go2 import ACTION_DIM, STATE_DIM

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
