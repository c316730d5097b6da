"""What the hostile-input tests share (``test_hostile_input.py``, ``test_hostile_runs.py``): running the
command line as a user would, and checking that an error is one line and that no file changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import HealthCheck, settings

from dynaflow.cli import main

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def snapshot(*roots) -> dict[str, str]:
    """Every file under ``roots`` with its content hash (what "no file changed" compares)."""
    out = {}
    for root in roots:
        root = Path(root)
        files = (
            [root]
            if root.is_file()
            else sorted(p for p in root.rglob("*") if p.is_file())
            if root.exists()
            else []
        )
        for p in files:
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Exit code and stderr of `dynaflow ARGV` (argparse's own errors included)."""
    try:
        code = main(list(map(str, argv)))
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(code: int, err: str, *names: str) -> None:
    assert code not in (0, None), err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "error" in lines[0] or "interrupted" in lines[0], err
    for name in names:
        assert name in lines[0], (name, err)
