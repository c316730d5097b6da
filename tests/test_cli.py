"""The ``dynaflow`` command, through its real code path."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from dynaflow.cli import main


def test_train_bad_data_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, states=np.zeros((4, 20, 36)))
    assert main(["train", "--data", str(bad), "--save-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"dynaflow train: error: {bad}: key 'states': expected shape (N, T, 37), got (4, 20, 36)"
    assert main(["train", "--epochs", "3"]) == 2
    assert "--data is required" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--coordinator", "localhost:1234"], "--coordinator needs --num-processes and --process-id as well"),
        (["--num-processes", "2", "--process-id", "0"], "--num-processes / --process-id need --coordinator"),
        (["--process-id", "1"], "--num-processes / --process-id need --coordinator"),
        (["--local-device-ids", "0"], "--local-device-ids needs --coordinator (explicit layout) or"),
        (
            ["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "2"],
            "--process-id must be in [0, 2), got 2",
        ),
        (["--coordinator", "node0", "--num-processes", "2", "--process-id", "0"], "must be HOST:PORT"),
        (
            ["--coordinator", "localhost:1234", "--num-processes", "2", "--process-id", "0"],
            "must run before any JAX computation",
        ),
    ],
)
def test_train_multi_process_flags_are_checked(flags, message, tmp_path, capsys):
    """Bad multi-process layouts fail in one line before anything connects (this process has already
    computed, so even a good layout is refused: initialization must come first)."""
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()
    code = main(["train", "--data", "x.npz", "--save-dir", str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("dynaflow train: error: ") and message in err, err
    assert "\n" not in err and not (tmp_path / "r").exists()


def test_train_distributed_without_a_cluster_is_one_line(tmp_path):
    """--distributed outside a cluster job: one line saying what JAX looked for and what to give."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "KUBERNETES_"))}
    cmd = [sys.executable, "-m", "dynaflow.cli", "train", "--data", "x.npz", "--distributed"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert err[0].startswith("dynaflow train: error: --distributed: no cluster layout found")
    assert "give --coordinator, --num-processes and --process-id" in err[0]


def test_train_asks_for_wandb_when_missing(gait_npz, tmp_path):
    try:
        import wandb  # noqa: F401

        pytest.skip("wandb is installed here")
    except ImportError:
        pass
    with pytest.raises(SystemExit, match=r"--wandb offline needs the wandb package; install it with"):
        main(
            [
                "train",
                "--data",
                str(gait_npz),
                "--wandb",
                "offline",
                "--horizon",
                "8",
                "--save-dir",
                str(tmp_path / "r"),
            ]
        )


def test_sample_and_evaluate_a_trained_checkpoint(trained_run, trot_npz, tmp_path, capsys):
    out = tmp_path / "s.npz"
    run = str(trained_run.run_dir)
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                run,
                "--from-dataset",
                str(trot_npz),
                "--num-samples",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with np.load(out, allow_pickle=False) as f:
        assert f["states"].shape == (4, 9, 37) and f["actions"].shape == (4, 8, 12)
        assert f["conditionings"].shape == (4, 7)
    assert (
        main(
            [
                "sample",
                "--checkpoint",
                run,
                "--x0",
                "home",
                "--cond",
                "0.3 0 0 1 0 0 0",
                "--num-samples",
                "4",
                "--ode-steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert main(["sample", "--checkpoint", run, "--x0", "home", "--num-samples", "4", "--out", str(out)]) == 2
    assert "--cond: this checkpoint needs a 7-D conditioning" in capsys.readouterr().err

    metrics_path = tmp_path / "m.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                f"{run}/best",
                "--dataset",
                str(trot_npz),
                "--num-samples",
                "16",
                "--batch",
                "4",
                "--long-seconds",
                "1",
                "--no-best-action",
                "--out",
                str(metrics_path),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "SAE max (rollout form)" in table and "TRE joint angles [rad]" in table
    assert "sampling time per batch, warm [ms]" in table  # 16 samples in batches of 4: warm calls exist
    m = json.loads(metrics_path.read_text())
    assert m["episodes"].startswith("held-out")  # the run's validation episodes: 2 episodes of 4 s
    assert (
        m["num_samples"] == 16
        and m["long_same_success"] == 1.0
        and m["sae_max"] <= 1e-3
        and np.isfinite(m["ref_div_max"])
    )
    assert 0 < m["tre"] < 1.0 and m["use_ema"] is True
    assert m["sae_one_step_max"] <= 1e-3 and 0 <= m["exec_reference_success"] <= 1 and "mmd_rbf" in m


def _parsers(parser, prefix=("dynaflow",)):
    import argparse

    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*prefix, name))


def test_every_flag_has_help_and_its_default(capsys):
    """`--help` everywhere: no raw markup, every flag explained, and every default shown (once)."""
    import argparse

    from dynaflow.cli import build_parser

    for path, parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "``" not in text, path
        for action in parser._actions:
            if not action.option_strings or isinstance(
                action, argparse._HelpAction | argparse._VersionAction
            ):
                continue
            assert action.help, (path, action.option_strings)
            shown = (
                parser._get_formatter()._get_help_string(action) if parser.formatter_class else action.help
            )
            doubled = re.search(r"\(default[^)]*\)\s*\(default", shown)
            assert not doubled, (path, action.option_strings, shown)  # the default said once
            if action.default not in (None, False, [], argparse.SUPPRESS) and not isinstance(
                action.default, bool
            ):
                assert "default" in shown, (path, action.option_strings, shown)
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "--num-samples" not in capsys.readouterr().out  # generate makes one motion


def test_train_help_comes_from_the_config(capsys):
    from dynaflow.config import leaf_fields

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for leaf in leaf_fields().values():
        if leaf.flag:
            assert leaf.flag in text and f"--{leaf.path}" in text, leaf.flag
    assert "--preset {paper,cpu}" in text and "(default 384)" in text and "(default 0.0001)" in text
