"""``dynaflow train``: its flags are generated from :class:`dynaflow.config.TrainConfig` (help and defaults
included), so a config field and its flag cannot drift apart."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path

from dynaflow.cli.common import add_command, parse_floats


def _parse_weights(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(
                f"expected group=value pairs like joint_pos=2,base_pos=1, got {part!r}"
            )
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name.strip()!r} needs a number, got {value!r}") from None
    return out


def _typed(kind, flag: str):
    """argparse type for a config field: ints, finite floats, strings; weights as ``group=value,...``."""
    if kind is dict:
        return _parse_weights
    if kind is int:

        def parse_int(text: str) -> int:
            try:
                return int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None

        return parse_int
    if kind is float:

        def parse_float(text: str) -> float:
            try:
                return float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None

        return parse_float
    return str


def _with_default(help_text: str, default) -> str:
    """A flag's help with its default, unless the help already says what the default is."""
    if "(default" in help_text:
        return help_text
    return f"{help_text} (default {default})" if default is not None else f"{help_text} (default: none)"


def flag_of(field: str) -> str:
    """The flag of a config field (``optim.lr`` -> ``--lr``); the dotted name when it has none."""
    from dynaflow.config import leaf_fields

    for leaf in leaf_fields().values():
        if field in (leaf.path, leaf.name) or field.endswith("." + leaf.path):
            return leaf.flag or f"--{leaf.path}"
    return field


def add_parser(sub) -> None:
    from dynaflow.config import PRESETS, leaf_fields

    p = add_command(
        sub,
        "train",
        "train DynaFlow (or a baseline) on state-only demonstrations",
        "Train on a demonstration NPZ, or continue a run with --resume. Defaults are the original "
        "implementation's (--preset paper: d_model 384, H 10, lr 1e-4), sized for a GPU; on a laptop CPU use "
        "--preset cpu (the demo's size: d_model 128, 4 heads, depth 2, H 16, lr 1e-3). Explicit flags win "
        "over a preset. Each flag is also accepted under its dotted config name (--optim.lr).",
    )
    groups = {
        "": p.add_argument_group("run"),
        "model": p.add_argument_group("model (the DiT's size)"),
        "optim": p.add_argument_group("optimiser"),
        "flow": p.add_argument_group("flow and loss"),
        "sim": p.add_argument_group("simulator (the control law)"),
        "log": p.add_argument_group("output and logging"),
    }
    for name, leaf in leaf_fields().items():
        if leaf.flag is None:
            continue
        group = leaf.path.split(".")[0] if "." in leaf.path else ""
        kinds = [t for t in (typing.get_args(leaf.type) or (leaf.type,)) if t is not type(None)]
        default = "required unless --resume" if name == "data" else leaf.default
        if isinstance(default, dict):
            default = "all 1"
        flags = [leaf.flag] + ([f"--{leaf.path}"] if f"--{leaf.path}" != leaf.flag else [])
        groups[group].add_argument(
            *flags,
            dest=name,
            type=_typed(kinds[0], leaf.flag),
            default=None,
            metavar=name.upper(),
            help=_with_default(leaf.help, default),
        )
    g = groups[""]
    g.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help="a set of defaults: paper (the original implementation's) or cpu (the demo's)",
    )
    g.add_argument(
        "--resume",
        default=None,
        help="continue a run exactly from a checkpoint (or a run directory's last); it keeps writing to that "
        "run's directory unless --save-dir is given. --resume auto --save-dir D: continue D's newest "
        "checkpoint that loads, or start a new run when D holds none (the same command for a first start "
        "and every requeue of a cluster job)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run in --save-dir (its checkpoints and metrics.jsonl)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress output")
    d = p.add_argument_group(
        "several processes / hosts",
        "run the same command in every process; --batch is the global batch, process 0 writes the files",
    )
    d.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run whose layout JAX detects (SLURM, Open MPI, Kubernetes...)",
    )
    d.add_argument("--coordinator", default=None, help="HOST:PORT of process 0 (explicit layout)")
    d.add_argument("--num-processes", type=int, default=None, help="number of processes (explicit layout)")
    d.add_argument("--process-id", type=int, default=None, help="this process's index, 0 .. N-1")
    d.add_argument(
        "--local-device-ids",
        default=None,
        help="the local devices this process uses, e.g. 0,1 (default: all)",
    )
    p.set_defaults(func=run)


def _join_processes(args) -> None:
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if args.local_device_ids is not None and not args.distributed and all(v is None for v in explicit):
        raise ValueError("--local-device-ids needs --coordinator (explicit layout) or --distributed")
    if args.distributed or any(v is not None for v in explicit):
        from dynaflow import distributed

        local_ids = None
        if args.local_device_ids is not None:
            local_ids = [int(v) for v in parse_floats(args.local_device_ids, "--local-device-ids")]
        distributed.initialize(args.coordinator, args.num_processes, args.process_id, local_ids)


def config_from_args(args: argparse.Namespace):
    """The run's :class:`~dynaflow.config.TrainConfig` and the checkpoint to resume (or None): a preset, then
    the flags given; with ``--resume``, the stored config with the flags given on top, writing to the
    resumed run's own directory unless ``--save-dir`` is given."""
    from dynaflow.checkpoint import resolve_checkpoint
    from dynaflow.config import PRESETS, TrainConfig, leaf_fields
    from dynaflow.train import config_from_checkpoint

    given = {name: getattr(args, name) for name in leaf_fields() if getattr(args, name, None) is not None}
    if args.resume == "auto":
        return _auto_resume(args, given)
    if args.resume:
        if args.preset:
            raise ValueError("--preset: not with --resume (the run's config is stored in its checkpoint)")
        if args.overwrite:
            raise ValueError("--overwrite: not with --resume (a resumed run continues its own files)")
        ckpt = resolve_checkpoint(args.resume)
        if "save_dir" not in given:  # the run's own directory, not whatever path its config.json names
            given["save_dir"] = str(ckpt.parent)
        return config_from_checkpoint(ckpt, **given), ckpt
    if "data" not in given:
        raise ValueError("--data is required (or --resume a run)")
    return TrainConfig.from_flat(**{**PRESETS[args.preset or "paper"], **given}), None


def _auto_resume(args: argparse.Namespace, given: dict):
    """``--resume auto``: the newest checkpoint of ``--save-dir`` that loads (one line for each one skipped),
    or, when it holds none, a new run from the flags. Process 0 chooses; the others take its choice."""
    import jax

    from dynaflow import distributed
    from dynaflow.checkpoint import latest_checkpoint
    from dynaflow.config import PRESETS, TrainConfig
    from dynaflow.train import config_from_checkpoint

    if "save_dir" not in given:
        raise ValueError("--resume auto needs --save-dir, the run directory to continue (or to start)")
    if args.overwrite:
        raise ValueError("--overwrite: not with --resume auto (it continues the run in --save-dir)")
    main = jax.process_index() == 0
    choice = ""
    if main:  # process 0 chooses (it may finish an interrupted save); the others take its choice
        found, notes = latest_checkpoint(given["save_dir"])
        for note in notes:
            print(f"dynaflow train: --resume auto: {note}", file=sys.stderr)
        choice = "" if found is None else str(found)
    choice = distributed.share("resume-auto", choice)
    if choice:
        return config_from_checkpoint(choice, **given), Path(choice)
    if "data" not in given:
        raise ValueError(
            f"--resume auto: {given['save_dir']} holds no checkpoint to continue, so this starts a new run, "
            "which needs --data"
        )
    if main:
        print(
            f"dynaflow train: --resume auto: no checkpoint in {given['save_dir']}; starting a new run",
            file=sys.stderr,
        )
    return TrainConfig.from_flat(**{**PRESETS[args.preset or "paper"], **given}), None


class _StoppedOutsideTheLoop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals_outside_the_loop() -> Iterator[None]:
    """SIGTERM, SIGHUP or SIGUSR1 before training's own handlers are in place (loading, compiling the model's
    initialisation) or after them end the command with one line and 128 + the signal, as in the loop."""

    def handler(signum, frame):
        raise _StoppedOutsideTheLoop(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP", "SIGUSR1"):
            sig = getattr(signal, name, None)
            if sig is not None:
                previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(args: argparse.Namespace) -> int:
    try:
        with _stop_signals_outside_the_loop():
            return _run(args)
    except _StoppedOutsideTheLoop as e:
        name = signal.Signals(e.signum).name
        print(
            f"dynaflow train: interrupted by {name} outside the training loop (no checkpoint was being "
            "written; those on disk are complete)",
            file=sys.stderr,
        )
        return 128 + e.signum


def _run(args: argparse.Namespace) -> int:
    import jax

    from dynaflow.train import train

    _join_processes(args)
    config, resume = config_from_args(args)
    config.validate()
    if resume is not None and jax.process_index() == 0:
        print(
            f"resuming {resume} into {config.log.save_dir} on data {config.data} (from its config.json; "
            "--data overrides)",
            file=sys.stderr,
        )
    from dynaflow.data.sources.gaits import start_state
    from dynaflow.train import TrainingInterrupted

    try:
        result = train(
            config, resume=resume, progress=not args.quiet, overwrite=args.overwrite, rest_state=start_state
        )
    except TrainingInterrupted as e:  # a stop signal: one line, exit 128 + its number (143 for SIGTERM)
        print(" ".join(str(e).split()), file=sys.stderr)
        return e.exit_code
    steps = int(result.state.step)
    if jax.process_index() == 0 and not result.saved:  # a resumed run that had already finished
        print(f"nothing left to train: {result.run_dir} is at step {steps}, the end of its run")
    elif jax.process_index() == 0:
        saved = ", ".join(sorted(result.saved, key=lambda n: (n.startswith("epoch_"), n)))
        print(f"trained {steps} steps; checkpoints in {result.run_dir} ({saved})")
    else:
        print(f"process {jax.process_index()}: trained {steps} steps; process 0 wrote the files")
    return 0
