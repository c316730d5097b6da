"""The ``dynaflow`` command: one subcommand per stage of the pipeline.

Each command group is a module of this package holding its argparse subparser (``add_parser``) beside its
handler (``run``); handlers parse, call the library and print. :func:`main` turns every error a user can
cause into one line naming the flag, file or key (``DYNAFLOW_DEBUG=1`` shows the traceback), with exit
code 2 (1 when training stopped on its own, 130 on Ctrl-C). Heavy imports happen inside the handlers, so
``dynaflow --help`` is fast.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from dynaflow.cli import (
    data,
    demo,
    evaluate,
    export,
    generate,
    physics,
    render,
    sample,
    teacher,
    train,
)
from dynaflow.cli.common import ArgumentParser, HelpFormatter
from dynaflow.platform import configure_cpu
from dynaflow.runtime import debug, enable_compilation_cache

#: The command groups, in the order ``dynaflow --help`` lists them (the pipeline's order).
COMMANDS = (physics, data, teacher, train, sample, evaluate, render, generate, export, demo)

#: The commands that train DynaFlow, which split each batch over one CPU device per core
#: (:mod:`dynaflow.platform`); the others keep JAX's one-device layout (Brax's PPO teacher would pmap
#: over every device, and sampling, evaluation and rendering run on one device either way).
CORE_PER_DEVICE = ("train", "demo")

DESCRIPTION = (
    "DynaFlow: dynamics-embedded flow matching for the Unitree Go2. Turns state-only demonstrations into "
    "a generative model whose every motion is a simulator rollout of its own actions. Start with "
    "`dynaflow demo`, or see README.md for the first ten minutes."
)


def build_parser() -> argparse.ArgumentParser:
    from dynaflow.version import __version__

    parser = ArgumentParser(prog="dynaflow", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"dynaflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynaflow`` console script."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if from_command_line and args.command in CORE_PER_DEVICE:
        # before anything creates JAX's backend: one CPU device per core. Only for a process of its own
        # (the console script, python -m dynaflow.cli): main(argv) called from Python keeps its caller's
        # JAX layout
        configure_cpu()
    args.command_line = shlex.join(["dynaflow", *argv])  # reports record what produced them
    name = " ".join(filter(None, [args.command, getattr(args, "subcommand", None)]))
    try:
        if getattr(args, "uses_jax", True):  # a command that needs no JAX sets uses_jax=False
            enable_compilation_cache()
        return args.func(args)
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - every error becomes one line; DYNAFLOW_DEBUG shows it all
        if debug():
            raise
        code, message = describe(e)
        print(f"dynaflow {name}: {message}", file=sys.stderr)
        return code


def describe(e: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an exception escaping a command."""
    from dynaflow.fileio import describe_os_error

    # the training and configuration errors, from their modules when loaded (an exception of a class
    # can only exist once its module is imported; importing them here would import JAX)
    if isinstance(e, _loaded("dynaflow.train", "TrainingStopped")):
        return 1, _one_line(str(e).removeprefix("dynaflow train: "))
    if isinstance(e, _loaded("dynaflow.train", "TrainingInterrupted")):
        return e.exit_code, _one_line(str(e).removeprefix("dynaflow train: "))  # 128 + the signal
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted (Ctrl-C); files are written atomically, so none was left half-written"
    if isinstance(e, _loaded("dynaflow.config", "ConfigError")):
        from dynaflow.cli.train import flag_of

        return 2, "error: " + _one_line(f"{flag_of(e.field)}: {e.message}")
    if isinstance(e, OSError):  # a full disk, a permission, a missing folder: the path and the reason
        return 2, "error: " + _one_line(describe_os_error(e) if e.filename else str(e) or type(e).__name__)
    if isinstance(e, ValueError | RuntimeError | KeyError):
        return 2, "error: " + _one_line(str(e))
    return 3, (
        f"internal error: {type(e).__name__}: {_one_line(str(e))} (DYNAFLOW_DEBUG=1 shows the traceback; "
        "please report it)"
    )


def _loaded(module: str, name: str) -> tuple[type, ...]:
    """``(module.name,)`` when the module is imported already, else ``()`` (nothing is an instance)."""
    found = getattr(sys.modules.get(module), name, None)
    return (found,) if isinstance(found, type) else ()


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"
