"""Scoring a model clip by clip (:mod:`dynaflow.evaluate.clips`): contact patterns, style against standing
still, speed / direction / turning rules, the ghost's alignment, and a short suite run with its videos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dynaflow.data import load_dataset
from dynaflow.data.sources.gaits import heading_velocity, start_state, yaw_of
from dynaflow.evaluate.clips import (
    Clip,
    align_to,
    clip_figures,
    clip_section,
    clip_suite,
    clips_of,
    contact_pattern,
    read_summary,
    style_error,
)


@pytest.fixture(scope="module")
def gaits(gait_npz):
    ds = load_dataset(gait_npz)
    gait = ds.conditionings[:, 0, 3:].argmax(-1)  # trot pace bound pronk (all zeros: stand)
    moving = ds.conditionings[:, 0, :3].any(-1)
    return ds, {
        name: int(np.flatnonzero((gait == k) & moving & ds.conditionings[:, 0, 3:].any(-1))[0])
        for k, name in enumerate(("trot", "pace", "bound", "pronk"))
    }


def test_contact_patterns_of_the_gait_library(gaits):
    """A simulated trot has its diagonal pairs in phase and lateral ones opposed; a pace the reverse."""
    ds, idx = gaits
    trot = contact_pattern(ds.states[idx["trot"], 50:])
    pace = contact_pattern(ds.states[idx["pace"], 50:])
    assert trot["diagonal"] > 0.3 > trot["lateral"]
    assert pace["lateral"] > 0.3 > pace["diagonal"]
    assert len(trot["duty"]) == 4 and all(0 < d < 1 for d in trot["duty"])


def test_clip_figures_score_the_clip_itself_and_standing_still(gaits, rollout):
    """The clip scored against itself meets every rule with style error 0; standing still meets none of
    the motion rules and has style ratio 1."""
    ds, idx = gaits
    X = ds.states[idx["trot"]].astype(np.float64)
    clip = Clip("trot", None, heading_velocity(X, 0.02), X)
    stand = start_state(rollout)
    own = clip_figures(X, clip, stand, 0.02)
    assert own["upright"] and own["speed_ok"] and own["direction_ok"] and own["contacts_ok"]
    assert own["style_error"] == pytest.approx(0.0, abs=0.02) and own["style_ratio"] < 0.1
    held = stand.copy()
    held[19:] = 0.0  # held still
    still = clip_figures(np.repeat(held[None], 200, 0), clip, stand, 0.02)
    assert still["upright"] and not still["speed_ok"] and not still["direction_ok"]
    assert still["style_ratio"] == pytest.approx(1.0)
    assert style_error(stand[None], X) == pytest.approx(still["style_error"])
    backwards = X.copy()
    backwards[:, 19:21] *= -1  # the same legs, the trunk moving the other way
    assert clip_figures(backwards, clip, stand, 0.02)["direction_ok"] is False
    wz = float(heading_velocity(X[50:], 0.02)[2])  # this trot turns (|wz| about 0.4 rad/s)
    same_way = clip_figures(X, Clip("turn", None, np.array([0.0, 0.0, 1.5 * wz]), X), stand, 0.02)
    assert same_way["turn_ok"] is True and same_way["speed_ok"] is None  # a turn on the spot: no speed
    assert clip_figures(X, Clip("turn", None, np.array([0.0, 0.0, -wz]), X), stand, 0.02)["turn_ok"] is False
    assert (
        clip_figures(X, Clip("turn", None, np.array([0.0, 0.0, 3 * wz]), X), stand, 0.02)["turn_ok"] is False
    )


def test_ghost_is_aligned_to_the_start(gaits):
    ds, idx = gaits
    X = ds.states[idx["pace"]].astype(np.float64)
    x0 = X[0].copy()
    x0[:2] = [3.0, -1.0]
    x0[3:7] = [np.cos(0.5), 0, 0, np.sin(0.5)]  # heading 1 rad
    g = align_to(X, x0)
    np.testing.assert_allclose(g[0, :2], x0[:2])
    assert float(yaw_of(g[0])) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(heading_velocity(g, 0.02), heading_velocity(X, 0.02), atol=1e-9)
    np.testing.assert_allclose(g[:, 2], X[:, 2])
    np.testing.assert_allclose(g[:, 22:], X[:, 22:])


def test_clip_suite_runs_each_clip_and_keeps_a_ghost(policy, trot_npz):
    """Two trot episodes as clips, 0.5 s each: one cell per clip and seed, scored on the reference replay,
    the kept run with its aligned ghost, and a report section."""
    ds = load_dataset(trot_npz)
    clips = clips_of(ds, None, max_clips=2)
    assert [c.name for c in clips] == ["episode 0", f"episode {ds.num_episodes - 1}"]
    res = clip_suite(policy, clips, seconds=0.5, seeds=1, keep=["episode 0"])
    assert res["fidelity"] == "reference" and len(res["cells"]) == 2
    cell = res["cells"][0]
    for key in (
        "upright",
        "upright_same",
        "upright_phi",
        "achieved",
        "speed_ok",
        "style_ratio",
        "contacts",
        "clip_contacts",
    ):
        assert key in cell
    assert cell["upright_phi"] == cell["upright_same"]  # Φ and its MuJoCo C replay agree over 0.5 s
    X, ghost = res["kept"]["episode 0"]
    assert X.shape == (26, 37) and ghost.shape[1] == 37
    np.testing.assert_allclose(ghost[0, :2], X[0, :2], atol=1e-9)
    a = res["summary"]["all"]
    assert a["runs"] == 2 and 0 <= a["upright"] <= 1 and 0 <= a["upright_phi"] <= 1
    section = clip_section(res, "DynaFlow")
    assert len(section["rows"]) == 2 and len(section["rows"][0]) == len(section["header"])


def test_demo_scores_imported_clips_with_ghost_videos(policy, tmp_path, capsys):
    """The demo's generation stage on imported clips (``dynaflow demo --data clips.npz``): every clip is
    scored under its own conditioning, named from the import summary, and rendered with the clip as a
    ghost."""
    import imageio.v3 as iio
    from test_clips import walk

    from dynaflow.cli import main
    from dynaflow.data.sources import clips as C
    from dynaflow.demo import StageBar, generate_clips, settings_for

    paths = []
    for name, yaw_rate in (("trot_straight", 0.0), ("trot_turning", 0.5)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(C.export_clip(walk(seconds=1.0, yaw_rate=yaw_rate), C.PROFILES["go2"])))
        paths.append(str(path))
    data = tmp_path / "clips.npz"
    assert main(["data", "import", *paths, "--robot", "go2", "--label", "trot", "--out", str(data)]) == 0
    capsys.readouterr()
    settings = settings_for(1.0)
    bar = StageBar(["generate"], 60.0)
    clips = clips_of(load_dataset(data), read_summary(data), settings.max_clips)
    result, videos = generate_clips(policy, clips, settings, 0, bar, tmp_path / "out")
    assert [c["clip"] for c in result["cells"]] == ["trot_straight", "trot_turning"]
    assert result["cells"][1]["clip_speed"][2] > 0.3  # the turning clip's own yaw rate
    assert set(videos) == {"clip trot_straight", "clip trot_turning"}
    frames = iio.imread(tmp_path / "out" / videos["clip trot_turning"])
    assert frames.ndim == 4 and frames.shape[0] >= 10 and frames.std() > 5
