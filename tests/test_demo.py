"""`dynaflow demo` in its reduced mode, and the commands a user runs on its output (generate, render,
sample), through the real code path."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from dynaflow.cli import main


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--out", str(out), "--budget-minutes", "4"]) == 0
    return out


def test_demo_writes_a_complete_report(demo_dir, capsys):
    for name in ("report.md", "report.html", "metrics.json", "demo.json"):
        assert (demo_dir / name).stat().st_size > 0, name
    summary = json.loads((demo_dir / "demo.json").read_text())
    assert set(summary["training"]) == {"dynaflow", "state-fm"}
    # a budget of work: the reduced mode's fixed updates (unless the upper limit cut them, which it says)
    planned = {name: r["updates_planned"] for name, r in summary["training"].items()}
    assert planned == {"dynaflow": 200, "state-fm": 100}
    for r in summary["training"].values():
        assert r["steps"] == r["updates_planned"] or (r["cut_short"] and r["steps"] >= 1)
    assert summary["evaluation_plan"]["plan"] == "reduced mode"
    gaits = {r["gait"] for r in summary["generation"]}
    assert gaits == {"trot", "pace", "bound", "pronk", "stand"}
    assert set(summary["videos"]) == gaits | {"transfer"}  # one video per gait, one of a perturbed run
    for rel in summary["videos"].values():
        frames = iio.imread(demo_dir / rel)
        assert frames.ndim == 4 and frames.shape[0] >= 10 and frames.std() > 5  # not blank
    md = (demo_dir / "report.md").read_text()
    assert "| metric | dynaflow | state-fm |" in md and "Generation per gait" in md
    assert "dynaflow demo --out" in md  # the report says what produced it
    assert "Transfer, open loop (dynaflow)" in md and "Transfer, closed loop (dynaflow)" in md
    transfer = summary["transfer"]["summary"]
    assert transfer["open"]["all"]["runs"] == 3 * 5 and transfer["closed"]["all"]["runs"] == 2 * 5
    assert 0 <= summary["metrics"]["dynaflow"]["transfer_closed_upright"] <= 1
    for png in ("joints", "base", "contacts", "long_horizon", "sae_over_horizon", "transfer"):
        assert (demo_dir / "plots" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    w = summary["walk_check"]  # closed loop in the reference simulator, command held
    assert w["how"].startswith("closed loop in MuJoCo C (reference solver)") and w["seconds"] > 0
    assert w["passed"] == (w["upright"] and w["forward_m"] >= 0.5 * w["commanded_forward_m"])
    assert {"replay_same_upright", "replay_reference_forward_m"} <= set(w["open_loop"])


def test_generate_closed_loop_with_a_push_and_a_video(demo_dir, tmp_path, capsys):
    out = tmp_path / "motion.npz"
    args = [
        "generate",
        "--checkpoint",
        str(demo_dir / "runs" / "dynaflow"),
        "--schedule",
        "trot:0.4:0.5,turn:0.3:0.6:0.5",
    ]
    args += [
        "--seconds",
        "1",
        "--closed-loop",
        "--replan-every",
        "4",
        "--push",
        "40N@0.3s",
        "--out",
        str(out),
    ]
    args += ["--video", str(tmp_path / "motion.gif")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "closed loop in MuJoCo C (same), replanning every 4 steps" in text and "latency median" in text
    with np.load(out) as f:
        assert f["states"].shape == (51, 37) and f["actions"].shape == (50, 12)
        assert f["latencies"].shape == (13,)
        np.testing.assert_allclose(f["conditionings"][0, :3], [0.4, 0, 0])
        np.testing.assert_allclose(f["conditionings"][-1, :3], [0.3, 0, 0.6])
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["closed_loop"] and summary["sampler_calls"] == 13
    assert iio.imread(tmp_path / "motion.gif").shape[0] == 51


def test_generate_errors_are_one_line(demo_dir, capsys):
    ckpt = str(demo_dir / "runs" / "dynaflow")
    assert main(["generate", "--checkpoint", ckpt, "--schedule", "gallop:1:2"]) == 2
    assert "unknown gait 'gallop'" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", ckpt, "--schedule", "trot:0.5:1", "--push", "30N@1s"]) == 2
    assert "--push needs --closed-loop" in capsys.readouterr().err


def test_render_checkpoint_with_ghost_and_npz(demo_dir, tmp_path, capsys):
    from dynaflow.data import bundled_dataset

    gif = tmp_path / "gen.gif"
    args = [
        "render",
        "--checkpoint",
        str(demo_dir / "runs" / "dynaflow"),
        "--dataset",
        str(bundled_dataset()),
    ]
    args += ["--seconds", "0.4", "--ghost-demo", "--width", "160", "--height", "90", "--out", str(gif)]
    assert main(args) == 0
    assert iio.imread(gif).shape[:3] == (21, 90, 160)
    with np.load(tmp_path / "gen.motion.npz") as f:  # the generated motion is saved next to the video
        assert f["states"].shape == (21, 37) and f["demo"].shape == (21, 37)
        states = f["states"][None]  # a batch of one: --sample picks from batches
    npz = tmp_path / "states.npz"
    np.savez(npz, states=states)
    mp4 = tmp_path / "npz.mp4"
    assert main(["render", "--npz", str(npz), "--out", str(mp4), "--width", "160", "--height", "90"]) == 0
    assert iio.imread(mp4).shape[0] == states.shape[1]
    assert main(["render", "--npz", str(npz), "--out", str(tmp_path / "x.avi")]) == 2
    assert "x.avi" in capsys.readouterr().err


def test_the_evaluation_is_planned_inside_the_time_left():
    """The reference evaluation when it fits the time left at this machine's speed; else the first shorter
    plan that fits (the shortest when none does), with the reason the report gives."""
    from dynaflow.demo import REFERENCE, DemoSettings, plan_evaluation, settings_for

    full = DemoSettings()
    need = REFERENCE["evaluation_s"]
    s, plan = plan_evaluation(full, left_s=need + 1, speed=1.0)
    assert plan["plan"] == "reference" and s == full and "why" not in plan
    s, plan = plan_evaluation(full, left_s=need + 1, speed=0.5)  # twice as slow: the reference needs 2x
    assert plan["plan"] == "shorter runs" and s.seconds == 5.0 and not s.best_action
    assert "--budget-minutes" in plan["why"] and f"{2 * need / 60:.1f} min here" in plan["why"]
    s, plan = plan_evaluation(full, left_s=1.0, speed=1.0)
    assert plan["plan"] == "one command per gait" and s.per_gait == 1
    reduced = settings_for(1.5)
    assert plan_evaluation(reduced, left_s=0.0, speed=0.1) == (reduced, plan_evaluation(reduced, 0.0, 1)[1])
    assert settings_for(20, updates=1000).dynaflow_updates == 1000 == settings_for(20, 1000).state_fm_updates
