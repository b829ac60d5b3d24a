"""Format leaderboard reports (from `leaderboard.board`) as Markdown, LaTeX, CSV, JSON and a self-contained HTML page.

Marks are direction-aware (`benchmark.metrics.METRICS`): among measured rows the best value of each column is bold,
and values statistically tied with it (tier 1, Holm-corrected) carry a dagger. Reported rows are never marked.
Every string from data is escaped for its format (Markdown, LaTeX, HTML; CSV cells cannot start a formula), only
finite numbers are written, and citation keys enter LaTeX only when they are valid BibTeX keys.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from benchmark.io import write_text
from leaderboard.bibtex import KEY
from leaderboard.names import check_path_name
from leaderboard.stats import DIRECTIONS, METRIC_NAMES, best_first, higher_is_better

DIRECTION_LABELS = {"t2v": "Text→Video", "v2t": "Video→Text"}
DAGGER = "†"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&])")
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _finite(value: object) -> float | None:
    """`value` as a float when it is a finite number, else None (so NaN or inf is never written)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _fmt(value: float | None) -> str:
    value = _finite(value)
    return "–" if value is None else f"{value:.1f}"


def markdown_escape(text: object) -> str:
    """Plain text for a Markdown table cell: line breaks as spaces, Markdown and HTML punctuation backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def csv_cell(value: object) -> object:
    """A CSV value that spreadsheets show as text: a string that could start a formula gets a leading apostrophe;
    a non-finite number is left empty."""
    if isinstance(value, str):
        return "'" + value if value.startswith(CSV_FORMULA_STARTS) else value
    return value if value is None or isinstance(value, bool) or _finite(value) is not None else None


def is_tested(row: dict[str, Any]) -> bool:
    """Rows that carry marks and tiers: measured on the current split version (not reported, not stale)."""
    return row["kind"] != "reported" and not row.get("stale")


def kind_label(row: dict[str, Any]) -> str:
    """The Kind cell: the entry's kind, flagged when it was evaluated on an older split version."""
    return f"{row['kind']} (stale)" if row.get("stale") else row["kind"]


def best_values(board: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Best measured value of each (direction, metric) column, direction-aware."""
    best = {}
    for d in DIRECTIONS:
        for m in METRIC_NAMES:
            scores = {str(i): r[d][m] for i, r in enumerate(board["rows"]) if is_tested(r)
                      and r[d] and r[d].get(m) is not None}
            if scores:
                best[(d, m)] = scores[best_first(m, scores)[0]]
    return best


def _mark(row: dict[str, Any], d: str, m: str, best: dict) -> tuple[bool, bool]:
    """(is best, statistically tied with the best) for one cell of a measured row."""
    if not is_tested(row) or (d, m) not in best or row[d].get(m) is None:
        return False, False
    is_best = math.isclose(row[d][m], best[(d, m)], rel_tol=0, abs_tol=1e-12)
    return is_best, (not is_best and row["tiers"][d][m] == 1)


@dataclass(frozen=True)
class CellMarkup:
    """How one output format writes the parts of a cell: missing value, ± sd, best, tie mark, interval."""

    missing: str = "–"
    sd: str = " ± {:.1f}"
    best: str = "**{}**"
    tied: str = DAGGER
    interval: str = " [{:.1f}, {:.1f}]"


MARKDOWN_CELL = CellMarkup()
LATEX_CELL = CellMarkup(missing="--", sd=r"$\pm${:.1f}", best=r"\textbf{{{}}}", tied=r"$^\dagger$",
                        interval=r" {{\scriptsize[{:.1f}, {:.1f}]}}")


def _interval(row: dict[str, Any], d: str, m: str) -> tuple[float, float] | None:
    """The row's interval of one cell when it has one with finite bounds."""
    bounds = [_finite(b) for b in row["ci"][d][m]] if row.get("ci") else [None]
    return None if None in bounds else (bounds[0], bounds[1])


def _sd(row: dict[str, Any], d: str, m: str) -> float | None:
    sd = (row.get("sd") or {}).get(d) if row.get("sd") else None
    return _finite(sd.get(m)) if sd else None


def _cell_text(row: dict[str, Any], d: str, m: str, best: dict, markup: CellMarkup = MARKDOWN_CELL) -> str:
    """One measured or reported cell: value, ± seed sd, bold when best, tie mark, interval."""
    value = _finite(row[d].get(m)) if row[d] else None
    text = markup.missing if value is None else f"{value:.1f}"
    if _sd(row, d, m):
        text += markup.sd.format(_sd(row, d, m))
    is_best, tied = _mark(row, d, m, best)
    if is_best:
        text = markup.best.format(text)
    if tied:
        text += markup.tied
    if _interval(row, d, m):
        text += markup.interval.format(*_interval(row, d, m))
    return text


def _header(d: str, m: str) -> str:
    return f"{d} {m} {'↑' if higher_is_better(m) else '↓'}"


def caption(board: dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """One-paragraph description of what the table shows and how it was tested (`escape` applies to data fields)."""
    s = board["settings"]
    n = board.get("n_queries") or {}
    queries = f"n = {n['t2v']} text and {n['v2t']} video queries" if n else "no canonical split manifest"
    return (
        f"{escape(board['benchmark'])} ({escape(board.get('split') or '?')}), {board['track']} track, {queries}. "
        f"Measured rows: value [{s['ci']}, B = {s['n_resamples']}, seed {s['seed']}]; best in bold; "
        f"{DAGGER} = not significantly different from the best ({s['test']}, {s['correction'].capitalize()}-corrected, "
        f"alpha = {s['alpha']}); tier 1 = the best and every row tied with it. Ties in ranks: {s['ties']}. "
        f"MdR: {s['mdr']}. Reported rows are copied from papers and never tested."
        + (" Rows marked stale were evaluated on an older version of the split: shown apart, never tested."
           if board.get("n_stale") else "")
    )


def to_markdown(board: dict[str, Any]) -> str:
    """Markdown table (tabulate, GitHub style) with intervals, marks, tiers and citation keys, plus its caption."""
    best = best_values(board)
    headers = ["Method", "Kind", *(_header(d, m) for d in DIRECTIONS for m in METRIC_NAMES), "Tier", "Cite"]
    body = [
        [markdown_escape(r["name"]), kind_label(r),
         *(_cell_text(r, d, m, best) for d in DIRECTIONS for m in METRIC_NAMES),
         r["tier"] if r["tier"] is not None else "–", markdown_escape(r.get("cite") or "–")]
        for r in board["rows"]
    ]
    title = f"### {markdown_escape(board['benchmark'])} — {board['track']}\n\n"
    skipped = "".join(f"\nSkipped (invalid): {markdown_escape(m)}\n" for m in board.get("skipped") or ())
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    return f"{title}{table}\n\n{caption(board, markdown_escape)}\n{skipped}"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text (line breaks become spaces, so no blank line ends a cell)."""
    return "".join(_LATEX_ESCAPES.get(c, c) for c in " ".join(str(text).split()))


def to_latex(board: dict[str, Any], *, with_cite: bool = True) -> str:
    """A booktabs table: arrows for direction, bold best, dagger for ties with the best, intervals, caption."""
    best = best_values(board)
    n_metric = len(METRIC_NAMES)
    cols = "ll" + ("r" * n_metric) * len(DIRECTIONS) + "c"
    heads = [DIRECTION_LABELS[d].replace("→", r"$\rightarrow$") for d in DIRECTIONS]
    arrows = [rf"{latex_escape(m)}$\{'uparrow' if higher_is_better(m) else 'downarrow'}$" for m in METRIC_NAMES]
    lines = [
        r"\begin{table*}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
        " & & " + " & ".join(rf"\multicolumn{{{n_metric}}}{{c}}{{{h}}}" for h in heads) + r" & \\",
        " ".join(rf"\cmidrule(lr){{{3 + i * n_metric}-{2 + (i + 1) * n_metric}}}" for i in range(len(DIRECTIONS))),
        "Method & Kind & " + " & ".join(arrows * len(DIRECTIONS)) + r" & Tier \\", r"\midrule",
    ]
    for r in board["rows"]:
        name = latex_escape(r["name"])
        if with_cite and r.get("cite") and KEY.fullmatch(r["cite"]):
            name += rf"~\cite{{{r['cite']}}}"
        cells = [_cell_text(r, d, m, best, LATEX_CELL) for d in DIRECTIONS for m in METRIC_NAMES]
        tier = "--" if r["tier"] is None else str(r["tier"])
        lines.append(" & ".join([name, latex_escape(kind_label(r)), *cells, tier]) + r" \\")
    dagger = r"$^\dagger$"
    label = re.sub(r"[^A-Za-z0-9:-]", "-", f"tab:tvbench-{board['benchmark']}-{board['track']}")
    lines += [
        r"\bottomrule", r"\end{tabular}",
        rf"\caption{{{latex_escape(caption(board)).replace(DAGGER, dagger)}}}",
        rf"\label{{{label}}}", r"\end{table*}",
    ]
    return "\n".join(lines) + "\n"


def to_csv(board: dict[str, Any]) -> str:
    """One CSV line per row: values, interval bounds, seed sd, tier and citation key."""
    out = io.StringIO()
    fields = ["benchmark", "split", "track", "name", "kind", "cite", "tier", "n_seeds", "head_gflops"]
    for d in DIRECTIONS:
        for m in METRIC_NAMES:
            fields += [f"{d}_{m}", f"{d}_{m}_low", f"{d}_{m}_high", f"{d}_{m}_sd"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in board["rows"]:
        line = {"benchmark": board["benchmark"], "split": board["split"], "track": r["track"], "name": r["name"],
                "kind": kind_label(r), "cite": r.get("cite"), "tier": r["tier"], "n_seeds": r.get("n_seeds"),
                "head_gflops": r.get("head_gflops")}
        for d in DIRECTIONS:
            for m in METRIC_NAMES:
                line[f"{d}_{m}"] = r[d].get(m)
                line[f"{d}_{m}_low"], line[f"{d}_{m}_high"] = _interval(r, d, m) or (None, None)
                line[f"{d}_{m}_sd"] = _sd(r, d, m)
        writer.writerow({key: csv_cell(value) for key, value in line.items()})
    return out.getvalue()


def to_json(board: dict[str, Any]) -> str:
    """The board's rows as a JSON list (name, kind, track, t2v, v2t, ci, tier, ...)."""
    return json.dumps(board["rows"], indent=2, ensure_ascii=False) + "\n"


def _p_text(c: dict[str, Any], key: str) -> str:
    """A p-value cell; `≤` when a Monte Carlo test sat at its floor 2/(B+1) (limited by B: the true p is smaller)."""
    return f"≤{c[key]:.2g}" if c["limited_by_resamples"] else f"{c[key]:.2g}"


def comparison_markdown(report: dict[str, Any]) -> str:
    """Pairwise comparison report: differences with paired intervals, the test of each row, p before and after Holm."""
    s = report["settings"]
    headers = ["A", "B", "dir", "metric", "A", "B", "A−B [95% CI]", "test", "p", "p (Holm)", "better"]
    body = []
    for c in report["comparisons"]:
        low, high = c["diff_ci"]
        sig = markdown_escape(c["better"]) if c["significant"] else "n.s."
        arrow = "↑" if c["higher_is_better"] else "↓"
        test = c["test"] + ("" if c["exact"] else f", B = {c['n_resamples']}")
        a, b = markdown_escape(c["a"]), markdown_escape(c["b"])
        body.append([a, b, c["direction"], f"{c['metric']} {arrow}", _fmt(c["value_a"]), _fmt(c["value_b"]),
                     f"{c['diff']:+.2f} [{low:+.2f}, {high:+.2f}]", test, _p_text(c, "p"), _p_text(c, "p_holm"),
                     sig])
    n, units = report["n_queries"], report["units"]
    limited = sum(c["limited_by_resamples"] for c in report["comparisons"])
    note = (
        f"{markdown_escape(report['benchmark'])} ({markdown_escape(report['split'])}), {report['track']} track, "
        f"{n['t2v']} text / {n['v2t']} video queries; sampling units: t2v {units['t2v']}, v2t {units['v2t']}. "
        f"Tests: {s['test']}; seed {s['seed']}. {s['correction'].capitalize()} correction over all "
        f"{report['family_size']} comparisons of this report; alpha = {s['alpha']}; Monte Carlo B = "
        f"{report['n_resamples_tests']} (raised so that {report['family_size']} x 2/(B+1) <= alpha/{s['margin']:g}). "
        + (f"{limited} row(s) marked ≤ were limited by B: no resample was as extreme, the true p is smaller. "
           if limited else "")
        + f"Intervals: paired percentile bootstrap. MdR: {s['mdr']}. `better` names the significantly better system "
        "(direction-aware: lower MdR/MnR is better), n.s. otherwise."
    )
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + f"\n\n{note}\n"


# --- HTML ------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
td.name,th.name,td.kind{text-align:left}
tr.reported{color:#666;font-style:italic}
td.best{font-weight:bold} span.tie{color:#a33} span.ci{color:#888;font-size:11px}
p.caption{max-width:70em;font-size:12px;color:#555}
"""

_JS = """
function sortTable(table, col, bestFirst) {
  const th = table.tHead.rows[0].cells[col];
  const higher = th.dataset.higher === "1";
  const rows = Array.from(table.tBodies[0].rows);
  const key = r => { const v = r.cells[col].dataset.value; return v === undefined || v === "" ? null : Number(v); };
  const text = r => r.cells[col].textContent;
  rows.sort((a, b) => {
    if (th.dataset.higher === undefined) {
      return bestFirst ? text(a).localeCompare(text(b)) : text(b).localeCompare(text(a));
    }
    const x = key(a), y = key(b);
    if (x === null && y === null) return 0; if (x === null) return 1; if (y === null) return -1;
    const d = higher ? y - x : x - y;
    return bestFirst ? d : -d;
  });
  rows.forEach((r, i) => { table.tBodies[0].appendChild(r); r.dataset.position = String(i + 1); });
  table.dataset.sortedBy = th.dataset.key; table.dataset.sortedBest = bestFirst ? "1" : "0";
}
document.querySelectorAll("table.board").forEach(table => {
  Array.from(table.tHead.rows[0].cells).forEach((th, col) => th.addEventListener("click", () => {
    sortTable(table, col, !(table.dataset.sortedBy === th.dataset.key && table.dataset.sortedBest === "1"));
  }));
  const wanted = decodeURIComponent(location.hash.replace(/^#sort=/, "")) || table.dataset.defaultSort;
  const cells = Array.from(table.tHead.rows[0].cells);
  const col = Math.max(0, cells.findIndex(th => th.dataset.key === wanted));
  sortTable(table, col, true);
});
document.body.dataset.ready = "1";
"""


def _html_cell(row: dict[str, Any], d: str, m: str, best: dict) -> str:
    value = _finite(row[d].get(m)) if row[d] else None
    is_best, tied = _mark(row, d, m, best)
    text = html.escape(_fmt(value))
    if _sd(row, d, m) is not None:
        text += f" ± {_sd(row, d, m):.1f}"
    if tied:
        text += f'<span class="tie" title="not significantly different from the best">{DAGGER}</span>'
    if _interval(row, d, m):
        low, high = _interval(row, d, m)
        text += f' <span class="ci">[{low:.1f}, {high:.1f}]</span>'
    data = "" if value is None else repr(value)
    return f'<td class="{"best" if is_best else ""}" data-value="{data}">{text}</td>'


def _html_table(board: dict[str, Any]) -> str:
    best = best_values(board)
    heads = ['<th class="name" data-key="name">Method</th>', '<th data-key="kind">Kind</th>']
    for d in DIRECTIONS:
        for m in METRIC_NAMES:
            heads.append(f'<th data-key="{d}-{m}" data-higher="{int(higher_is_better(m))}">'
                         f'{html.escape(_header(d, m))}</th>')
    heads += ['<th data-key="tier" data-higher="0">Tier</th>', '<th data-key="cite">Cite</th>']
    body = []
    for r in board["rows"]:
        cells = [f'<td class="name">{html.escape(r["name"])}</td>',
                 f'<td class="kind">{html.escape(kind_label(r))}</td>']
        cells += [_html_cell(r, d, m, best) for d in DIRECTIONS for m in METRIC_NAMES]
        tier = "" if r["tier"] is None else str(r["tier"])
        cells += [f'<td data-value="{tier}">{tier or "–"}</td>', f'<td>{html.escape(r.get("cite") or "–")}</td>']
        css = html.escape(r["kind"]) + (" stale" if r.get("stale") else "")
        body.append(f'<tr class="{css}" data-name="{html.escape(r["name"])}">{"".join(cells)}</tr>')
    return (
        f'<table class="board" data-benchmark="{html.escape(board["benchmark"])}" data-track="{board["track"]}" '
        f'data-default-sort="t2v-R@1"><thead><tr>{"".join(heads)}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def efficiency_svg(board: dict[str, Any], width: int = 560, height: int = 320) -> str:
    """Inline SVG scatter of t2v R@1 against head GFLOPs (log scale) for rows whose head cost is known; '' if none."""
    points = [(_finite(r.get("head_gflops")), _finite(r["t2v"].get("R@1")), r["name"], r["kind"])
              for r in board["rows"]]
    points = [p for p in points if p[0] and p[1] is not None]
    if not points:
        return ""
    pad = 50
    xs = [math.log10(p[0]) for p in points]
    ys = [p[1] for p in points]
    x0, x1 = math.floor(min(xs)), math.ceil(max(xs)) + (1 if math.floor(min(xs)) == math.ceil(max(xs)) else 0)
    y0, y1 = math.floor(min(ys) - 1), math.ceil(max(ys) + 1)

    def sx(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="scatter" width="{width}" height="{height}" '
             f'data-benchmark="{html.escape(board["benchmark"])}" data-track="{board["track"]}">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>']
    for e in range(x0, x1 + 1):
        parts.append(f'<text x="{sx(e):.1f}" y="{height - pad + 15}" font-size="10" text-anchor="middle">'
                     f'{10.0 ** e:g}</text>')
    for y in (y0, (y0 + y1) / 2, y1):
        parts.append(f'<text x="{pad - 5}" y="{sy(y) + 3:.1f}" font-size="10" text-anchor="end">{y:.1f}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 10}" font-size="11" text-anchor="middle">'
                 "similarity-head cost (G, log scale; reported: as printed, measured: GMACs for 1k×1k)</text>")
    parts.append(f'<text x="12" y="{height / 2}" font-size="11" transform="rotate(-90 12 {height / 2})" '
                 'text-anchor="middle">t2v R@1 (%)</text>')
    for x, y, name, kind in points:
        color = "#888" if kind == "reported" else "#c33"
        parts.append(f'<circle cx="{sx(math.log10(x)):.1f}" cy="{sy(y):.1f}" r="4" fill="{color}" '
                     f'data-name="{html.escape(name)}"><title>{html.escape(name)}: {y:.1f} @ {x:g}G</title></circle>')
        parts.append(f'<text x="{sx(math.log10(x)) + 6:.1f}" y="{sy(y) - 4:.1f}" font-size="9">'
                     f"{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def to_html(boards: Sequence[dict[str, Any]], title: str = "tvbench leaderboard") -> str:
    """A static, self-contained page (inline CSS/JS/SVG; no network): a sortable table per benchmark and track."""
    sections = []
    for b in boards:
        sections.append(
            f'<section id="{html.escape(b["benchmark"])}-{b["track"]}"><h2>{html.escape(b["benchmark"])} '
            f'({html.escape(b.get("split") or "?")}) — {b["track"]} track</h2>{_html_table(b)}'
            f'<p class="caption">{html.escape(caption(b))} Click a header to sort (best first, again to reverse).</p>'
            + "".join(f'<p class="skipped">Skipped (invalid): {html.escape(m)}</p>' for m in b.get("skipped") or ())
            + f"{efficiency_svg(b)}</section>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}"
        f"<script>{_JS}</script></body></html>\n"
    )


FORMATS = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}
FILE_FORMATS = {"md": to_markdown, "tex": to_latex, "csv": to_csv}


def write_site(boards: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    """Write every benchmark's boards as md, tex, csv and html into `out`, plus an index.html of all boards."""
    written = []
    for bench in dict.fromkeys(check_path_name(b["benchmark"]) for b in boards):
        mine = [b for b in boards if b["benchmark"] == bench]
        for ext, fn in FILE_FORMATS.items():
            written.append(write_text(out / f"{bench}.{ext}", "\n".join(fn(b) for b in mine)))
        written.append(write_text(out / f"{bench}.html", to_html(mine, f"tvbench leaderboard: {bench}")))
    written.append(write_text(out / "index.html", to_html(boards)))
    return written
