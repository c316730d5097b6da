"""Checkpoints: exact round trip, atomic replacement, and a named error for every broken case."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest

from dynaflow.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dynaflow.data import Normalizer
from dynaflow.model import create_action_predictor, model_config, set_normalizer


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    model, params = create_action_predictor(d_model=32, n_heads=2, depth=1, cond_dim=3, horizon=4)
    norm = Normalizer(np.linspace(-1, 1, 37).astype(np.float32), np.linspace(0.5, 2, 37).astype(np.float32))
    params = set_normalizer(params, norm, sigma=0.7)
    ema = jax.tree.map(lambda a: a * 0.5, params)
    opt = (np.arange(5.0), {"mu": np.ones((2, 3), np.float32)})
    config = {"model": model_config(model, 4), "normalizer": norm.to_dict(), "step": 123, "sigma": 0.7}
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "ckpt", params, ema, config, opt)
    return path, params, ema, opt


def test_round_trip_is_exact(small_ckpt):
    path, params, ema, opt = small_ckpt
    ck = load_checkpoint(path, with_opt_state=True)
    for a, b in [(params, ck["params"]), (ema, ck["ema_params"])]:
        assert jax.tree.structure(a) == jax.tree.structure(b)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), y)
    assert ck["step"] == 123 and ck["cond_dim"] == 3
    np.testing.assert_array_equal(ck["normalizer"].std, np.asarray(params["normalizer"]["std"]))
    for x, y in zip(jax.tree.leaves(opt), ck["opt_state_leaves"], strict=True):
        np.testing.assert_array_equal(x, y)
    assert set(ck["config"]["versions"]) >= {"dynaflow", "jax", "flax", "mujoco"}


def test_failed_save_keeps_the_previous_checkpoint(small_ckpt):
    path, params, ema, _ = small_ckpt
    before = (path / "params.npz").read_bytes()
    with pytest.raises(TypeError):  # not JSON-serialisable: fails after the arrays were written
        save_checkpoint(path, params, ema, {"model": {}, "normalizer": {}, "step": object()})
    assert (path / "params.npz").read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    load_checkpoint(path)


def broken(tmp_path, small_ckpt, how):
    src = small_ckpt[0]
    dst = tmp_path / "ck"
    shutil.copytree(src, dst)
    how(dst)
    return dst


def edit_config(**changes):
    def how(d):
        cfg = json.loads((d / "config.json").read_text())
        for k, v in changes.items():
            if v is None:
                cfg.pop(k)
            else:
                cfg[k] = v
        (d / "config.json").write_text(json.dumps(cfg))

    return how


def truncate(name):
    def how(d):
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 3])

    return how


@pytest.mark.parametrize(
    "how, message",
    [
        (lambda d: shutil.rmtree(d), r"ck: no such checkpoint"),
        (
            lambda d: (d / "config.json").unlink(),
            r"config.json: missing \(not a DynaFlow checkpoint directory\)",
        ),
        (lambda d: (d / "config.json").write_text("{oops"), r"config.json: not valid JSON"),
        (edit_config(format="other"), r"not a DynaFlow checkpoint \(format 'other'\)"),
        (edit_config(format_version=99), r"format_version 99 is not supported"),
        (edit_config(normalizer=None), r"key 'normalizer' missing"),
        (edit_config(normalizer={"mean": [0.0], "std": [1.0]}), r"key 'normalizer' is invalid"),
        (lambda d: (d / "params.npz").unlink(), r"params.npz: missing \(the checkpoint is incomplete\)"),
        (truncate("ema_params.npz"), r"ema_params.npz: contents do not match the hash in config.json"),
        (
            edit_config(files={}, model={"d_model": 48, "n_heads": 2, "depth": 1, "cond_dim": 3}),
            r"params.npz: weight '.*' has shape .*, the model in config.json needs",
        ),
        (
            edit_config(model={"d_model": 32, "n_heads": 2, "depth": 2, "cond_dim": 3}),
            r"params.npz: weights do not match the model in config.json \(missing \['params/block_1",
        ),
    ],
)
def test_bad_checkpoints_are_named(tmp_path, small_ckpt, how, message):
    path = broken(tmp_path, small_ckpt, how)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_a_file_is_not_a_checkpoint(tmp_path):
    f = tmp_path / "epoch_200.pkl"
    f.write_bytes(b"\x80\x04")
    with pytest.raises(CheckpointError, match="a checkpoint is a directory"):
        load_checkpoint(f)
