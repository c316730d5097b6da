"""The report's headline: does each gait walk in each simulator, is each method admissible, does it transfer.

Built from the same run dicts as the full table (:func:`~dynaflow.evaluate.report.write_report`'s ``runs``,
or the ``runs`` of a written ``metrics.json``), as sections in ``write_report``'s format, with ✓ / ✗ marks
that use the project's existing criteria:

* **walks** (:func:`walks`): a transfer-suite run (:func:`~dynaflow.evaluate.transfer.run_figures`) stayed
  upright (:func:`~dynaflow.physics.stays_up`) the whole run and covered at least half the commanded
  distance along the command (the demo's walk check, ``dynaflow.demo.WALK_CHECK``); a standing command
  instead has to stay on speed (the suite's tolerance). Per gait from the suite's open-loop cells in its
  ``nominal`` world (MuJoCo C with Φ's own model and options, which reproduces Φ to float rounding) and
  its ``reference`` world (the converged solver); without a transfer suite, the long-horizon replays give
  an upright-only row.
* **admissible**: the rollout-form SAE is within :data:`SAE_AGREEMENT`; a model without actions is not.
* **transfer**: every run of a mode stayed upright in every world.

Usage::

    sections = headline_sections(runs)  # [{"title", "text", "header", "rows"}, ...]
    print(format_headline(runs))  # the same as Markdown
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from dynaflow.evaluate.catalogue import NA, md_cell, number, run_metrics, run_name

__all__ = [
    "FAIL",
    "PASS",
    "SAE_AGREEMENT",
    "WALK_FRACTION",
    "admissibility_section",
    "format_headline",
    "headline_sections",
    "transfer_section",
    "verdicts",
    "walk_section",
    "walks",
]

PASS, FAIL = "✓", "✗"
#: A run walks when it covers at least this fraction of the commanded distance (the demo's walk check).
WALK_FRACTION = 0.5
#: Rollout-form SAE up to this counts as admissible: ``dynaflow physics``'s MJX-vs-MuJoCo C agreement
#: tolerance (``dynaflow.physics.check.AGREEMENT``, on positions there, on all 37 state dimensions here).
SAE_AGREEMENT = 1e-3
#: The transfer suite's worlds that the walk table reads, with their column labels.
SIMULATORS = (("nominal", "Φ (MuJoCo C, Φ's options)"), ("reference", "reference simulator"))
_LONG = {"nominal": "long_same_success", "reference": "long_reference_success"}
_NO_TRANSFER = "not run in this evaluation (`dynaflow evaluate --transfer`)"


def walks(cell: dict) -> bool:
    """Whether one transfer-suite cell walks: upright the whole run and at least :data:`WALK_FRACTION`
    of the commanded distance along the command; for a standing command (no distance), on speed."""
    if not cell.get("upright"):
        return False
    ratio = number(cell.get("distance_ratio"))
    return bool(cell.get("on_speed")) if ratio is None else ratio >= WALK_FRACTION


def _open_cells(run: dict, world: str) -> list[dict]:
    cells = (run.get("transfer") or {}).get("cells") or []
    return [c for c in cells if c.get("mode") == "open" and c.get("perturbation") == world]


def _pct(v: float) -> str:
    return f"{100 * v:.0f} %"


def _walk_text(cells: list[dict]) -> str:
    """One gait in one simulator: the mark, then upright, distance, on-speed counts and the first fall."""
    n, k = len(cells), sum(walks(c) for c in cells)
    up = sum(bool(c.get("upright")) for c in cells)
    ratios = [r for r in (number(c.get("distance_ratio")) for c in cells) if r is not None]
    verb = "walks" if ratios else "stands"
    if k == n:
        head = f"{PASS} {verb}"
    elif k == 0:
        head = f"{FAIL} does not {verb[:-1]}"
    else:
        head = f"{FAIL} {verb} in {k}/{n} runs"
    parts = [f"upright {up}/{n}"]
    if ratios:
        parts.append(f"distance {statistics.median(ratios):.2f}")
    parts.append(f"on speed {sum(bool(c.get('on_speed')) for c in cells)}/{n}")
    falls = [t for t in (number(c.get("fell_at_s")) for c in cells) if t is not None]
    if falls:
        parts.append(f"fell at {min(falls):.1f} s")
    return f"{head} ({', '.join(parts)})"


def _long_text(m: dict, world: str) -> str | None:
    """The long-horizon replay in one simulator: upright only (no commanded distance is stored)."""
    v = number(m.get(_LONG[world]))
    if v is None:
        return None
    text = f"{PASS if v >= 1.0 else FAIL} upright {_pct(v)}"
    track = number(m.get("track_vx_err"))
    if world == "reference" and track is not None and m.get("long_measured_on") == "reference replay":
        text += f", |Δvx| {track:.2f} m/s"
    return text


def _command_text(command: Sequence[float]) -> str:
    return ", ".join(f"{float(v):g}" for v in command)


def _walk_columns(runs: Sequence[dict]) -> list[tuple[int, str, str]]:
    """(run index, world, header) for every run and simulator with per-gait cells or long replays."""
    cols = []
    for i, r in enumerate(runs):
        m = run_metrics(r)
        for world, label in SIMULATORS:
            if _open_cells(r, world) or number(m.get(_LONG[world])) is not None:
                cols.append((i, world, label))
    if len({i for i, _, _ in cols}) > 1:
        cols = [(i, w, f"{run_name(runs[i], i)}: {label}") for i, w, label in cols]
    return cols


def walk_section(runs: Sequence[dict]) -> dict:
    """Does each gait walk in each simulator: one row per gait (commands listed), one column per run and
    simulator, and an upright-only row from the long-horizon replays."""
    cols = _walk_columns(runs)
    gaits: dict[str, list[str]] = {}
    for i, world, _ in cols:
        for c in _open_cells(runs[i], world):
            cmds = gaits.setdefault(str(c.get("gait")), [])
            text = _command_text(c.get("command") or ())
            if text not in cmds:
                cmds.append(text)
    rows = []
    for gait, cmds in gaits.items():
        row = [f"{gait} ({'; '.join(cmds)})"]
        for i, world, _ in cols:
            cells = [c for c in _open_cells(runs[i], world) if str(c.get("gait")) == gait]
            row.append(_walk_text(cells) if cells else NA)
        rows.append(row)
    long = [_long_text(run_metrics(runs[i]), w) for i, w, _ in cols]
    if gaits and any(t is not None for t in long):
        rows.append(["long horizon, held-out starts (upright only)", *(t or NA for t in long)])
    header = ["gait (vx, vy, yaw rate)", *(h for _, _, h in cols)]
    if not gaits:  # no per-gait runs: one row per run, one column per simulator
        header = ["long horizon, held-out starts (upright only)", *(label for _, label in SIMULATORS)]
        for i in dict.fromkeys(i for i, _, _ in cols):
            texts = [_long_text(run_metrics(runs[i]), w) for w, _ in SIMULATORS]
            rows.append([run_name(runs[i], i), *(t or NA for t in texts)])
    shown = {i for i, _, _ in cols}
    absent = [run_name(r, i) for i, r in enumerate(runs) if i not in shown]
    text = (
        f"Walks: upright the whole run (trunk up and above 0.15 m) and at least {WALK_FRACTION:g} of the "
        "commanded distance along the command, the demo's walk check; stands (a zero command): upright "
        "and on speed. Counts are over the transfer suite's open-loop runs (the generated actions "
        "replayed unchanged); distance: median distance along the command / commanded; on speed: "
        "within 25 % of the commanded speed. Φ's column is the suite's nominal world, MuJoCo C with Φ's "
        "own model and options (it reproduces Φ to float rounding, see the SAE rows)."
    )
    if not gaits:
        text = (
            f"Per gait: the transfer suite was {_NO_TRANSFER}. Here the long-horizon replays of held-out "
            "starts instead: the fraction upright the whole run (trunk up and above 0.15 m); no commanded "
            "distance is stored for them, so no walk verdict; |Δvx|: command tracking in the reference "
            "replay."
        )
    lacking = [
        run_name(runs[i], i)
        for i in shown
        if _open_cells(runs[i], "nominal") and not _open_cells(runs[i], "reference")
    ]
    if lacking:
        text += f" The reference world was not among the transfer worlds of {', '.join(lacking)}."
    if absent:
        text += f" Not replayed in a simulator: {', '.join(absent)} (no actions, or no replay was run)."
    if not cols:
        return {"title": "Does each gait walk?", "text": "Nothing was replayed in a simulator. " + text}
    return {"title": "Does each gait walk?", "text": text, "header": header, "rows": rows}


def _sci(v: float | None) -> str:
    return NA if v is None else f"{v:.2e}"


def _admissible_text(m: dict) -> str:
    sae = number(m.get("sae_max"))
    if sae is not None:
        if sae <= SAE_AGREEMENT:
            return f"{PASS} its states are the rollout of its actions"
        return f"{FAIL} its states are not the rollout of its actions"
    if any(number(m.get(k)) is not None for k in ("sae_best_action_max", "tre", "long_generated_upright")):
        return f"{FAIL} no actions: nothing guarantees its states are reachable"
    return NA


def admissibility_section(runs: Sequence[dict]) -> dict:
    """Admissibility of every method in the evaluation, DynaFlow beside its baselines."""
    rows = []
    for i, r in enumerate(runs):
        m = run_metrics(r)
        execd = number(m.get("exec_reference_success"))
        rows.append(
            [
                run_name(r, i),
                _sci(number(m.get("sae_max"))),
                _sci(number(m.get("sae_best_action_mean"))),
                NA if execd is None else _pct(execd),
                _admissible_text(m),
            ]
        )
    text = (
        f"Admissible: the rollout-form SAE (generated states vs MuJoCo C's replay of the generated "
        f"actions) at most {SAE_AGREEMENT:g}, the tolerance at which `dynaflow physics` calls MJX and "
        "MuJoCo C in agreement (chosen here for the headline). The best-action SAE scores every model "
        "the same way, states-only ones included: the one-step error left with the best action for "
        "each transition."
    )
    best = [(run_name(r, i), run_metrics(r)) for i, r in enumerate(runs)]
    best = [(n, m.get("method"), number(m.get("sae_best_action_mean"))) for n, m in best]
    best = [(n, meth, v) for n, meth, v in best if v is not None and v > 0]
    ours = [(n, v) for n, meth, v in best if meth == "dynaflow"]
    if ours and len(best) > 1:
        name, v = ours[0]
        others = ", ".join(f"{n} ×{w / v:.3g}" for n, _, w in best if n != name)
        text += f" Best-action SAE relative to {name}'s: {others}."
    header = [
        "method",
        "SAE max (rollout)",
        "SAE mean (best action)",
        "executable in reference sim",
        "admissible",
    ]
    return {"title": "Admissible?", "text": text, "header": header, "rows": rows}


def _fell_in(cells: list[dict], limit: int = 4) -> str:
    worlds: dict[str, list[str]] = {}
    for c in cells:
        if not c.get("upright"):
            gaits = worlds.setdefault(str(c.get("perturbation")), [])
            if str(c.get("gait")) not in gaits:
                gaits.append(str(c.get("gait")))
    items = [f"{w} ({', '.join(g)})" for w, g in worlds.items()]
    more = f", +{len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def transfer_section(runs: Sequence[dict]) -> dict:
    """The transfer suite per run and mode: worlds, runs upright and on speed, and where it fell."""
    rows = []
    for i, r in enumerate(runs):
        result = r.get("transfer") or {}
        for mode, entry in (result.get("summary") or {}).items():
            s = entry.get("all") or {}
            cells = [c for c in result.get("cells") or [] if c.get("mode") == mode]
            up, speed = number(s.get("upright")), number(s.get("on_speed"))
            rel = number(entry.get("distance_vs_nominal_median"))
            verdict = f"{PASS} upright in every run" if up == 1.0 else f"{FAIL} fell in {_fell_in(cells)}"
            rows.append(
                [
                    f"{run_name(r, i)}, {mode} loop",
                    str(len(entry.get("by_perturbation") or {})),
                    NA if up is None else f"{_pct(up)} of {s.get('runs', NA)}",
                    NA if speed is None else _pct(speed),
                    NA if rel is None else f"{rel:.2f}",
                    verdict,
                ]
            )
    title = "Does it transfer?"
    if not rows:
        return {"title": title, "text": f"The transfer suite was {_NO_TRANSFER}."}
    text = (
        "The transfer suite: every gait command in perturbed MuJoCo C worlds, open loop (the generated "
        "actions replayed unchanged) and closed loop (replanning from the measured state). Passes when "
        "every run stays upright in every world (chosen here for the headline); distance vs nominal: "
        "median distance per world over the same command's in the nominal world. Details: the transfer "
        "tables below."
    )
    header = ["run", "worlds", "upright", "on speed", "distance vs nominal", "transfer"]
    return {"title": title, "text": text, "header": header, "rows": rows}


def verdicts(runs: Sequence[dict]) -> list[str]:
    """One line per question: gaits passing per run and simulator, admissibility, transfer."""
    walk = []
    for i, r in enumerate(runs):
        for world, label in SIMULATORS:
            cells = _open_cells(r, world)
            gaits = list(dict.fromkeys(str(c.get("gait")) for c in cells))
            ok = [g for g in gaits if all(walks(c) for c in cells if str(c.get("gait")) == g)]
            if gaits:
                walk.append(f"{run_name(r, i)} in {label}: {len(ok)}/{len(gaits)} gaits pass")
    marks = [(run_name(r, i), _admissible_text(run_metrics(r))) for i, r in enumerate(runs)]
    adm = [f"{n} {t.split(' ')[0]}" for n, t in marks if t != NA]
    moved = []
    for i, r in enumerate(runs):
        for mode, entry in ((r.get("transfer") or {}).get("summary") or {}).items():
            up = number((entry.get("all") or {}).get("upright"))
            if up is not None:
                moved.append(f"{run_name(r, i)} {mode} loop {PASS if up == 1.0 else FAIL} {_pct(up)} upright")
    return [
        "Walks: " + ("; ".join(walk) if walk else f"per gait, {_NO_TRANSFER}") + ".",
        "Admissible: " + (", ".join(adm) if adm else NA) + ".",
        "Transfer: " + ("; ".join(moved) if moved else _NO_TRANSFER) + ".",
    ]


def headline_sections(runs: Sequence[dict]) -> list[dict]:
    """The headline as sections in ``write_report``'s format: walk, admissibility, transfer."""
    return [walk_section(runs), admissibility_section(runs), transfer_section(runs)]


def format_headline(runs: Sequence[dict], level: int = 3) -> str:
    """The headline as Markdown (a terminal, ``report.md``): one titled table per question."""
    lines = [f"- {v}" for v in verdicts(runs)] + [""]
    for sec in headline_sections(runs):
        lines += ["#" * level + f" {sec['title']}", ""]
        header, rows = sec.get("header") or [], sec.get("rows") or []
        if header:
            lines.append("| " + " | ".join(md_cell(str(h)) for h in header) + " |")
            lines.append("|" + "|".join([":--"] * len(header)) + "|")
            lines += ["| " + " | ".join(md_cell(str(c)) for c in row) + " |" for row in rows]
            lines.append("")
        if sec.get("text"):
            lines += [sec["text"], ""]
    return "\n".join(lines).rstrip() + "\n"
