"""Shared fixtures: one rollout object (and so one set of compiled functions) for the session."""

from __future__ import annotations

import pytest

from dynaflow.cli import enable_compilation_cache

# The CLI's persistent compilation cache: a second test run on the same machine skips most compiles.
enable_compilation_cache()


@pytest.fixture(scope="session")
def rollout():
    from dynaflow import create_go2_rollout

    return create_go2_rollout()


@pytest.fixture(scope="session")
def rollout_remat():
    """remat=True, used for the float64 gradient checks (so remat is covered too)."""
    from dynaflow import create_go2_rollout

    return create_go2_rollout(remat=True)
