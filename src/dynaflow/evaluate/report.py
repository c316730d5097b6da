"""The side-by-side evaluation report for several methods: ``metrics.json``, ``report.md``, ``report.html``
and PNG plots (tables from :mod:`~dynaflow.evaluate.catalogue`, figures from :mod:`~dynaflow.evaluate.plots`).

Why: comparing DynaFlow with its baselines (state-only flow matching, state-only with inverse dynamics,
behaviour cloning) needs one table with the same rows for every method, the definitions next to the
numbers, plots of the same sample, and a record of the command that produced it all. Metrics a method
does not have (a state-only model has no actions, so no SAE and no executability) show as "n/a".

Usage::

    paths = write_report("reports/cmp", runs, {"command": " ".join(sys.argv), "dataset": ds, "seeds": [0]})
    print(format_markdown_table(runs))
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from dynaflow.evaluate.catalogue import (
    NA,
    definitions,
    format_markdown_table,
    html_table,
    md_cell,
    run_metrics,
    run_name,
)
from dynaflow.evaluate.plots import PLOTS, png
from dynaflow.fileio import atomic_write
from dynaflow.jsonio import jsonable

__all__ = ["format_markdown_table", "write_report"]


def _provenance_items(prov: dict) -> list[tuple[str, str]]:
    order = ["dataset", "seeds", "machine", "date", "notes"]
    keys = order + [k for k in prov if k not in order and k != "command"]
    items = []
    for k in keys:
        if k not in prov:
            continue
        v = prov[k]
        items.append((str(k), v if isinstance(v, str) else json.dumps(jsonable(v))))
    return items


def _videos(runs: Sequence[dict]) -> list[tuple[str, str]]:
    out = []
    for i, r in enumerate(runs):
        vids = r.get("videos") or []
        for v in [vids] if isinstance(vids, str | Path) else vids:
            out.append((run_name(r, i), Path(v).as_posix()))
    return out


def _md_code(text: str) -> str:
    """Inline code that survives backticks in ``text`` (a longer fence, padded with spaces)."""
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}" if fence != "`" else f"`{text}`"


def _section_md(sec: dict) -> list[str]:
    lines = [f"## {sec['title']}", ""]
    if sec.get("text"):
        lines += [sec["text"], ""]
    header, rows = sec.get("header") or [], sec.get("rows") or []
    if header:
        lines.append("| " + " | ".join(md_cell(str(h)) for h in header) + " |")
        lines.append("|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(md_cell(str(c)) for c in row) + " |" for row in rows]
        lines.append("")
    return lines


def _section_html(sec: dict) -> list[str]:
    e = html.escape
    out = [f"<h2>{e(sec['title'])}</h2>"]
    if sec.get("text"):
        out.append(f"<p>{e(sec['text'])}</p>")
    header, rows = sec.get("header") or [], sec.get("rows") or []
    if header:
        out.append("<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr></thead>")
        out.append("<tbody>")
        for row in rows:
            cells = [f"<th>{e(str(row[0]))}</th>"] + [f'<td class="num">{e(str(c))}</td>' for c in row[1:]]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
    return out


def _markdown(runs, prov, plots: list[tuple[str, str]], videos, sections: Sequence[dict] = ()) -> str:
    lines = ["# DynaFlow evaluation report", "", f"Produced by: {_md_code(str(prov.get('command', NA)))}", ""]
    lines += [f"- **{k}**: {md_cell(v)}" for k, v in _provenance_items(prov)]
    lines += ["", "## Runs", ""]
    for i, r in enumerate(runs):
        method = run_metrics(r).get("method", NA)
        lines.append(
            f"- **{md_cell(run_name(r, i))}**: method {_md_code(str(method))}, "
            f"checkpoint {_md_code(str(r.get('checkpoint', NA)))}"
        )
    lines += [
        "",
        "## Metrics",
        "",
        format_markdown_table(runs),
        "",
        "Bold: the best value of a row (where lower or higher is better). n/a: not measured for that "
        "method (e.g. a state-only model has no actions, so no SAE or executability).",
        "",
    ]
    for sec in sections:
        lines += _section_md(sec)
    if plots:
        lines += ["## Plots", ""]
        for rel, caption in plots:
            lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
    if videos:
        lines += ["## Videos", ""]
        lines += [f"- {md_cell(name)}: [{rel}]({rel})" for name, rel in videos]
        lines.append("")
    lines += ["## Definitions", ""]
    lines += [f"- **{label}**: {definition}" for label, definition in definitions(runs)]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 10px; }
thead th { background: #f0f0f0; }
tbody th { text-align: left; font-weight: normal; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.na { text-align: right; color: #999; }
figure { margin: 1.5em 0; }
figure img, video { max-width: 100%; }
figcaption { font-size: 13px; color: #555; }
code { background: #f5f5f5; padding: 1px 4px; }
.defs li { margin: 0.3em 0; font-size: 14px; }
"""


def _html(runs, prov, plots: list[tuple[str, str, bytes]], videos, sections: Sequence[dict] = ()) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>DynaFlow evaluation report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>DynaFlow evaluation report</h1>",
        f"<p>Produced by: <code>{e(str(prov.get('command', NA)))}</code></p>",
        "<ul>",
    ]
    out += [f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in _provenance_items(prov)]
    out += ["</ul>", "<h2>Runs</h2>", "<ul>"]
    for i, r in enumerate(runs):
        method = str(run_metrics(r).get("method", NA))
        out.append(
            f"<li><b>{e(run_name(r, i))}</b>: method <code>{e(method)}</code>, checkpoint "
            f"<code>{e(str(r.get('checkpoint', NA)))}</code></li>"
        )
    out += ["</ul>", "<h2>Metrics</h2>", html_table(runs)]
    out.append(
        "<p>Bold: the best value of a row (where lower or higher is better). n/a: not measured for that "
        "method. Hover a metric for its definition.</p>"
    )
    for sec in sections:
        out += _section_html(sec)
    if plots:
        out.append("<h2>Plots</h2>")
        for stem, caption, png in plots:
            data = base64.b64encode(png).decode("ascii")
            out.append(
                f'<figure><img alt="{e(stem)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
    if videos:
        out.append("<h2>Videos</h2>")
        for name, rel in videos:
            src = e(rel, quote=True)
            media = (
                f'<img src="{src}" alt="{src}">'
                if rel.lower().endswith((".gif", ".png", ".jpg", ".jpeg", ".webp"))
                else f'<video controls muted loop src="{src}"></video>'
            )
            out.append(
                f'<figure>{media}<figcaption>{e(name)}: <a href="{src}">{e(rel)}</a></figcaption></figure>'
            )
    out += ["<h2>Definitions</h2>", '<ul class="defs">']
    out += [f"<li><b>{e(label)}</b>: {e(definition)}</li>" for label, definition in definitions(runs)]
    out += ["</ul>", "</body></html>"]
    return "\n".join(out) + "\n"


def write_report(
    out_dir: str | Path, runs: list[dict], provenance: dict, sections: Sequence[dict] = ()
) -> dict[str, Path | list[Path]]:
    """Write ``metrics.json``, ``report.md``, ``report.html`` (self-contained: plots embedded as base64
    PNG) and ``plots/*.png`` into ``out_dir`` for ``runs`` (one dict per evaluated checkpoint, in column
    order: ``name``, ``checkpoint``, ``method``, ``metrics``, optional ``plots`` and ``videos``).

    ``provenance`` should hold ``command``, ``dataset`` and ``seeds`` (a warning names any missing one;
    ``date`` defaults to now, UTC). Metrics a run lacks or that are NaN show as "n/a"; a plot input that is
    missing skips that run in that plot, and a plot no run has data for is not drawn. Returns the paths
    written: ``{"metrics", "markdown", "html", "plots": [...]}``. ``sections``: extra tables after the
    metrics, each ``{"title", "text" (optional), "header": [...], "rows": [[...], ...]}`` (first column
    a label), also stored in ``metrics.json``."""
    if not runs:
        raise ValueError("write_report: runs is empty: nothing to report")
    for i, r in enumerate(runs):
        if not isinstance(r, dict):
            raise TypeError(f"write_report: runs[{i}] is a {type(r).__name__}, expected a dict")
    prov = dict(provenance or {})
    missing = [k for k in ("command", "dataset", "seeds") if k not in prov]
    if missing:
        warnings.warn(f"write_report: provenance lacks {missing}", stacklevel=2)
    prov.setdefault("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))

    out = Path(out_dir)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)

    doc = {
        "provenance": jsonable(prov),
        "runs": [
            {
                "name": run_name(r, i),
                "checkpoint": jsonable(r.get("checkpoint")),
                "method": jsonable(run_metrics(r).get("method")),
                "metrics": jsonable(r.get("metrics") or {}),
                **({"transfer": jsonable(r["transfer"])} if r.get("transfer") else {}),
            }
            for i, r in enumerate(runs)
        ],
        "sections": jsonable(list(sections)),
    }
    metrics_path = out / "metrics.json"
    atomic_write(metrics_path, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())

    pngs: list[tuple[str, str, bytes]] = []
    plot_paths: list[Path] = []
    for stem, caption, draw in PLOTS:
        fig = draw(runs)
        if fig is None:
            continue
        data = png(fig)
        path = plot_dir / f"{stem}.png"
        atomic_write(path, data)
        plot_paths.append(path)
        pngs.append((stem, caption, data))

    videos = _videos(runs)
    for name, rel in videos:
        if not (out / rel).exists():
            warnings.warn(f"write_report: run {name!r}: video {rel!r} not found under {out}", stacklevel=2)

    md_path, html_path = out / "report.md", out / "report.html"
    md_plots = [(f"plots/{stem}.png", caption) for stem, caption, _ in pngs]
    atomic_write(md_path, _markdown(runs, prov, md_plots, videos, sections).encode())
    atomic_write(html_path, _html(runs, prov, pngs, videos, sections).encode())
    return {"metrics": metrics_path, "markdown": md_path, "html": html_path, "plots": plot_paths}
