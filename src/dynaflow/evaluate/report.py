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
from dynaflow.evaluate.headline import FAIL, PASS, headline_sections, verdicts
from dynaflow.evaluate.plots import PLOTS, plot_headline, png
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


def _section_md(sec: dict, headline: bool = False) -> list[str]:
    """A section as Markdown; a headline one: a level lower, the table before its text, cells left-aligned
    (words, not numbers)."""
    lines = ["###" if headline else "##", ""]
    lines[0] += f" {sec['title']}"
    text = [sec["text"], ""] if sec.get("text") else []
    header, rows = sec.get("header") or [], sec.get("rows") or []
    table = []
    if header:
        align = ":--" if headline else "--:"
        table.append("| " + " | ".join(md_cell(str(h)) for h in header) + " |")
        table.append("|" + "|".join([":--"] + [align] * (len(header) - 1)) + "|")
        table += ["| " + " | ".join(md_cell(str(c)) for c in row) + " |" for row in rows]
        table.append("")
    return lines + (table + text if headline else text + table)


def _cell_class(text: str) -> str:
    if text == NA:
        return "na"
    return "pass" if text.startswith(PASS) else "fail" if text.startswith(FAIL) else "num"


def _html_text(text: str) -> str:
    """Escaped text with its Markdown inline code (`...`) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _section_html(sec: dict, headline: bool = False) -> list[str]:
    """A section as HTML (a headline one as in :func:`_section_md`); ✓ / ✗ cells coloured."""
    e = html.escape
    level = 3 if headline else 2
    out = [f"<h{level}>{e(sec['title'])}</h{level}>"]
    cls = ' class="note"' if headline else ""
    text = [f"<p{cls}>{_html_text(sec['text'])}</p>"] if sec.get("text") else []
    header, rows = sec.get("header") or [], sec.get("rows") or []
    table = []
    if header:
        table.append(
            "<table><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr></thead>"
        )
        table.append("<tbody>")
        for row in rows:
            cells = [f"<th>{e(str(row[0]))}</th>"]
            cells += [f'<td class="{_cell_class(str(c))}">{e(str(c))}</td>' for c in row[1:]]
            table.append("<tr>" + "".join(cells) + "</tr>")
        table.append("</tbody></table>")
    return out + (table + text if headline else text + table)


def _headline_md(runs, figure: tuple[str, str] | None) -> list[str]:
    """The headline in Markdown: the verdicts, the figure, then one table per question."""
    lines = ["## Headline: does it work?", ""]
    lines += [f"- {md_cell(v)}" for v in verdicts(runs)] + [""]
    if figure:
        lines += [f"![{figure[1]}]({figure[0]})", "", f"*{figure[1]}*", ""]
    for sec in headline_sections(runs):
        lines += _section_md(sec, headline=True)
    return lines


def _headline_html(runs, figure: tuple[str, bytes] | None, videos) -> list[str]:
    """The headline in HTML: the verdicts, the figure (and the first video), then the tables."""
    e = html.escape
    out = ['<section class="headline">', "<h2>Headline: does it work?</h2>", "<ul>"]
    out += [f"<li>{_html_text(v)}</li>" for v in verdicts(runs)]
    out.append("</ul>")
    media = []
    if figure:
        data = base64.b64encode(figure[1]).decode("ascii")
        media.append(
            f'<figure><img alt="headline" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(figure[0])}</figcaption></figure>"
        )
    if videos:
        name, rel = videos[0]
        media.append(
            f"<figure>{_media(rel, autoplay=True)}<figcaption>{e(name)}: {e(rel)}</figcaption></figure>"
        )
    if media:
        out += ['<div class="glance">', *media, "</div>"]
    for sec in headline_sections(runs):
        out += _section_html(sec, headline=True)
    out.append("</section>")
    return out


def _media(rel: str, autoplay: bool = False) -> str:
    src = html.escape(rel, quote=True)
    if rel.lower().endswith((".gif", ".png", ".jpg", ".jpeg", ".webp")):
        return f'<img src="{src}" alt="{src}">'
    return f'<video controls muted loop{" autoplay playsinline" if autoplay else ""} src="{src}"></video>'


def _markdown(
    runs, prov, plots: list[tuple[str, str]], videos, sections: Sequence[dict] = (), figure=None
) -> str:
    lines = ["# DynaFlow evaluation report", ""]
    lines += _headline_md(runs, figure)
    lines += [f"Produced by: {_md_code(str(prov.get('command', NA)))}", ""]
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
td.pass { color: #17651f; background: #eaf6ea; }
td.fail { color: #a3161c; background: #fbeaea; }
.headline { border-bottom: 2px solid #ccc; margin-bottom: 1.5em; }
.headline p.note { font-size: 13px; color: #555; }
.glance { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.glance figure { margin: 0.5em 0; flex: 1 1 420px; }
figure { margin: 1.5em 0; }
figure img, video { max-width: 100%; }
figcaption { font-size: 13px; color: #555; }
code { background: #f5f5f5; padding: 1px 4px; }
.defs li { margin: 0.3em 0; font-size: 14px; }
"""


def _html(
    runs, prov, plots: list[tuple[str, str, bytes]], videos, sections: Sequence[dict] = (), figure=None
) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>DynaFlow evaluation report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>DynaFlow evaluation report</h1>",
        *_headline_html(runs, figure, videos),
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
            link = f'<a href="{e(rel, quote=True)}">{e(rel)}</a>'
            out.append(f"<figure>{_media(rel)}<figcaption>{e(name)}: {link}</figcaption></figure>")
    out += ["<h2>Definitions</h2>", '<ul class="defs">']
    out += [f"<li><b>{e(label)}</b>: {e(definition)}</li>" for label, definition in definitions(runs)]
    out += ["</ul>", "</body></html>"]
    return "\n".join(out) + "\n"


def _draw_plots(
    runs: Sequence[dict], plot_dir: Path
) -> tuple[tuple[str, bytes] | None, list[tuple[str, str, bytes]], list[Path]]:
    """Write the headline figure and every plot with data under ``plot_dir``; returns the headline's
    (caption, PNG), the plots' (stem, caption, PNG) and the paths written."""
    pngs: list[tuple[str, str, bytes]] = []
    plot_paths: list[Path] = []
    drawn = plot_headline(runs)
    figure = None
    if drawn is not None:
        figure = (drawn[1], png(drawn[0]))
        atomic_write(plot_dir / "headline.png", figure[1])
        plot_paths.append(plot_dir / "headline.png")
    for stem, caption, draw in PLOTS:
        fig = draw(runs)
        if fig is None:
            continue
        data = png(fig)
        path = plot_dir / f"{stem}.png"
        atomic_write(path, data)
        plot_paths.append(path)
        pngs.append((stem, caption, data))
    return figure, pngs, plot_paths


def write_report(
    out_dir: str | Path, runs: list[dict], provenance: dict, sections: Sequence[dict] = ()
) -> dict[str, Path | list[Path]]:
    """Write ``metrics.json``, ``report.md``, ``report.html`` (self-contained: plots embedded as base64
    PNG) and ``plots/*.png`` into ``out_dir`` for ``runs`` (one dict per evaluated checkpoint, in column
    order: ``name``, ``checkpoint``, ``method``, ``metrics``, optional ``plots`` and ``videos``).

    ``provenance`` should hold ``command``, ``dataset`` and ``seeds`` (a warning names any missing one;
    ``date`` defaults to now, UTC). Metrics a run lacks or that are NaN show as "n/a"; a plot input that is
    missing skips that run in that plot, and a plot no run has data for is not drawn. Returns the paths
    written: ``{"metrics", "markdown", "html", "plots": [...]}``. The report opens with a headline
    (:mod:`~dynaflow.evaluate.headline`: does each gait walk, admissibility, transfer, and a figure,
    ``plots/headline.png``), also stored in ``metrics.json``. ``sections``: extra tables after the
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
        "headline": {"verdicts": verdicts(runs), "sections": jsonable(headline_sections(runs))},
    }
    metrics_path = out / "metrics.json"
    atomic_write(metrics_path, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())

    figure, pngs, plot_paths = _draw_plots(runs, plot_dir)

    videos = _videos(runs)
    for name, rel in videos:
        if not (out / rel).exists():
            warnings.warn(f"write_report: run {name!r}: video {rel!r} not found under {out}", stacklevel=2)

    md_path, html_path = out / "report.md", out / "report.html"
    md_plots = [(f"plots/{stem}.png", caption) for stem, caption, _ in pngs]
    md_figure = None if figure is None else ("plots/headline.png", figure[0])
    atomic_write(md_path, _markdown(runs, prov, md_plots, videos, sections, md_figure).encode())
    atomic_write(html_path, _html(runs, prov, pngs, videos, sections, figure).encode())
    return {"metrics": metrics_path, "markdown": md_path, "html": html_path, "plots": plot_paths}
