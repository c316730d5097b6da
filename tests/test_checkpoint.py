"""Checkpoints: exact round trip, atomic replacement and recovery from a kill, and a named one-line error
for every broken or hostile case (edited config.json, truncated weights, symlinks, non-finite weights)."""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

from dynaflow.checkpoint import CheckpointError, load_checkpoint, model_meta, recover, save_checkpoint
from dynaflow.data import Normalizer
from dynaflow.methods import create_action_predictor
from dynaflow.model import set_normalizer


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    model, params = create_action_predictor(d_model=32, n_heads=2, depth=1, cond_dim=3, horizon=4)
    norm = Normalizer(np.linspace(-1, 1, 37).astype(np.float32), np.linspace(0.5, 2, 37).astype(np.float32))
    params = set_normalizer(params, norm, sigma=0.7)
    ema = jax.tree.map(lambda a: a * 0.5, params)
    opt = (np.arange(5.0), {"mu": np.ones((2, 3), np.float32)})
    meta = model_meta(model, 4, norm, sigma=0.7, step=123)
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "ckpt", params, ema, meta, opt)
    return path, params, ema, opt


def test_round_trip_is_exact(small_ckpt):
    path, params, ema, opt = small_ckpt
    ck = load_checkpoint(path, with_opt_state=True)
    for a, b in [(params, ck["params"]), (ema, ck["ema_params"])]:
        assert jax.tree.structure(a) == jax.tree.structure(b)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), y)
    assert ck["step"] == 123 and ck["cond_dim"] == 3 and ck["sigma"] == pytest.approx(0.7)
    np.testing.assert_array_equal(ck["normalizer"].std, np.asarray(params["normalizer"]["std"]))
    for x, y in zip(jax.tree.leaves(opt), ck["opt_state_leaves"], strict=True):
        np.testing.assert_array_equal(x, y)
    assert set(ck["config"]["versions"]) >= {"dynaflow", "jax", "flax", "mujoco"}
    # the model is rebuilt from the checkpoint's own config, stored once
    assert ck["model_config"]["d_model"] == 32 and ck["model_config"]["horizon"] == 4
    model, _ = create_action_predictor(**ck["model_config"])
    assert model.apply(ck["ema_params"], np.zeros((1, 5, 37), np.float32), 0.0, np.zeros((1, 3))).shape == (
        1,
        4,
        12,
    )
    raw = json.loads((path / "config.json").read_text())
    assert raw["format_version"] == 2 and raw["train"]["model"]["d_model"] == 32 and "model" not in raw


def test_failed_save_keeps_the_previous_checkpoint(small_ckpt):
    path, params, ema, _ = small_ckpt
    before = (path / "params.npz").read_bytes()
    bad = {**model_meta(*_model_norm()), "progress": {"step": object()}}
    with pytest.raises(TypeError):  # not JSON-serialisable: fails after the arrays were written
        save_checkpoint(path, params, ema, bad)
    assert (path / "params.npz").read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left behind
    load_checkpoint(path)


def _model_norm():
    model, _ = create_action_predictor(d_model=32, n_heads=2, depth=1, cond_dim=3, horizon=4)
    return model, 4, Normalizer.identity()


def test_non_finite_weights_are_never_saved_nor_loaded(tmp_path, small_ckpt):
    src, params, ema, _ = small_ckpt
    poisoned = jax.tree.map(lambda a: np.full_like(np.asarray(a), np.nan), params)
    with pytest.raises(CheckpointError, match="is not finite; refusing to save it"):
        save_checkpoint(tmp_path / "nan", poisoned, ema, model_meta(*_model_norm()))
    assert not (tmp_path / "nan").exists()
    dst = tmp_path / "edited"
    shutil.copytree(src, dst)
    with np.load(dst / "ema_params.npz") as f:
        arrays = {k: f[k] for k in f.files}
    key = next(k for k in arrays if k.startswith("params/"))
    arrays[key] = np.full_like(arrays[key], np.inf)
    np.savez(dst / "ema_params.npz", **arrays)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["files"].pop("ema_params.npz")  # as if the hash had been edited to match
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"ema_params.npz: weight '.*' holds NaN or inf"):
        load_checkpoint(dst)


def test_a_kill_between_the_renames_is_recovered(tmp_path, small_ckpt):
    """A save killed after moving the old checkpoint aside and before renaming the new one into place
    leaves no `last`: the next load puts the complete new one back, says so, and removes the leftovers."""
    src = small_ckpt[0]
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(src, run / ".last.old-1234abcd")
    shutil.copytree(src, run / ".last.tmp-5678ef90")
    (run / ".best.tmp-00000000").mkdir()  # a save killed while writing: incomplete, stale
    with pytest.warns(UserWarning, match=r"last: restored from the interrupted save \(.last.tmp-5678ef90\)"):
        ck = load_checkpoint(run / "last")
    assert ck["step"] == 123
    assert sorted(p.name for p in run.iterdir()) == [".best.tmp-00000000", "last"]
    with pytest.warns(UserWarning, match="removed .best.tmp-00000000"):
        assert recover(run / "best") is not None
    assert sorted(p.name for p in run.iterdir()) == ["last"]
    assert recover(run / "last") is None  # nothing to do


def broken(tmp_path, small_ckpt, how):
    src = small_ckpt[0]
    dst = tmp_path / "ck"
    shutil.copytree(src, dst)
    how(dst)
    return dst


def edit_config(change):
    def how(d):
        cfg = json.loads((d / "config.json").read_text())
        cfg = change(cfg)
        (d / "config.json").write_text(json.dumps(cfg))

    return how


def setting(path, value):
    def change(cfg):
        *parents, last = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last)
        else:
            node[last] = value
        return cfg

    return change


def truncate(name):
    def how(d):
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 3])

    return how


def symlink_outside(d):
    outside = d.parent / "elsewhere.npz"
    shutil.move(d / "params.npz", outside)
    os.symlink(outside, d / "params.npz")


@pytest.mark.parametrize(
    "how, message",
    [
        (lambda d: shutil.rmtree(d), r"ck: no such checkpoint"),
        (
            lambda d: (d / "config.json").unlink(),
            r"config.json: missing \(not a DynaFlow checkpoint directory\)",
        ),
        (lambda d: (d / "config.json").write_text("{oops"), r"config.json: not valid JSON"),
        (
            lambda d: (d / "config.json").write_text("[]"),
            r"config.json: not a DynaFlow checkpoint \(holds a list",
        ),
        (edit_config(setting("format", "other")), r"not a DynaFlow checkpoint \(format 'other'\)"),
        (edit_config(setting("format_version", 99)), r"format_version 99 is not supported"),
        (edit_config(setting("normalizer", None)), r"key 'normalizer': missing"),
        (edit_config(setting("normalizer", {"mean": [0.0], "std": [1.0]})), r"key 'normalizer': invalid"),
        (edit_config(setting("files", [])), r"key 'files': expected an object mapping file names"),
        (
            edit_config(setting("train.model.n_heads", 3)),
            r"key 'train.model.n_heads': 3 does not divide d_model \(32\)",
        ),
        (
            edit_config(setting("train.epochs", "abc")),
            r"key 'train.epochs': expected an integer >= 1, got 'abc'",
        ),
        (
            edit_config(setting("progress.step", "abc")),
            r"key 'progress.step': expected an integer >= 0, got 'abc'",
        ),
        (
            edit_config(setting("dims.cond_dim", "four")),
            r"key 'dims.cond_dim': expected an integer >= 1 or null",
        ),
        (lambda d: (d / "params.npz").unlink(), r"params.npz: missing \(the checkpoint is incomplete\)"),
        (truncate("ema_params.npz"), r"ema_params.npz: contents do not match the hash in config.json"),
        (symlink_outside, r"params.npz: is a symbolic link"),
        (
            edit_config(
                lambda c: {
                    **setting("files", {})(c),
                    "train": {**c["train"], "model": {**c["train"]["model"], "d_model": 48}},
                }
            ),
            r"params.npz: weight '.*' has shape .*, the model in config.json needs",
        ),
        (
            edit_config(setting("train.model.depth", 2)),
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


def test_version_1_checkpoints_still_load(tmp_path, small_ckpt):
    """The layout before the config was stored once (model + rollout + sigma beside a flat train config)."""
    src, params, _, _ = small_ckpt
    dst = tmp_path / "v1"
    shutil.copytree(src, dst)
    v2 = json.loads((dst / "config.json").read_text())
    m = v2["train"]["model"]
    v1 = {
        "format": "dynaflow-checkpoint",
        "format_version": 1,
        "model": {
            **{k: m[k] for k in ("d_model", "n_heads", "depth", "dropout", "max_action", "mlp_ratio")},
            "state_dim": 37,
            "action_dim": 12,
            "cond_dim": 3,
            "method": "dynaflow",
            "horizon": 4,
        },
        "rollout": {"ctrl_dt": 0.02, "n_substeps": 4, "action_scale": 0.5, "default_pose": [0.0] * 12},
        "normalizer": v2["normalizer"],
        "sigma": 0.7,
        "train": {"data": "x.npz", "epochs": 5, "lr": 1e-3, "d_model": 32, "n_heads": 2, "depth": 1},
        "step": 123,
        "files": v2["files"],
    }
    (dst / "config.json").write_text(json.dumps(v1))
    ck = load_checkpoint(dst)
    assert ck["step"] == 123 and ck["sigma"] == pytest.approx(0.7) and ck["model_config"]["horizon"] == 4
    assert ck["train_config"].optim.lr == pytest.approx(1e-3) and ck["train_config"].epochs == 5
    np.testing.assert_array_equal(ck["params"]["normalizer"]["std"], np.asarray(params["normalizer"]["std"]))


def test_latest_checkpoint_is_the_newest_that_loads(tmp_path, small_ckpt):
    """`--resume auto`'s choice: an interrupted save of `last` is finished first, a damaged checkpoint is
    skipped with one line saying why, and of the rest the one with the most updates wins."""
    from dynaflow.checkpoint import latest_checkpoint

    src = small_ckpt[0]
    run = tmp_path / "run"
    assert latest_checkpoint(run) == (None, [])  # absent
    run.mkdir()
    assert latest_checkpoint(run) == (None, [])  # empty

    def copy(name, step):
        shutil.copytree(src, run / name)
        cfg = json.loads((run / name / "config.json").read_text())
        cfg["progress"]["step"] = step  # config.json is not hashed: only the arrays are
        (run / name / "config.json").write_text(json.dumps(cfg))

    copy("epoch_0001", 50)
    copy("best", 200)
    params = run / "best" / "params.npz"
    params.write_bytes(params.read_bytes()[:-10])  # damaged: skipped although it is the newest
    copy(".last.old-1234abcd", 100)
    copy(".last.tmp-5678ef90", 123)  # killed between the renames: `last` is missing
    found, notes = latest_checkpoint(run)
    assert found == run / "last" and load_checkpoint(found)["step"] == 123
    assert len(notes) == 2, notes
    assert "last: restored from the interrupted save (.last.tmp-5678ef90)" in notes[0]
    assert notes[1].startswith(f"skipping {run / 'best'}: {params}: contents do not match the hash")
    shutil.rmtree(run / "last")
    assert latest_checkpoint(run)[0] == run / "epoch_0001"
