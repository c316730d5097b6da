"""Process-wide settings every entry point shares (the CLI, tests, examples, benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path


def compilation_cache_dir() -> Path:
    """Where compiled functions are cached: ``$DYNAFLOW_JAX_CACHE``, else ``~/.cache/dynaflow/jax``."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dynaflow" / "jax"
    return Path(os.environ.get("DYNAFLOW_JAX_CACHE", default))


def enable_compilation_cache() -> Path:
    """Turn on JAX's persistent compilation cache: compiles are a user-visible cost on a CPU (a train step
    takes about a minute), and the second run of a command reads them back instead."""
    import jax

    path = compilation_cache_dir()
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return path


def debug() -> bool:
    """``DYNAFLOW_DEBUG=1``: show full tracebacks instead of one-line errors."""
    return os.environ.get("DYNAFLOW_DEBUG", "") not in ("", "0")


def test_event(name: str, detail: object = "") -> None:
    """A moment the kill-storm test aims its signals at (an update done, a validation starting, a
    checkpoint's files written, between a checkpoint's two renames). Nothing unless
    ``DYNAFLOW_TEST_EVENTS=1``: then ``dynaflow-test: NAME DETAIL`` goes to stderr, and
    ``DYNAFLOW_TEST_PAUSE=name=seconds,...`` pauses after the events named, so a signal lands inside."""
    if os.environ.get("DYNAFLOW_TEST_EVENTS") != "1":
        return
    import sys
    import time

    print(f"dynaflow-test: {name} {detail}", file=sys.stderr, flush=True)
    for part in os.environ.get("DYNAFLOW_TEST_PAUSE", "").split(","):
        event, _, seconds = part.partition("=")
        if event.strip() == name and seconds:
            time.sleep(float(seconds))
