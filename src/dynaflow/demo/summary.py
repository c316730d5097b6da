"""What the demo says: its generation table for the report, and the summary it prints at the end."""

from __future__ import annotations

from pathlib import Path


def generation_section(rows: list[dict]) -> dict:
    def yes(v):
        return "n/a" if v is None else ("yes" if v else "no")

    def num(v, spec):
        return "n/a" if v is None else format(v, spec)

    return {
        "title": "Generation per gait (DynaFlow, chained open loop, replayed in MuJoCo C)",
        "text": "Each row: the gait and command (vx m/s, vy m/s, yaw rate rad/s) held for the whole motion, "
        "chained windows from a settled standing state; the generated actions are replayed open loop in "
        "MuJoCo C with the training simulator (same) and the converged reference simulator. Commanded "
        "forward is vx × duration (a turning command curves away from the x axis).",
        "header": [
            "gait / command",
            "seconds",
            "achieved vx, yaw rate in MuJoCo C (same) after 1 s",
            "commanded forward [m]",
            "generated forward [m]",
            "replay same: upright, forward [m]",
            "replay reference: upright, forward [m]",
            "sampler latency [ms]",
        ],
        "rows": [
            [
                f"{r['gait']} ({', '.join(f'{v:g}' for v in r['command'])})",
                f"{r['seconds']:.1f}",
                "n/a"
                if r.get("achieved_same") is None
                else f"{r['achieved_same'][0]:.2f} m/s, {r['achieved_same'][2]:.2f} rad/s",
                f"{r['commanded_forward_m']:.2f}" + (" (turning)" if r["command"][2] else ""),
                f"{r['generated_forward_m']:.2f}",
                f"{yes(r['replay_same_upright'])}, {num(r['replay_same_forward_m'], '.2f')}",
                f"{yes(r['replay_reference_upright'])}, {num(r['replay_reference_forward_m'], '.2f')}",
                num(r["latency_ms_median"], ".1f"),
            ]
            for r in rows
        ],
    }


def print_summary(summary: dict, out: Path) -> None:
    """Where everything is, and the headline figures."""
    m = summary["metrics"]
    w = summary.get("walk_check")
    print(f"\nDynaFlow demo finished in {summary['wall_seconds'] / 60:.1f} min on {summary['machine']}")
    for name, r in summary["training"].items():
        planned = r.get("updates_planned", r["steps"])
        cut = " (cut short by --budget-minutes: not the reference result)" if r.get("cut_short") else ""
        print(
            f"  {name:9s} {r['steps']:5d} of {planned} updates{cut}, val TRE "
            + ("n/a (no validation split)" if r["val_tre_final"] is None else f"{r['val_tre_final']:.3f}")
            + f"  ({r['run_dir']})"
        )
    plan = summary.get("evaluation_plan") or {}
    if plan.get("why"):
        print(f"  evaluation shortened to fit --budget-minutes: {plan['why']}")
    for name in m:
        mm = m[name]
        sae = mm.get("sae_one_step_max")
        print(
            f"  {name:9s} TRE {mm['tre']:.3f}, one-step SAE max "
            + ("n/a" if sae is None else f"{sae:.1e}")
            + f", foot penetration max {100 * mm['foot_penetration_max']:.1f} cm"
        )
    if w is not None:
        print(
            f"  walk check (trot 0.5 m/s, {w['seconds']:.0f} s, closed loop in MuJoCo C, reference solver, "
            f"command held): {w['forward_m']:.2f} m forward of {w['commanded_forward_m']:.2f} m commanded, "
            f"upright {w['upright']} -> {'PASSED' if w['passed'] else 'FAILED'}"
        )
    clips = summary.get("clips")
    if clips is not None:
        a = clips["summary"]["all"]

        def pct(v):
            return "n/a" if v is None else f"{100 * v:.0f} %"

        print(
            f"  clips ({a['runs']} runs of {clips['seconds']:g} s from a stand, {clips['fidelity']}): "
            f"upright {pct(a['upright'])}, speed {pct(a['speed_ok'])}, direction {pct(a['direction_ok'])}, "
            f"turns {pct(a['turn_ok'])}, style {pct(a['style_ok'])}, contact pattern {pct(a['contacts_ok'])}"
        )
    t = {k: v["all"] for k, v in summary.get("transfer", {}).get("summary", {}).items()}
    if t:
        runs = ", ".join(f"{k} loop {100 * v['upright']:.0f} % of {v['runs']} upright" for k, v in t.items())
        print(f"  transfer (changed worlds, docs/transfer.md): {runs}")
    print(f"  report: {summary['report']['markdown']} and {summary['report']['html']}")
    print(f"  videos: {', '.join(str(out / v) for v in summary['videos'].values())}")
    print(f"  checkpoints: {out / 'runs'}/{{dynaflow,state-fm}}; figures: {out / 'demo.json'}")
