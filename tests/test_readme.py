"""The README runs as written, top to bottom: every block marked ``<!-- runnable -->`` is executed in one
empty directory, the shell blocks through the real `dynaflow` command and the Python blocks in one
namespace, so the Python API works on the checkpoint the README's own commands made.

In CI the commands run at tiny sizes: each gets the extra flags in :data:`TINY` appended (argparse keeps
the last value of a flag), which puts training on the suite's shared small configuration (one compile)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
from conftest import SMALL

README = Path(__file__).resolve().parents[1] / "README.md"
RUNNABLE = re.compile(r"<!-- runnable -->\n```(python|bash)\n(.*?)```", re.S)

_SMALL_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
TINY = {
    ("physics",): ["--batch", "4", "--horizon", "8"],
    ("data", "gaits"): ["--episodes", "10", "--seconds", "1"],
    ("train",): [*_SMALL_FLAGS, "--epochs=1", "--steps-per-epoch=4", "--val-windows=16", "--time-budget=600"],
    ("render",): ["--seconds", "0.2", "--width", "64", "--height", "48"],
    ("generate",): ["--seconds", "1"],
}


def commands(block: str) -> list[list[str]]:
    """The `dynaflow ...` command lines of a shell block (comments dropped, continuations joined)."""
    text = block.replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:] for line in text.splitlines() if line.startswith("dynaflow ")
    ]


def test_readme_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    from dynaflow.cli import main

    text = README.read_text()
    blocks = RUNNABLE.findall(text)
    assert text.count("```python") == sum(kind == "python" for kind, _ in blocks), "an unmarked python block"
    shell = [b for kind, b in blocks if kind == "bash"]
    assert len(shell) >= 2 and sum(len(commands(b)) for b in shell) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = []
    for kind, block in blocks:
        if kind == "bash":
            for argv in commands(block):
                extra = next((v for k, v in TINY.items() if tuple(argv[: len(k)]) == k), [])
                assert main(argv + extra) == 0, (argv, capsys.readouterr().err[-2000:])
                ran.append(argv[0])
        elif "replay_in_mujoco" in block:  # the simulator's example stands alone
            ns: dict = {}
            exec(compile(block, str(README), "exec"), ns)
            assert ns["X"].shape == (17, 37) and ns["Xc"].shape == (17, 37) and ns["dU"].shape == (16, 12)
        else:
            exec(compile(block, str(README), "exec"), namespace)
    assert ran[:6] == ["physics", "data", "train", "sample", "render", "generate"]
    for name in ("tour_samples.npz", "tour.mp4", "tour.motion.npz", "tour_motion.npz", "tour_motion.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert {"export", "data"} <= set(ran[6:])  # motion out as a clip and back in
    with np.load(tmp_path / "tour_motion.npz") as a, np.load(tmp_path / "tour_back.npz") as b:
        np.testing.assert_allclose(b["states"][0], a["states"], atol=1e-5)
    assert (tmp_path / "runs" / "tour" / "best" / "config.json").is_file()
    h = namespace["horizon"]
    assert h == SMALL["horizon"]  # the model was built from the checkpoint's own config
    assert namespace["X"].shape == (1, h + 1, 37) and namespace["U"].shape == (1, h, 12)
    assert namespace["X_batch"].shape == (32, h + 1, 37) and namespace["U_batch"].shape == (32, h, 12)
    with np.load(tmp_path / "generated_trajectories.npz", allow_pickle=False) as f:
        assert f["states"].shape == (32, h + 1, 37) and f["conditionings"].shape == (32, 7)
