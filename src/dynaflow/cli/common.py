"""What several commands share: the one-line argument parser, help with defaults, number parsing, the
checkpoint flags, and the notes printed when a command replaces a file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (``dynaflow train: error: argument --epochs: invalid int value``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every flag's help ends with its default (unless the help already states it or there is none)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or action.option_strings == []
            or default == []
        ):
            return text
        return f"{text} (default {default})" if text else f"default {default}"


def add_command(sub, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand parser with the project's formatter and one-line errors."""
    return sub.add_parser(name, help=help, description=description or help, formatter_class=HelpFormatter)


def parse_floats(text: str, flag: str, n: int | None = None) -> np.ndarray:
    """Numbers separated by commas or spaces, all finite; ``n`` of them when given."""
    try:
        vals = np.array([float(v) for v in text.replace(",", " ").split()], np.float64)
    except ValueError:
        raise ValueError(f"{flag}: expected numbers separated by commas or spaces, got {text!r}") from None
    if n is not None and vals.shape != (n,):
        raise ValueError(f"{flag}: expected {n} numbers, got {vals.size}")
    if not np.all(np.isfinite(vals)) or np.any(np.abs(vals) > np.finfo(np.float32).max):
        raise ValueError(f"{flag}: expected finite numbers, got {text!r}")
    return vals.astype(np.float32)


def add_checkpoint_args(p: argparse.ArgumentParser, many: bool = False, samples: bool = False) -> None:
    """``--checkpoint`` (repeatable with ``many``), ``--use-ema``, ``--ode-steps``, ``--seed`` and, with
    ``samples``, ``--num-samples``."""
    if many:
        p.add_argument(
            "--checkpoint",
            required=True,
            action="append",
            help="checkpoint directory (or run directory: its best); repeat to compare methods side by side",
        )
    else:
        p.add_argument(
            "--checkpoint", required=True, help="checkpoint directory (or run directory: its best)"
        )
    p.add_argument(
        "--use-ema",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sample with the EMA weights (the default) or the raw ones (--no-use-ema)",
    )
    p.add_argument("--ode-steps", type=positive_int("--ode-steps"), default=1, help="Euler steps of the flow")
    if samples:
        p.add_argument(
            "--num-samples", type=positive_int("--num-samples"), default=100, help="motions to generate"
        )
    p.add_argument("--seed", type=non_negative_int("--seed"), default=0, help="seed of the sampling noise")


def _number(flag: str, convert, what: str, ok, bound: str):
    """An argparse type for ``flag``: ``convert`` the text (else "expected WHAT"), then ``ok(value)`` (else
    "expected BOUND", showing an integer as parsed and a float as written)."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            shown = value if convert is int else text
            raise argparse.ArgumentTypeError(f"expected {bound}, got {shown}")
        return value

    parse.__name__ = flag
    return parse


def positive_int(flag: str):
    return _number(flag, int, "a positive integer", lambda v: v >= 1, "a positive integer")


def non_negative_int(flag: str):
    return _number(flag, int, "an integer >= 0", lambda v: 0 <= v < 2**32, "an integer in [0, 2^32)")


def positive_float(flag: str):
    return _number(flag, float, "a number > 0", lambda v: np.isfinite(v) and v > 0, "a finite number > 0")


def non_negative_float(flag: str):
    return _number(flag, float, "a number >= 0", lambda v: 0 <= v < float("inf"), "a finite number >= 0")


def load_policy(args, checkpoint=None):
    from dynaflow.policy import DynaFlowPolicy

    return DynaFlowPolicy.from_checkpoint(checkpoint or args.checkpoint, use_ema=args.use_ema)


def npz_output(path: str, flag: str = "--out", inputs=()) -> Path:
    """An output ``.npz`` path, checked before any work (suffix, parent, not an input)."""
    from dynaflow.fileio import check_output

    out = Path(path)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"{flag} {out}: expected a .npz file path")
    return check_output(out, "output", inputs=inputs)


def replacing(*paths) -> None:
    """Say so on stderr when a command is about to replace files that exist."""
    existing = [str(p) for p in paths if p is not None and Path(p).is_file()]
    if existing:
        print(f"replacing {', '.join(existing)}", file=sys.stderr)
