"""The README's runnable Python examples run as written (the original README's API example included)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def default_size_checkpoint(path: Path) -> None:
    """An untrained checkpoint of the README's model size (d_model 384, 6 heads, depth 3, cond_dim 7)."""
    from dynaflow.checkpoint import save_checkpoint
    from dynaflow.data import Normalizer
    from dynaflow.model import create_action_predictor, model_config

    model, params = create_action_predictor(cond_dim=7)
    config = {"model": model_config(model, 16), "normalizer": Normalizer.identity().to_dict(), "step": 0}
    save_checkpoint(path, params, params, config)


RUNNABLE = re.compile(r"<!-- runnable -->\n```python\n(.*?)```", re.S)


def test_readme_runnable_blocks_run(tmp_path, monkeypatch):
    """Every block marked ``<!-- runnable -->`` runs as written: the simulator example on its own, the
    Python API blocks (the original README's example) in order, in one namespace."""
    text = README.read_text()
    blocks = RUNNABLE.findall(text)
    assert len(blocks) >= 4, "README lost its runnable python examples"
    assert len(blocks) == text.count("```python"), "a python block in the README is not marked runnable"
    monkeypatch.chdir(tmp_path)
    default_size_checkpoint(tmp_path / "checkpoints" / "dynaflow" / "epoch_0200")
    physics = [b for b in blocks if "replay_in_mujoco" in b]
    api = [b for b in blocks if "replay_in_mujoco" not in b]
    assert len(physics) == 1
    ns: dict = {}
    exec(compile(physics[0], str(README), "exec"), ns)
    assert ns["X"].shape == (17, 37) and ns["Xc"].shape == (17, 37) and ns["dU"].shape == (16, 12)
    namespace: dict = {}
    for block in api:
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["X"].shape == (1, 17, 37) and namespace["U"].shape == (1, 16, 12)
    assert namespace["X_batch"].shape == (32, 17, 37) and namespace["U_batch"].shape == (32, 16, 12)
    with np.load(tmp_path / "generated_trajectories.npz", allow_pickle=False) as f:
        assert f["states"].shape == (1, 17, 37) and f["conditionings"].shape == (1, 7)
