"""A training run's configuration: nested frozen dataclasses, stored once in every checkpoint.

``TrainConfig`` holds what a run is (data, method, length, batch, horizon, seed, ...) and five groups:
``model`` (the DiT's size), ``optim`` (AdamW, schedule, EMA), ``flow`` (noise scale, time distribution, loss
weights), ``sim`` (Φ's control law) and ``log`` (run directory, checkpoints, metrics, W&B). Each leaf field
carries its command-line flag and help in its metadata, so ``dynaflow train``'s flags, their help and their
defaults come from here (:func:`leaf_fields`); the original implementation's flat flags (``--lr``,
``--d-model``, ...) are the flags, and the dotted names (``--optim.lr``) are accepted too.

:meth:`TrainConfig.validate` checks every value's type and range and raises :class:`ConfigError` naming
the field (``optim.lr``); the CLI turns the field into its flag. :meth:`TrainConfig.from_flat` builds a
config from the flat names (``TrainConfig.from_flat(data="d.npz", d_model=128, lr=1e-3)``).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynaflow.robots.go2 import STATE_GROUPS

WANDB_MODES = ("online", "offline", "disabled")


class _Names(Sequence[str]):
    """The names a field accepts, read on first use from the module that defines them
    (:data:`dynaflow.flow.TIME_DISTRIBUTIONS`, :data:`dynaflow.methods.METHOD_NAMES`, ...): those modules
    import JAX, and building the ``dynaflow`` command's parser (every command's) must not."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def names(self) -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __getitem__(self, index):
        return self.names()[index]

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return repr(self.names())


TIME_DISTRIBUTIONS = _Names("dynaflow.flow", "TIME_DISTRIBUTIONS")
TRUNK_LOSSES = _Names("dynaflow.flow", "TRUNK_LOSSES")
METHOD_NAMES = _Names("dynaflow.methods", "METHOD_NAMES")


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range; ``field`` is its dotted path."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def opt(flag: str | None, help: str, default: Any = None, **check) -> Any:
    """A config field with its flag (None: no flag), help text and value checks (``gt``, ``ge``, ``lt``,
    ``le``, ``choices``, ``finite``)."""
    meta = {"flag": flag, "help": help, "check": check}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelConfig:
    """The DiT action predictor's size (:func:`dynaflow.methods.build_model`)."""

    d_model: int = opt("--d-model", "transformer width", 384, ge=1)
    n_heads: int = opt("--n-heads", "attention heads (must divide --d-model)", 6, ge=1)
    depth: int = opt("--depth", "DiT blocks", 3, ge=1)
    dropout: float = opt("--dropout", "dropout rate", 0.1, ge=0.0, lt=1.0)
    max_action: float = opt(
        "--max-action", "bound of the action output |u| (units of --action-scale)", 2.0, gt=0.0
    )
    mlp_ratio: float = opt(None, "MLP width / d_model in each block", 4.0, gt=0.0)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW on a linear-warmup + cosine schedule (to 1 % of ``lr``), clipping, and the weights' EMA."""

    lr: float = opt("--lr", "peak AdamW learning rate, warmup then cosine to 1%%", 1e-4, gt=0.0)
    weight_decay: float = opt("--weight-decay", "AdamW weight decay", 0.0, ge=0.0)
    ema_decay: float = opt("--ema-decay", "EMA decay of the weights", 0.995, ge=0.0, lt=1.0)
    warmup_steps: int | None = opt(
        "--warmup-steps",
        "learning-rate warmup in updates (default: 5%% of updates, at most 1000)",
        None,
        ge=0,
    )
    grad_clip: float = opt("--grad-clip", "global gradient-norm clip", 1.0, gt=0.0)


@dataclass(frozen=True)
class FlowConfig:
    """The flow: source noise, time distribution and the loss weights W."""

    sigma: float = opt("--sigma", "std of the source X0 ~ N(x0, sigma^2 I), normalised units", 1.0, gt=0.0)
    time_distribution: str = opt(
        "--time-dist", "flow time distribution", "uniform", choices=TIME_DISTRIBUTIONS
    )
    weights: dict = opt(
        "--weights", "loss weight per state group, e.g. joint_pos=2,base_quat=0.5 (unnamed groups: 1)", {}
    )
    trunk: str = opt(
        "--trunk-loss",
        "compare the trunk's velocities at every step, or by their mean over the window (where the trunk "
        "goes and turns, leaving its bobbing and rocking to the physics: for kinematic or motion-capture "
        "data)",
        "step",
        choices=TRUNK_LOSSES,
    )


@dataclass(frozen=True)
class SimConfig:
    """Φ's control law (:func:`dynaflow.physics.create_go2_rollout`)."""

    ctrl_dt: float = opt("--ctrl-dt", "control period in seconds", 0.02, gt=0.0)
    n_substeps: int = opt("--substeps", "physics steps per control step", 4, ge=1)
    action_scale: float = opt("--action-scale", "joint-target offset (rad) per unit action", 0.5, gt=0.0)
    solver: str = opt(
        "--solver",
        "Φ's contact solve: one-step (one Newton iteration, pyramidal cone: fast) or converged (elliptic "
        "cone, Newton to convergence, as the reference simulator at Φ's own step; slower)",
        "one-step",
        choices=("one-step", "converged"),
    )
    randomise: float = opt(
        "--randomise",
        "domain randomisation while training: each window rolls out in its own perturbed physics "
        "(friction, trunk mass and CoM, PD gains, torque limits, latency); 1 spans the transfer suite's "
        "worlds, 0 is off. Sampling and validation stay in the nominal model",
        0.0,
        ge=0.0,
        le=1.0,
    )

    def rollout(self):
        """Φ with this control law and contact solve (:func:`dynaflow.physics.create_go2_rollout`)."""
        from dynaflow.physics import create_go2_rollout

        return create_go2_rollout(
            ctrl_dt=self.ctrl_dt,
            n_substeps=self.n_substeps,
            action_scale=self.action_scale,
            solver=self.solver,
        )


@dataclass(frozen=True)
class LogConfig:
    """Where the run goes and what it writes."""

    save_dir: str = opt("--save-dir", "run directory: checkpoints and metrics.jsonl", "checkpoints")
    save_interval: int = opt("--save-interval", "keep a checkpoint epoch_NNNN every N epochs", 10, ge=1)
    save_every_minutes: float = opt(
        "--save-every-minutes",
        "also save `last` every N minutes of training, mid-epoch, so a kill loses at most that much (0: only "
        "at epoch ends)",
        10.0,
        ge=0.0,
        finite=True,
    )
    log_every: int = opt("--log-every", "a metrics.jsonl line every N updates", 10, ge=1)
    wandb: str = opt("--wandb", "Weights & Biases logging", "disabled", choices=WANDB_MODES)
    wandb_project: str = opt("--wandb-project", "W&B project", "dynaflow")
    wandb_name: str | None = opt("--wandb-name", "W&B run name", None)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored once in every checkpoint; ``--resume`` reads it)."""

    data: str = opt("--data", "demonstration NPZ (states (N, T, 37), optional conditionings, actions)", None)
    method: str = opt(
        "--method",
        "what to train: dynaflow, or a baseline in the same harness",
        "dynaflow",
        choices=METHOD_NAMES,
    )
    epochs: int = opt("--epochs", "epochs", 100, ge=1)
    batch: int = opt("--batch", "global batch size, split over all devices", 32, ge=1)
    horizon: int = opt("--horizon", "control steps H per window; windows hold H + 1 states", 10, ge=1)
    seed: int = opt("--seed", "seed of initialisation, split, data order and noise", 0, ge=0, lt=2**32)
    val_fraction: float = opt(
        "--val-fraction", "fraction of episodes held out for validation", 0.1, ge=0.0, lt=1.0
    )
    stride: int = opt("--stride", "step between window starts", 1, ge=1)
    chain: int = opt(
        "--chain",
        "windows per training sample (dynaflow): each after the first starts where the model's own rollout "
        "arrived, as when windows are chained at generation time (for data whose start states are not "
        "feasible: kinematic, motion capture)",
        1,
        ge=1,
    )
    rest_starts: float = opt(
        "--rest-starts",
        "fraction of training samples (dynaflow) whose first window starts from a settled stand, the "
        "demonstration moved there, as generation starts (for data that never starts at rest)",
        0.0,
        ge=0.0,
        le=1.0,
    )
    ease_in: float = opt(
        "--ease-in",
        "seconds over which a sample started from rest (--rest-starts) eases into the demonstration: "
        "heights, joints and orientation blend from the stand, velocities ramp up (for clips whose posture "
        "and speed a standing robot cannot take up at once)",
        0.0,
        ge=0.0,
    )
    steps_per_epoch: int | None = opt(
        "--steps-per-epoch", "cap on updates per epoch (default: one pass)", None, ge=1
    )
    max_steps: int | None = opt("--max-steps", "stop after this many updates in total", None, ge=1)
    time_budget_s: float | None = opt(
        "--time-budget", "stop after this many seconds of wall time (saves last)", None, gt=0.0
    )
    val_windows: int = opt("--val-windows", "validation windows scored each epoch", 256, ge=0)
    std_floor: str = opt(
        "--std-floor",
        "normaliser std floor: uniform (0.01 in every dimension) or physical (per state group: 2 cm, "
        "0.05 rad, 0.1 m/s, 0.25 rad/s, 1 rad/s; for kinematic or motion-capture data whose trunk barely "
        "moves)",
        "uniform",
        choices=("uniform", "physical"),
    )
    max_nonfinite: int = opt("--max-nonfinite", "stop after N consecutive non-finite updates", 20, ge=1)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    log: LogConfig = field(default_factory=LogConfig)

    # ---- building
    @classmethod
    def from_flat(cls, **values) -> TrainConfig:
        """A config from flat field names (``d_model=128, lr=1e-3``); unknown names raise ConfigError."""
        return cls().replace(**values)

    def replace(self, **values) -> TrainConfig:
        """A copy with flat-named fields replaced (``cfg.replace(lr=1e-3, epochs=5)``)."""
        leaves = leaf_fields()
        groups: dict[str, dict] = {}
        top: dict[str, Any] = {}
        for name, value in values.items():
            if name not in leaves:
                raise ConfigError(name, f"unknown configuration field; known: {', '.join(leaves)}")
            path = leaves[name].path
            if "." in path:
                group, leaf = path.split(".")
                groups.setdefault(group, {})[leaf] = value
            else:
                top[name] = value
        for group, changes in groups.items():
            top[group] = dataclasses.replace(getattr(self, group), **changes)
        return dataclasses.replace(self, **top)

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "train") -> TrainConfig:
        """The config stored in a checkpoint (nested, as :meth:`to_dict` writes it), validated; unknown keys
        are ignored (newer versions), a wrong value raises ConfigError with ``where`` in its path."""
        if not isinstance(d, Mapping):
            raise ConfigError(where, f"expected an object, got {type(d).__name__}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            value = d[f.name]
            sub = _GROUPS.get(f.name)
            if sub is not None:
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{where}.{f.name}", f"expected an object, got {type(value).__name__}")
                known = {g.name for g in dataclasses.fields(sub)}
                value = sub(**{k: v for k, v in value.items() if k in known})
            kwargs[f.name] = value
        config = cls(**kwargs)
        try:
            config.validate()
        except ConfigError as e:
            raise ConfigError(f"{where}.{e.field}", e.message) from None
        return config

    def to_dict(self) -> dict:
        """Nested plain data (JSON-ready)."""
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Every leaf value by its flat name."""
        return {name: self.get(leaf.path) for name, leaf in leaf_fields().items()}

    def get(self, path: str) -> Any:
        obj: Any = self
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj

    # ---- checking
    def validate(self) -> None:
        """Every field's type and range; raises :class:`ConfigError` naming the first bad field."""
        for leaf in leaf_fields().values():
            _check_value(leaf, self.get(leaf.path))
        if self.model.d_model % self.model.n_heads:
            raise ConfigError(
                "model.n_heads", f"{self.model.n_heads} does not divide d_model ({self.model.d_model})"
            )
        for name, value in self.flow.weights.items():
            if name not in STATE_GROUPS:
                raise ConfigError(
                    "flow.weights", f"unknown state group {name!r}; known: {', '.join(STATE_GROUPS)}"
                )
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError("flow.weights", f"group {name!r} needs a finite weight >= 0, got {value!r}")
        if self.flow.weights and all(self.flow.weights.get(g, 1.0) == 0 for g in STATE_GROUPS):
            raise ConfigError("flow.weights", "all state groups weigh 0")
        if self.ease_in > 0 and self.rest_starts == 0:
            raise ConfigError("ease_in", "eases samples that start from rest in: it needs --rest-starts > 0")
        for name, on in (("chain", self.chain > 1), ("rest_starts", self.rest_starts > 0)):
            if on and self.method != "dynaflow":
                raise ConfigError(
                    name, f"{name} needs a rollout of the model's actions (dynaflow), not {self.method}"
                )


_GROUPS = {"model": ModelConfig, "optim": OptimConfig, "flow": FlowConfig, "sim": SimConfig, "log": LogConfig}


@dataclass(frozen=True)
class Leaf:
    """One settable value: its flat name, dotted path, type, default, flag, help and checks."""

    name: str
    path: str
    type: Any
    default: Any
    flag: str | None
    help: str
    check: dict


_LEAVES: dict[str, Leaf] = {}


def leaf_fields() -> dict[str, Leaf]:
    """Every leaf of :class:`TrainConfig`, by flat name, in declaration order (groups after the top level)."""
    if not _LEAVES:
        for cls, prefix in [(TrainConfig, ""), *((c, f"{g}.") for g, c in _GROUPS.items())]:
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if f.name in _GROUPS and cls is TrainConfig:
                    continue
                default = f.default_factory() if f.default is dataclasses.MISSING else f.default
                meta = f.metadata
                _LEAVES[f.name] = Leaf(
                    f.name,
                    prefix + f.name,
                    hints[f.name],
                    default,
                    meta.get("flag"),
                    meta.get("help", ""),
                    dict(meta.get("check", {})),
                )
    return _LEAVES


def _describe(leaf: Leaf) -> str:
    base = typing.get_args(leaf.type) or (leaf.type,)
    kinds = [t for t in base if t is not type(None)]
    kind = {int: "an integer", float: "a number", str: "a string", dict: "an object"}.get(kinds[0], "a value")
    c = leaf.check
    parts = [kind]
    if "choices" in c:
        return "one of " + ", ".join(c["choices"])
    for key, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in c:
            parts.append(f"{sym} {c[key]:g}" if isinstance(c[key], float) else f"{sym} {c[key]}")
    return " ".join(parts)


def _check_value(leaf: Leaf, value: Any) -> None:
    base = typing.get_args(leaf.type) or (leaf.type,)
    optional = type(None) in base
    kinds = [t for t in base if t is not type(None)]
    if value is None:
        if optional or leaf.name == "data":
            return
        raise ConfigError(leaf.path, f"expected {_describe(leaf)}, got None")
    kind = kinds[0]
    ok = (
        (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (kind is str and isinstance(value, str))
        or (kind is dict and isinstance(value, dict))
    )
    if not ok:
        raise ConfigError(leaf.path, f"expected {_describe(leaf)}, got {value!r}")
    c = leaf.check
    if kind is float and not math.isfinite(value):
        raise ConfigError(leaf.path, f"expected a finite number, got {value!r}")
    bad = (
        ("choices" in c and value not in c["choices"])
        or ("gt" in c and not value > c["gt"])
        or ("ge" in c and not value >= c["ge"])
        or ("lt" in c and not value < c["lt"])
        or ("le" in c and not value <= c["le"])
    )
    if bad:
        raise ConfigError(leaf.path, f"expected {_describe(leaf)}, got {value!r}")


#: Presets of ``dynaflow train --preset``: ``paper`` is the original implementation's defaults (the
#: dataclass defaults); ``cpu`` is what the demo and the tour (README.md, docs/tour.md) train on a
#: laptop CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": dict(
        horizon=16,
        batch=32,
        d_model=128,
        n_heads=4,
        depth=2,
        dropout=0.0,
        lr=1e-3,
        ema_decay=0.99,
        steps_per_epoch=200,
        warmup_steps=100,
        val_windows=64,
    ),
}
