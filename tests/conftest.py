"""Shared fixtures: one rollout object (and so one set of compiled functions) for the session."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

# Persistent compilation cache: a second test run on the same machine skips most XLA compiles.
_cache = Path(os.environ.get("DYNAFLOW_JAX_CACHE", Path.home() / ".cache" / "dynaflow" / "jax"))
jax.config.update("jax_compilation_cache_dir", str(_cache))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


@pytest.fixture(scope="session")
def rollout():
    from dynaflow import create_go2_rollout

    return create_go2_rollout()


@pytest.fixture(scope="session")
def rollout_remat():
    """remat=True, used for the float64 gradient checks (so remat is covered too)."""
    from dynaflow import create_go2_rollout

    return create_go2_rollout(remat=True)
