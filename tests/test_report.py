"""The multi-method report on synthetic runs: files written, NaN -> null, "n/a" cells, embedded PNGs."""

from __future__ import annotations

import base64
import json
import math
import re
import warnings

import numpy as np
import pytest

from dynaflow.evaluate.catalogue import ROWS, format_markdown_table
from dynaflow.evaluate.headline import SAE_AGREEMENT, format_headline, walks
from dynaflow.evaluate.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
H, T, N = 16, 60, 3


def _states(rng: np.random.Generator, n: int = N, h: int = H) -> np.ndarray:
    X = np.zeros((n, h + 1, 37))
    X[..., 2] = 0.3 + 0.01 * rng.standard_normal((n, h + 1))
    X[..., 3] = 1.0
    X[..., 7:19] = np.tile([0.0, 0.9, -1.8], 4) + 0.1 * rng.standard_normal((n, h + 1, 12))
    X[..., 19] = 0.5 + 0.05 * rng.standard_normal((n, h + 1))
    return X


def _contacts(offsets) -> np.ndarray:
    phase = (np.arange(T)[:, None] / 25.0 - np.asarray(offsets)[None]) % 1.0
    return phase < 0.6


def _metrics(method: str, **over) -> dict:
    m = {
        "method": method,
        "num_samples": np.int64(8),
        "horizon": H,
        "ode_steps": 1,
        "dataset": "/data/go2_trot.npz",
        "tre": 0.21,
        "tre_base_pos": 0.012,
        "tre_base_quat": 0.01,
        "tre_joint_pos": 0.08,
        "tre_base_linvel": 0.1,
        "tre_base_angvel": 0.2,
        "tre_joint_vel": 1.5,
        "sae_max": 2.3e-5,
        "sae_mean": np.float32(3.1e-7),
        "sae_max_base_pos": 1e-6,
        "sae_one_step_max": 1.1e-5,
        "sae_one_step_mean": 2e-7,
        "ref_div_max": 0.03,
        "ref_div_mean": 0.004,
        "exec_reference_success": 1.0,
        "exec_reference_drift_mean": 0.01,
        "exec_reference_drift_max": 0.02,
        "foot_penetration_max": 0.002,
        "foot_sliding_mean": 0.05,
        "joint_limit_violation_max": 0.0,
        "quat_norm_error_max": 1e-7,
        "mmd_rbf": 0.02,
        "diversity": 3.4,
        "sample_seconds_per_batch": 0.0123,
        "first_call_seconds": 12.5,
        "long_seconds": 10.0,
        "long_generated_forward_m": 4.8,
        "long_same_success": 1.0,
        "long_same_drift_mean": 0.001,
        "long_reference_success": 0.75,
        "long_reference_drift_mean": 0.2,
        "long_generated_upright": 1.0,
    }
    m.update(over)
    return m


@pytest.fixture()
def runs() -> list[dict]:
    rng = np.random.default_rng(0)
    X_ref = _states(rng)
    drift = np.linspace(0.0, 0.2, T + 1)
    dynaflow = {
        "name": "dynaflow",
        "checkpoint": "runs/dynaflow/best",
        "method": "dynaflow",
        "metrics": _metrics("dynaflow"),
        "plots": {
            "X_gen": X_ref + 0.01 * rng.standard_normal(X_ref.shape),
            "X_ref": X_ref,
            "sae_over_horizon": np.geomspace(1e-7, 1e-5, H),
            "contacts": _contacts([0, 0.5, 0.5, 0]),
            "contacts_ref": _contacts([0, 0.5, 0.5, 0]),
            "long_drift": drift,
            "long_forward": np.linspace(0.0, 4.8, T + 1),
            "ctrl_dt": 0.02,
        },
        "videos": ["videos/dynaflow.mp4", "videos/dynaflow.gif"],
    }
    # a state-only model: no actions, so no SAE, no executability (absent keys or NaN), and fewer plots
    state_fm = {
        "name": "state-fm | v2",  # a pipe in a column title must not break the Markdown table
        "checkpoint": "runs/state_fm/best",
        "method": "state-fm",
        "metrics": {
            k: v
            for k, v in _metrics("state-fm", sae_max=float("nan"), exec_reference_success=np.nan).items()
            if not k.startswith(("sae_mean", "sae_one_step", "ref_div", "exec_reference_drift", "long_"))
        },
        "plots": {"X_gen": X_ref + 0.05, "X_ref": X_ref, "sae_over_horizon": None},
    }
    bc = {
        "name": "bc",
        "checkpoint": "runs/bc/best",
        "method": "bc",
        "metrics": _metrics(
            "bc",
            tre=0.5,
            long_reference_success=0.25,
            track_vx_err=0.1,
            gait_accuracy_trot=0.5,
            long_measured_on="reference replay",
        ),
        "plots": {
            "sae_over_horizon": np.r_[0.0, np.geomspace(1e-3, 1e-1, H - 1)],  # a zero on a log axis
            "contacts": _contacts([0, 0.3, 0.6, 0.1]),
            "contacts_group": "trot",
            "long_drift": 3 * drift,
        },
    }
    return [dynaflow, state_fm, bc]


PROVENANCE = {
    "command": "dynaflow compare --checkpoints a b c --out reports/x",
    "dataset": "/data/go2_trot.npz",
    "seeds": [0, 1],
    "machine": "test <machine>",
    "notes": "synthetic & fake",
}


def test_write_report_writes_every_file(tmp_path, runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the listed videos do not exist here
        paths = write_report(tmp_path / "report", runs, PROVENANCE)

    for key in ("metrics", "markdown", "html"):
        assert paths[key].is_file() and paths[key].stat().st_size > 0
    stems = {p.stem for p in paths["plots"]}
    # no transfer suite here: the headline figure falls back to the long-horizon plot
    assert stems == {"headline", "joints", "base", "sae_over_horizon", "contacts", "long_horizon"}
    for p in paths["plots"]:
        data = p.read_bytes()
        assert p.parent.name == "plots" and len(data) > 1000 and data.startswith(PNG_MAGIC)
    assert not list((tmp_path / "report").rglob("*.tmp"))  # atomic writes leave no temporaries

    # metrics.json: strict JSON (no NaN token), NaN -> null, numpy scalars -> numbers, absent keys absent
    text = paths["metrics"].read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert doc["provenance"]["command"] == PROVENANCE["command"] and doc["provenance"]["seeds"] == [0, 1]
    assert "date" in doc["provenance"]
    assert [r["name"] for r in doc["runs"]] == ["dynaflow", "state-fm | v2", "bc"]
    assert [r["method"] for r in doc["runs"]] == ["dynaflow", "state-fm", "bc"]
    fm = doc["runs"][1]["metrics"]
    assert fm["sae_max"] is None and fm["exec_reference_success"] is None and "sae_mean" not in fm
    first = doc["runs"][0]["metrics"]
    assert first["num_samples"] == 8 and math.isclose(first["sae_mean"], 3.1e-7, rel_tol=1e-6)

    # report.md: provenance first, a table with one column per run, n/a for what a method lacks
    md = paths["markdown"].read_text()
    assert "Produced by: `dynaflow compare --checkpoints a b c --out reports/x`" in md.split("## Runs")[0]
    full = md[md.index("## Metrics") :].split("\n## ")[0]  # the full table, below the headline
    table = [line for line in full.splitlines() if line.startswith("|")]
    header = re.split(r"(?<!\\)\|", table[0].strip())[1:-1]
    assert [h.strip() for h in header] == ["metric", "dynaflow", "state-fm \\| v2", "bc"]
    for line in table:
        assert len(re.split(r"(?<!\\)\|", line.strip())) - 2 == 4, line
    sae_row = next(line for line in table if line.startswith("| SAE max (rollout form)"))
    assert "2.30e-05" in sae_row and "n/a" in sae_row
    exec_row = next(line for line in table if line.startswith("| executable in reference sim"))
    assert "100.0" in exec_row and "n/a" in exec_row
    assert "| sampling time per batch, warm [ms] | 12.3 |" in md
    assert "**0.2100**" in md  # the lower TRE is bold
    assert "command tracking |Δvx|".replace("|", "\\|") in md  # a row only bc has: n/a elsewhere
    assert "| gait accuracy: trot [%] | n/a | n/a | 50.0 |" in md  # per-gait rows come from the keys
    assert "| gait accuracy [%] |" not in md  # a row no run has is left out
    assert "| tracking and gait measured on | n/a | n/a | reference replay |" in md
    assert "## Definitions" in md and "steps ≥ 1" in md
    for p in paths["plots"]:
        assert f"](plots/{p.name})" in md
    assert "[videos/dynaflow.mp4](videos/dynaflow.mp4)" in md

    # report.html: the same table, plots embedded (self-contained), text escaped
    page = paths["html"].read_text()
    assert page.count('<table class="metrics">') == 1 and page.count("<th>") >= 1 + len(runs)
    assert "n/a" in page and "test &lt;machine&gt;" in page and "synthetic &amp; fake" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(paths["plots"])
    assert all(base64.b64decode(b).startswith(PNG_MAGIC) for b in images)
    assert "<video" in page and 'src="videos/dynaflow.gif"' in page
    assert "plots/" not in page  # no link to a file outside the page


def test_minimal_runs_without_plots_or_provenance(tmp_path):
    runs = [
        {"name": "only", "checkpoint": "c", "method": "state-fm", "metrics": {"tre": float("nan")}},
        {"checkpoint": "runs/bc_run", "metrics": {}},  # no name, no method, no metrics, no plots
    ]
    with pytest.warns(UserWarning, match="provenance lacks"):
        paths = write_report(tmp_path, runs, {"command": "x"})
    assert paths["plots"] == [] and not list((tmp_path / "plots").iterdir())
    doc = json.loads(paths["metrics"].read_text())
    assert doc["runs"][0]["metrics"] == {"tre": None} and doc["runs"][1]["name"] == "bc_run"
    table = format_markdown_table(runs)
    assert table.splitlines()[0] == "| metric | only | bc_run |"
    assert "| TRE, normalised RMS | n/a | n/a |" in table
    assert "<table" in paths["html"].read_text()


def test_bad_plot_input_is_skipped_with_a_warning(tmp_path):
    run = {
        "name": "a",
        "metrics": {"tre": 0.1},
        "plots": {"X_gen": np.zeros((5, 10)), "long_drift": [0, 1, 2]},
    }
    with pytest.warns(UserWarning, match="X_gen"):
        paths = write_report(tmp_path, [run], {"command": "x", "dataset": "d", "seeds": 0})
    assert [p.stem for p in paths["plots"]] == ["headline", "long_horizon"]  # the headline's fallback


def test_empty_runs_rejected(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        write_report(tmp_path, [], {"command": "x"})


def test_every_row_has_a_unique_key_and_a_definition():
    keys = [r.key for r in ROWS]
    assert len(keys) == len(set(keys))
    assert all(r.definition for r in ROWS if r.text is None)


def _cell(world: str, gait: str, command, upright=True, ratio=None, on_speed=False, mode="open", seed=0):
    return {
        "mode": mode,
        "perturbation": world,
        "gait": gait,
        "command": list(command),
        "seed": seed,
        "upright": upright,
        "fell_at_s": None if upright else 2.5,
        "distance_ratio": ratio,
        "on_speed": on_speed,
    }


def _transfer(cells: list[dict]) -> dict:
    """A transfer-suite result as :func:`~dynaflow.evaluate.transfer.transfer_suite` returns it (the parts
    the report reads), summarised by the suite's own function."""
    from dynaflow.evaluate.transfer import summarise

    worlds = list(dict.fromkeys(c["perturbation"] for c in cells))
    return {
        "seconds": 10.0,
        "replan_every": 8,
        "perturbations": [{"name": w, "description": w} for w in worlds],
        "cells": cells,
        "summary": summarise(cells),
    }


def _headline(md: str) -> str:
    return md[md.index("## Headline") : md.index("## Runs")]


def test_headline_comes_before_the_full_table(tmp_path, runs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths = write_report(tmp_path, runs, PROVENANCE)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert md.index("## Headline: does it work?") < md.index("| metric |") < md.index("## Plots")
    assert md.splitlines()[2] == "## Headline: does it work?"  # right after the title
    head = _headline(md)
    for title in ("### Does each gait walk?", "### Admissible?", "### Does it transfer?"):
        assert title in head
    assert "](plots/headline.png)" in head
    # admissibility beside the baselines: dynaflow and bc pass, the states-only model does not
    assert "| dynaflow | 2.30e-05 |" in head and "✓ its states are the rollout" in head
    state_fm = next(line for line in head.splitlines() if line.startswith("| state-fm \\| v2 |"))
    assert "✗ no actions" in state_fm
    assert "- Admissible: dynaflow ✓, state-fm \\| v2 ✗, bc ✓." in head
    # no transfer suite: said, not an error; the long-horizon replays give an upright-only row per run
    assert "Transfer: not run in this evaluation" in head
    assert "| dynaflow | ✓ upright 100 % | ✗ upright 75 % |" in head
    assert "| bc | ✓ upright 100 % | ✗ upright 25 %, \\|Δvx\\| 0.10 m/s |" in head  # tracked there
    # HTML: the headline section (verdicts, figure, tables) precedes the metrics table
    assert page.index('<section class="headline">') < page.index('<table class="metrics">')
    top = page[: page.index('<table class="metrics">')]
    assert "data:image/png;base64," in top and '<td class="fail">' in top and '<td class="pass">' in top
    doc = json.loads(paths["metrics"].read_text())
    assert [s["title"] for s in doc["headline"]["sections"]][0] == "Does each gait walk?"


def test_a_gait_that_falls_is_not_walking(tmp_path):
    cells = [
        _cell("nominal", "trot", (0.5, 0, 0), ratio=0.9),
        _cell("nominal", "trot", (0.3, 0, 0.4), ratio=0.7),
        _cell("reference", "trot", (0.5, 0, 0), ratio=0.8),
        _cell("reference", "trot", (0.3, 0, 0.4), upright=False, ratio=0.1),
        _cell("nominal", "pace", (0.3, 0, 0), ratio=0.2),  # upright, but a fifth of the distance
        _cell("reference", "pace", (0.3, 0, 0), upright=False, ratio=0.9),  # far, but it fell
        _cell("nominal", "stand", (0, 0, 0), on_speed=True),
        _cell("push 30 N", "trot", (0.5, 0, 0), upright=False, ratio=0.3),
        _cell("push 30 N", "trot", (0.5, 0, 0), upright=True, ratio=0.6, mode="closed"),
    ]
    assert [walks(c) for c in cells[:7]] == [True, True, True, False, False, False, True]
    run = {
        "name": "dynaflow",
        "method": "dynaflow",
        "metrics": {"sae_max": 2e-5},
        "transfer": _transfer(cells),
    }
    paths = write_report(tmp_path, [run], {"command": "x", "dataset": "d", "seeds": 0})
    head = _headline(paths["markdown"].read_text())
    rows = {line.split(" | ")[0]: line for line in head.splitlines() if line.startswith("| ")}
    trot, pace, stand = (
        rows["| trot (0.5, 0, 0; 0.3, 0, 0.4)"],
        rows["| pace (0.3, 0, 0)"],
        rows["| stand (0, 0, 0)"],
    )
    assert "| ✓ walks (upright 2/2, distance 0.80, on speed 0/2) | ✗ walks in 1/2 runs (upright 1/2" in trot
    assert "fell at 2.5 s" in trot
    assert "| ✗ does not walk (upright 1/1, distance 0.20" in pace and pace.endswith("fell at 2.5 s) |")
    assert "| ✓ stands (upright 1/1, on speed 1/1) | n/a |" in stand  # no reference run: n/a
    assert "- Walks: dynaflow in Φ (MuJoCo C, Φ's options): 2/3 gaits pass; dynaflow in reference" in head
    assert "reference simulator: 0/2 gaits pass." in head
    # transfer: open loop fell (named worlds), closed loop upright
    assert "| dynaflow, open loop | 3 | 62 % of 8 |" in head
    assert "✗ fell in reference (trot, pace); push 30 N (trot) |" in head
    assert "| dynaflow, closed loop | 1 | 100 % of 1 |" in head and "✓ upright in every run" in head
    assert (tmp_path / "plots" / "headline.png").read_bytes().startswith(PNG_MAGIC)
    assert "sae" not in "".join(p.stem for p in paths["plots"])  # only what the run has is drawn


def test_headline_copes_with_partial_results(tmp_path):
    # one run: no baseline, no transfer, no long horizon, no reference simulator
    run = {"name": "solo", "method": "dynaflow", "metrics": {"tre": 0.3}}
    paths = write_report(tmp_path / "a", [run], {"command": "x", "dataset": "d", "seeds": 0})
    head = _headline(paths["markdown"].read_text())
    assert "Nothing was replayed in a simulator" in head and "Transfer: not run in this evaluation" in head
    assert "Walks: per gait, not run in this evaluation" in head
    assert "headline.png" not in head and paths["plots"] == []
    # a gait missing and no reference world: rows for what ran, the reference world's absence said
    only = {
        "name": "d",
        "metrics": {},
        "transfer": _transfer([_cell("nominal", "bound", (0.4, 0, 0), ratio=1)]),
    }
    paths = write_report(
        tmp_path / "b", [only, {"name": "empty"}], {"command": "x", "dataset": "d", "seeds": 0}
    )
    head = _headline(paths["markdown"].read_text())
    assert "| bound (0.4, 0, 0) | ✓ walks" in head and "| trot" not in head
    assert "The reference world was not among the transfer worlds of d." in head
    assert "Not replayed in a simulator: empty" in head
    assert "| empty | n/a | n/a | n/a | n/a |" in head
    # the same headline from a written metrics.json (what the CLI can print)
    runs = json.loads(paths["metrics"].read_text())["runs"]
    assert format_headline(runs).startswith("- Walks: d in Φ (MuJoCo C, Φ's options): 1/1 gaits pass.")


def test_admissibility_threshold_is_the_physics_check_tolerance():
    from dynaflow.physics.check import AGREEMENT

    assert SAE_AGREEMENT == AGREEMENT
