"""Format leaderboard reports (from `leaderboard.board`) as Markdown, LaTeX, CSV, JSON and a self-contained HTML page.

Rows come in two groups, measured (recomputed by tvbench, with intervals and tests) first and reported (copied from
papers) below. Marks are direction-aware (`benchmark.metrics.METRICS`): the best measured value of each column is
bold and values statistically tied with it (tier 1, Holm-corrected) carry a dagger; the best reported value is
marked apart (underlined; in Markdown, in italics) and never bold. Entries accepted with --allow-chance or
--allow-duplicate are labelled in the Kind column (and in CSV/JSON fields). Every string from data is escaped for
its format (Markdown, LaTeX, HTML; CSV cells cannot start a formula), only finite numbers are written, citation keys
enter LaTeX only when they are valid BibTeX keys, and links only when they are http(s) URLs.
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
from leaderboard.figures import accuracy_cost_svg
from leaderboard.names import check_path_name
from leaderboard.schema import URL
from leaderboard.stats import DIRECTIONS, METRIC_NAMES, best_first, higher_is_better

DIRECTION_LABELS = {"t2v": "Text→Video", "v2t": "Video→Text"}
DAGGER = "†"
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&])")
CSV_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
GROUP_TITLES = {"measured": "Measured by tvbench: recomputed from per-query ranks, with intervals and tests",
                "stale": "Stale: measured on an older version of the split, shown apart and never tested",
                "reported": "Reported in papers: copied, never re-measured or tested"}


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


def group_of(row: dict[str, Any]) -> str:
    """`reported` for numbers copied from papers, `measured` for entries tvbench recomputed on the current split
    version (the rows that carry tiers and marks), `stale` for entries measured on an older one."""
    return "reported" if row["kind"] == "reported" else "stale" if row.get("stale") else "measured"


def row_groups(board: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The board's rows as (group, rows): measured, stale, then reported, each in board order; empty groups left
    out."""
    groups = [(g, [r for r in board["rows"] if group_of(r) == g]) for g in GROUP_TITLES]
    return [(g, rows) for g, rows in groups if rows]


def labels(row: dict[str, Any]) -> list[str]:
    """What a reader must know about an entry: evaluated on an older split version (stale), accepted although no
    better than chance (chance-level) or a near copy of another entry (near-duplicate)."""
    return [label for label, on in (("stale", row.get("stale")), ("chance-level", row.get("chance_level")),
                                    ("near-duplicate", row.get("near_duplicate_of"))) if on]


def kind_label(row: dict[str, Any]) -> str:
    """The Kind cell: the row's kind and its labels, e.g. `submitted (near-duplicate)`."""
    return f"{row['kind']} ({', '.join(labels(row))})" if labels(row) else row["kind"]


def links(row: dict[str, Any]) -> dict[str, str]:
    """The row's paper and code links that are http(s) URLs (`paper`, `code`)."""
    return {k: row[k] for k in ("paper", "code") if isinstance(row.get(k), str) and URL.fullmatch(row[k])}


def best_values(board: dict[str, Any], group: str = "measured") -> dict[tuple[str, str], float]:
    """Best value of each (direction, metric) column among the rows of one group, direction-aware."""
    best = {}
    for d in DIRECTIONS:
        for m in METRIC_NAMES:
            scores = {str(i): r[d][m] for i, r in enumerate(board["rows"]) if group_of(r) == group
                      and r[d] and _finite(r[d].get(m)) is not None}
            if scores:
                best[(d, m)] = scores[best_first(m, scores)[0]]
    return best


@dataclass(frozen=True)
class Marks:
    """One cell's marks: best measured (bold), tied with it (dagger), best reported (marked apart)."""

    best: bool = False
    tied: bool = False
    best_reported: bool = False


def _marks(board: dict[str, Any]) -> Callable[[dict[str, Any], str, str], Marks]:
    """The marks of every cell of `board`: best and ties among measured rows, the best among reported rows apart."""
    best = {g: best_values(board, g) for g in GROUP_TITLES}

    def mark(row: dict[str, Any], d: str, m: str) -> Marks:
        value, top = _finite(row[d].get(m)) if row[d] else None, best[group_of(row)].get((d, m))
        if value is None or top is None or group_of(row) == "stale":
            return Marks()
        is_top = math.isclose(value, top, rel_tol=0, abs_tol=1e-12)
        if group_of(row) == "reported":
            return Marks(best_reported=is_top)
        return Marks(best=is_top, tied=not is_top and row["tiers"][d][m] == 1)

    return mark


@dataclass(frozen=True)
class CellMarkup:
    """How one output format writes the parts of a cell: missing value, ± sd, best, tie mark, interval, and the
    best reported value."""

    missing: str = "–"
    sd: str = " ± {:.1f}"
    best: str = "**{}**"
    tied: str = DAGGER
    interval: str = " [{:.1f}, {:.1f}]"
    best_reported: str = "_{}_"


MARKDOWN_CELL = CellMarkup()
LATEX_CELL = CellMarkup(missing="--", sd=r"$\pm${:.1f}", best=r"\textbf{{{}}}", tied=r"$^\dagger$",
                        interval=r" {{\scriptsize[{:.1f}, {:.1f}]}}", best_reported=r"\underline{{{}}}")


def _interval(row: dict[str, Any], d: str, m: str) -> tuple[float, float] | None:
    """The row's interval of one cell when it has one with finite bounds."""
    bounds = [_finite(b) for b in row["ci"][d][m]] if row.get("ci") else [None]
    return None if None in bounds else (bounds[0], bounds[1])


def _sd(row: dict[str, Any], d: str, m: str) -> float | None:
    sd = (row.get("sd") or {}).get(d) if row.get("sd") else None
    return _finite(sd.get(m)) if sd else None


def _cell_text(row: dict[str, Any], d: str, m: str, marks: Marks, markup: CellMarkup = MARKDOWN_CELL) -> str:
    """One measured or reported cell: value, ± seed sd, bold when best measured, tie mark, interval; the best
    reported value marked apart."""
    value = _finite(row[d].get(m)) if row[d] else None
    text = markup.missing if value is None else f"{value:.1f}"
    if _sd(row, d, m):
        text += markup.sd.format(_sd(row, d, m))
    if marks.best:
        text = markup.best.format(text)
    if marks.best_reported:
        text = markup.best_reported.format(text)
    if marks.tied:
        text += markup.tied
    if _interval(row, d, m):
        text += markup.interval.format(*_interval(row, d, m))
    return text


def _header(d: str, m: str) -> str:
    return f"{d} {m} {'↑' if higher_is_better(m) else '↓'}"


def caption(board: dict[str, Any], escape: Callable[[str], str] = str, reported_mark: str = "underlined") -> str:
    """One-paragraph description of what the table shows and how it was tested (`escape` applies to data fields)."""
    s = board["settings"]
    n = board.get("n_queries") or {}
    queries = f"n = {n['t2v']} text and {n['v2t']} video queries" if n else "no canonical split manifest"
    shown = {label for r in board["rows"] for label in labels(r)}
    notes = {
        "stale": "Rows marked stale were evaluated on an older version of the split: shown apart, never tested",
        "chance-level": "chance-level = ranks no better than chance (one-sided test of t2v ranks), accepted on "
                        "the submitter's explicit request",
        "near-duplicate": "near-duplicate = ranks agree with another entry's on at least 99% of queries, accepted "
                          "on the submitter's explicit request",
    }
    return (
        f"{escape(board['benchmark'])} ({escape(board.get('split') or '?')}), {board['track']} track, {queries}. "
        f"Measured rows: value [{s['ci']}, B = {s['n_resamples']}, seed {s['seed']}]; the best measured value is in "
        f"bold; {DAGGER} = not significantly different from it ({s['test']}, {s['correction'].capitalize()}-corrected, "
        f"alpha = {s['alpha']}); tier 1 = the best and every row tied with it. Ties in ranks: {s['ties']}. "
        f"MdR: {s['mdr']}. Reported rows are copied from papers and never tested; the best reported value is "
        f"{reported_mark}, never bold." + "".join(f" {notes[label]}." for label in sorted(shown))
    )


def _markdown_links(row: dict[str, Any]) -> str:
    """`[paper](<url>) [code](<url>)`: angle brackets keep any URL character out of the link syntax."""
    return " ".join(f"[{k}](<{url}>)" for k, url in links(row).items()) or "–"


def to_markdown(board: dict[str, Any]) -> str:
    """Markdown table (tabulate, GitHub style), measured rows then reported rows, with intervals, marks, tiers,
    citation keys and links, plus its caption."""
    mark = _marks(board)
    headers = ["Method", "Kind", *(_header(d, m) for d in DIRECTIONS for m in METRIC_NAMES), "Tier", "Cite", "Links"]
    body = []
    for group, rows in row_groups(board):
        body.append([f"*{GROUP_TITLES[group]}*", *[""] * (len(headers) - 1)])
        body += [
            [markdown_escape(r["name"]), kind_label(r),
             *(_cell_text(r, d, m, mark(r, d, m)) for d in DIRECTIONS for m in METRIC_NAMES),
             r["tier"] if r["tier"] is not None else "–", markdown_escape(r.get("cite") or "–"), _markdown_links(r)]
            for r in rows
        ]
    title = f"### {markdown_escape(board['benchmark'])} — {board['track']}\n\n"
    skipped = "".join(f"\nSkipped (invalid): {markdown_escape(m)}\n" for m in board.get("skipped") or ())
    table = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    return f"{title}{table}\n\n{caption(board, markdown_escape, 'in italics')}\n{skipped}"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in plain text (line breaks become spaces, so no blank line ends a cell)."""
    return "".join(_LATEX_ESCAPES.get(c, c) for c in " ".join(str(text).split()))


def to_latex(board: dict[str, Any], *, with_cite: bool = True) -> str:
    """A booktabs table, measured rows then reported rows: arrows for direction, bold best measured value, dagger for
    ties with it, the best reported value underlined, intervals, caption."""
    mark = _marks(board)
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
    for i, (group, rows) in enumerate(row_groups(board)):
        lines += [r"\midrule"] * (i > 0) + [
            rf"\multicolumn{{{3 + n_metric * len(DIRECTIONS)}}}{{l}}{{\textit{{{GROUP_TITLES[group]}}}}} \\"]
        for r in rows:
            name = latex_escape(r["name"])
            if with_cite and r.get("cite") and KEY.fullmatch(r["cite"]):
                name += rf"~\cite{{{r['cite']}}}"
            cells = [_cell_text(r, d, m, mark(r, d, m), LATEX_CELL) for d in DIRECTIONS for m in METRIC_NAMES]
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
    fields = ["benchmark", "split", "track", "name", "kind", "chance_level", "near_duplicate_of", "cite", "paper",
              "code", "tier", "n_seeds", "head_gflops", "latency_ms"]
    for d in DIRECTIONS:
        for m in METRIC_NAMES:
            fields += [f"{d}_{m}", f"{d}_{m}_low", f"{d}_{m}_high", f"{d}_{m}_sd"]
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in board["rows"]:
        line = {"benchmark": board["benchmark"], "split": board["split"], "track": r["track"], "name": r["name"],
                "kind": kind_label(r), "chance_level": bool(r.get("chance_level")),
                "near_duplicate_of": "; ".join(r.get("near_duplicate_of") or ()), "cite": r.get("cite"),
                **{k: links(r).get(k) for k in ("paper", "code")}, "tier": r["tier"], "n_seeds": r.get("n_seeds"),
                "head_gflops": r.get("head_gflops"), "latency_ms": r.get("latency_ms")}
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

# The page fits a 1280 px window: the table takes the page width and every cell can wrap (names anywhere, intervals
# and seed spreads on lines of their own), so no column forces horizontal scrolling.
_CSS = """
body{font-family:system-ui,sans-serif;margin:1em auto;padding:0 12px;max-width:1256px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:12px;width:100%}
th,td{padding:3px 4px;border-bottom:1px solid #ddd;text-align:right;vertical-align:top}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
th.name,td.name,td.kind{text-align:left}
td.name{min-width:9em;max-width:18em;overflow-wrap:anywhere}
td.kind{max-width:8em}
tr.group th{cursor:default;text-align:left;font-weight:normal;font-style:italic;background:#fafafa;position:static}
tr.reported{color:#555} tr.stale{color:#999}
td.best{font-weight:bold} td.best-reported{text-decoration:underline}
span.tie{color:#a33} span.ci,span.sd{display:block;color:#888;font-size:10px;font-weight:normal}
span.meta{display:block;font-size:10px;color:#666}
a{color:#1f5fa8}
p.caption{font-size:12px;color:#555}
figure.scatter{margin:1em 0}
figure.scatter svg{max-width:100%;height:auto}
figure.scatter figcaption{font-size:12px;color:#555}
"""

_JS = """
function sortTable(table, col, bestFirst) {
  const th = table.tHead.rows[0].cells[col];
  const higher = th.dataset.higher === "1";
  const key = r => { const v = r.cells[col].dataset.value; return v === undefined || v === "" ? null : Number(v); };
  const text = r => r.cells[col].textContent;
  const order = (a, b) => {
    if (th.dataset.higher === undefined) {
      return bestFirst ? text(a).localeCompare(text(b)) : text(b).localeCompare(text(a));
    }
    const x = key(a), y = key(b);
    if (x === null && y === null) return 0; if (x === null) return 1; if (y === null) return -1;
    const d = higher ? y - x : x - y;
    return bestFirst ? d : -d;
  };
  Array.from(table.tBodies).forEach(body => {  // measured and reported rows are sorted apart
    const rows = Array.from(body.rows).filter(r => r.dataset.name !== undefined);
    rows.sort(order);
    rows.forEach((r, i) => { body.appendChild(r); r.dataset.position = String(i + 1); });
  });
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


def _html_cell(row: dict[str, Any], d: str, m: str, marks: Marks) -> str:
    value = _finite(row[d].get(m)) if row[d] else None
    text = html.escape(_fmt(value))
    if marks.tied:
        text += f'<span class="tie" title="not significantly different from the best">{DAGGER}</span>'
    if _sd(row, d, m) is not None:
        text += f'<span class="sd" title="sd over seeds">± {_sd(row, d, m):.1f}</span>'
    if _interval(row, d, m):
        low, high = _interval(row, d, m)
        text += f'<span class="ci" title="95% interval">[{low:.1f}, {high:.1f}]</span>'
    css = "best" if marks.best else "best-reported" if marks.best_reported else ""
    data = "" if value is None else repr(value)
    return f'<td class="{css}" data-value="{data}">{text}</td>'


def _html_name(row: dict[str, Any]) -> str:
    """The Method cell: the name, then a small line with the paper and code links and the citation key."""
    parts = [f'<a href="{html.escape(url)}" rel="noopener noreferrer">{k}</a>' for k, url in links(row).items()]
    if row.get("cite"):
        parts.append(f"[{html.escape(row['cite'])}]")
    if row.get("near_duplicate_of"):
        parts.append("near-duplicate of " + ", ".join(html.escape(n) for n in row["near_duplicate_of"]))
    meta = f'<span class="meta">{" · ".join(parts)}</span>' if parts else ""
    return f'<td class="name">{html.escape(row["name"])}{meta}</td>'


def _html_table(board: dict[str, Any]) -> str:
    mark = _marks(board)
    heads = ['<th class="name" data-key="name">Method</th>', '<th data-key="kind">Kind</th>']
    for d in DIRECTIONS:
        for m in METRIC_NAMES:
            heads.append(f'<th data-key="{d}-{m}" data-higher="{int(higher_is_better(m))}">{d}<br>'
                         f'{html.escape(m)} {"↑" if higher_is_better(m) else "↓"}</th>')
    heads.append('<th data-key="tier" data-higher="0">Tier</th>')
    bodies = []
    for group, rows in row_groups(board):
        body = [f'<tr class="group"><th colspan="{len(heads)}">{html.escape(GROUP_TITLES[group])}</th></tr>']
        for r in rows:
            cells = [_html_name(r), f'<td class="kind">{html.escape(kind_label(r))}</td>']
            cells += [_html_cell(r, d, m, mark(r, d, m)) for d in DIRECTIONS for m in METRIC_NAMES]
            tier = "" if r["tier"] is None else str(r["tier"])
            cells.append(f'<td data-value="{tier}">{tier or "–"}</td>')
            body.append(f'<tr class="{group}" data-name="{html.escape(r["name"])}">{"".join(cells)}</tr>')
        bodies.append(f'<tbody class="{group}">{"".join(body)}</tbody>')
    return (
        f'<table class="board" data-benchmark="{html.escape(board["benchmark"])}" data-track="{board["track"]}" '
        f'data-default-sort="t2v-R@1"><thead><tr>{"".join(heads)}</tr></thead>{"".join(bodies)}</table>'
    )


def _html_scatter(board: dict[str, Any]) -> str:
    """The accuracy-vs-cost figure of a board (see `leaderboard.figures`), or '' when no row has a cost to plot."""
    svg = accuracy_cost_svg(board)
    if not svg:
        return ""
    return (
        f'<figure class="scatter" data-benchmark="{html.escape(board["benchmark"])}" data-track="{board["track"]}">'
        f"{svg}<figcaption>t2v R@1 against the similarity head's cost (left) and against the measured latency of "
        "one query over 1,000 videos (right). Filled circles: measured by tvbench; hollow squares: reported in "
        "papers (costs as printed there, not re-measured).</figcaption></figure>"
    )


def to_html(boards: Sequence[dict[str, Any]], title: str = "tvbench leaderboard") -> str:
    """A static, self-contained page (inline CSS/JS/SVG; links out, nothing loaded): per benchmark and track a
    sortable table (measured rows, then reported rows) and its accuracy-vs-cost scatter."""
    sections = []
    for b in boards:
        sections.append(
            f'<section id="{html.escape(b["benchmark"])}-{b["track"]}"><h2>{html.escape(b["benchmark"])} '
            f'({html.escape(b.get("split") or "?")}) — {b["track"]} track</h2>{_html_table(b)}'
            f'<p class="caption">{html.escape(caption(b))} Click a header to sort (best first, again to reverse); '
            "measured and reported rows are sorted apart.</p>"
            + "".join(f'<p class="skipped">Skipped (invalid): {html.escape(m)}</p>' for m in b.get("skipped") or ())
            + f"{_html_scatter(b)}</section>"
        )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)}</title>'
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
