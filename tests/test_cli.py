"""The ``dynaflow`` command, through its real code path."""

from __future__ import annotations

import pytest

from dynaflow.cli import main


def test_physics_check_runs_and_reports(capsys):
    assert main(["physics", "--batch", "4", "--horizon", "8"]) == 0
    out = capsys.readouterr().out
    assert "MJX vs MuJoCo C (same)" in out and "physics check: OK" in out


def test_bad_flag_value_is_named():
    with pytest.raises(SystemExit, match="--batch and --horizon must be >= 1, got 0, 8"):
        main(["physics", "--batch", "0", "--horizon", "8"])
