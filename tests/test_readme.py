"""The README's Python examples run as written (the original README's API example included)."""

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


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 4, "README lost its python examples"
    monkeypatch.chdir(tmp_path)
    default_size_checkpoint(tmp_path / "checkpoints" / "dynaflow" / "epoch_0200")
    namespace: dict = {}
    seen = []
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
        seen.append(
            {k: getattr(v, "shape", None) for k, v in namespace.items() if k in ("X", "U", "Xc", "dU")}
        )
    assert seen[0]["X"] == (17, 37) and seen[0]["Xc"] == (17, 37) and seen[0]["dU"] == (16, 12)
    assert namespace["X"].shape == (1, 17, 37) and namespace["U"].shape == (1, 16, 12)
    assert namespace["X_batch"].shape == (32, 17, 37) and namespace["U_batch"].shape == (32, 16, 12)
    with np.load(tmp_path / "generated_trajectories.npz", allow_pickle=False) as f:
        assert f["states"].shape == (1, 17, 37) and f["conditionings"].shape == (1, 7)
