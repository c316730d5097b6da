"""The README and the documentation run as written: every block marked ``<!-- runnable -->`` is executed in
one empty directory, the README's first and then each page of ``docs/`` in the site's order
(``mkdocs.yml``'s nav), the shell blocks through the real `dynaflow` command and the Python blocks in one
namespace, so the Python API works on the checkpoint the README's own commands made. A page may show a
part of the README with ``--8<-- "README.md:SECTION"`` (the tour): those blocks run once, from the README.

In CI the commands run at tiny sizes: each gets the extra flags in :data:`TINY` appended (argparse keeps
the last value of a flag), which puts training on the suite's shared small configuration (one compile)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
from conftest import SMALL

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = re.compile(r"<!-- runnable -->\n```(python|bash)\n(.*?)```", re.S)

_SMALL_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
TINY = {
    ("physics",): ["--batch", "4", "--horizon", "8"],
    ("data", "gaits"): ["--episodes", "10", "--seconds", "1"],
    ("train",): [*_SMALL_FLAGS, "--epochs=1", "--steps-per-epoch=4", "--val-windows=16", "--time-budget=600"],
    ("render",): ["--seconds", "0.2", "--width", "64", "--height", "48"],
    ("generate",): ["--seconds", "1"],
}


def documents() -> list[Path]:
    """The README, then the documentation's pages in the order of the site's navigation."""
    nav = re.findall(r"^\s*- .*?([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    pages = [ROOT / "docs" / name for name in nav]
    assert sorted(pages) == sorted((ROOT / "docs").glob("*.md")), "a docs page missing from the nav"
    return [README, *pages]


def runnable_blocks(path: Path) -> list[tuple[str, str]]:
    """A file's runnable blocks, ``(kind, code)``; every Python block of it must be marked runnable."""
    text = path.read_text()
    blocks = RUNNABLE.findall(text)
    marked = sum(kind == "python" for kind, _ in blocks)
    assert text.count("```python") == marked, f"{path.name}: an unmarked python block"
    return blocks


def commands(block: str) -> list[list[str]]:
    """The `dynaflow ...` command lines of a shell block (comments dropped, continuations joined)."""
    text = block.replace("\\\n", " ")
    return [
        shlex.split(line, comments=True)[1:] for line in text.splitlines() if line.startswith("dynaflow ")
    ]


def test_the_test_command_is_what_ci_runs():
    """The README's (and the install page's) test command is the one `.ci/run` runs, verbatim."""
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "python -m pytest" in line]
    assert len(ci) == 1
    for path in (README, ROOT / "docs" / "install.md"):
        shown = [line for line in path.read_text().splitlines() if "python -m pytest" in line]
        assert shown == ci, path.name


def test_readme_and_docs_run_top_to_bottom(tmp_path, monkeypatch, capsys):
    from dynaflow.cli import main

    blocks = [(path, kind, code) for path in documents() for kind, code in runnable_blocks(path)]
    shell = [code for _, kind, code in blocks if kind == "bash"]
    assert len(shell) >= 2 and sum(len(commands(b)) for b in shell) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = []
    for path, kind, code in blocks:
        if kind == "bash":
            for argv in commands(code):
                extra = next((v for k, v in TINY.items() if tuple(argv[: len(k)]) == k), [])
                assert main(argv + extra) == 0, (path.name, argv, capsys.readouterr().err[-2000:])
                ran.append(argv[0])
        elif "replay_in_mujoco" in code:  # the simulator's example stands alone
            ns: dict = {}
            exec(compile(code, str(path), "exec"), ns)
            assert ns["X"].shape == (17, 37) and ns["Xc"].shape == (17, 37) and ns["dU"].shape == (16, 12)
        else:
            exec(compile(code, str(path), "exec"), namespace)
    assert ran[:6] == ["physics", "data", "train", "sample", "render", "generate"]
    for name in ("tour_samples.npz", "tour.mp4", "tour.motion.npz", "tour_motion.npz", "tour_motion.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert {"export", "data"} <= set(ran[6:])  # motion out as a clip and back
    with np.load(tmp_path / "tour_motion.npz") as a, np.load(tmp_path / "tour_back.npz") as b:
        np.testing.assert_allclose(b["states"][0], a["states"], atol=1e-5)
    assert (tmp_path / "runs" / "tour" / "best" / "config.json").is_file()
    h = namespace["horizon"]
    assert h == SMALL["horizon"]  # the model was built from the checkpoint's own config
    assert namespace["X"].shape == (1, h + 1, 37) and namespace["U"].shape == (1, h, 12)
    assert namespace["X_batch"].shape == (32, h + 1, 37) and namespace["U_batch"].shape == (32, h, 12)
    with np.load(tmp_path / "generated_trajectories.npz", allow_pickle=False) as f:
        assert f["states"].shape == (32, h + 1, 37) and f["conditionings"].shape == (32, 7)
