"""Boards, renderers, CLI, citation files and the HTML page in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import load_split
from benchmark.data.split import Split, TextRecord, VideoRecord
from benchmark.metrics import evaluate_scores
from benchmark.runs import make_record, write_run
from leaderboard import render
from leaderboard.board import build_board
from leaderboard.cite import CFF_PATH, cff_text, validate_cff
from leaderboard.published import BENCHMARK_CITES, bib_entries, load_published
from leaderboard.splits import PACKAGE_SPLITS, SHIPPED, build_manifest, load_manifest, register_split_manifest
from leaderboard.stats import METRIC_NAMES, StatsSettings
from leaderboard.submit import Submission, SubmissionWarning, submit

REFERENCE_CSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published_results.csv"
FAST = ["--resamples", "199"]
N = 60


@pytest.fixture()
def toy_root(tmp_path: Path) -> Path:
    """A root with two entries on a toy split: `sharp` (low MnR) and `blunt` (higher MnR, similar R@1)."""
    videos = [VideoRecord(f"v{i}", f"v{i}.mp4") for i in range(N)]
    texts = [TextRecord(f"t{i}", f"c{i}", f"v{i}") for i in range(N)]
    root = tmp_path / "lb"
    register_split_manifest(root, Split("toyvtt", "test", videos, texts))
    rng = np.random.default_rng(0)
    for name, noise in (("sharp", 0.3), ("blunt", 3.0)):
        s = rng.standard_normal((N, N)) * noise
        s[np.arange(N), np.arange(N)] += 1.0
        np.save(tmp_path / f"{name}.npy", s)
        submit(tmp_path / f"{name}.npy", Submission(benchmark="toyvtt", name=name), root)
    return root


def test_published_csv_transcribes_every_reference_row() -> None:
    rows = load_published()
    if REFERENCE_CSV.is_file():
        names = {"msrvtt-1k-a": "msrvtt"}
        with open(REFERENCE_CSV, newline="") as f:
            for ref in csv.DictReader(f):
                row = next(r for r in rows if (r.method, r.backbone, r.post_processing) ==
                           (ref["method"], ref["backbone"], ref["post_processing"])
                           and r.benchmark == names.get(ref["benchmark"], ref["benchmark"]))
                got = getattr(row, ref["direction"])
                for m, col in zip(METRIC_NAMES, ("r1", "r5", "r10", "mdr", "mnr")):
                    assert got[m] == (float(ref[col]) if ref[col] else None), (ref, m)
                assert row.head_flops == ref["head_flops_reported"]
    assert {r.track for r in rows if r.post_processing == "qb-norm"} == {"post-processed"}
    bib = bib_entries()
    for r in rows:
        assert set(r.cites) <= set(bib), r.cites
    assert {k for keys in BENCHMARK_CITES.values() for k in keys} <= set(bib)
    for key, entry in bib.items():
        for field in ("title", "author", "year"):
            assert f"{field} = " in entry, (key, field)
        assert "doi" not in entry.lower()


def test_shipped_manifests_match_the_loaders(realdata: Path) -> None:
    for name in SHIPPED:
        shipped = json.loads((PACKAGE_SPLITS / f"{name}.json").read_text())
        assert shipped == build_manifest(load_split(name, realdata / name)), name
    assert load_manifest("msrvtt").split == "test-1k-a" and len(load_manifest("msvd").text_ids) == 27763


def test_show_msrvtt_prints_published_rows_and_a_submitted_matrix(tmp_path: Path, capsys) -> None:
    manifest = load_manifest("msrvtt")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "random.npz", scores=rng.standard_normal((1000, 1000)).astype(np.float32),
             text_ids=np.array(manifest.text_ids), video_ids=np.array(manifest.video_ids),
             fingerprint=np.array(manifest.fingerprint))
    root = str(tmp_path / "lb")
    submit_random = ["leaderboard", "submit", str(tmp_path / "random.npz"), "--benchmark", "msrvtt",
                     "--name", "Random", "--root", root]
    assert main(submit_random) == 2 and "indistinguishable from chance" in capsys.readouterr().err
    assert main([*submit_random, "--allow-chance"]) == 0
    assert "warning: `Random` is no better than chance" in capsys.readouterr().err
    assert main(["leaderboard", "show", "--benchmark", "msrvtt", "--root", root, *FAST]) == 0
    out = capsys.readouterr().out
    assert "GLSCL (ViT-B/32)" in out and "48.1" in out and "Random" in out and "n = 1000 text" in out
    assert main(["leaderboard", "show", "--benchmark", "msrvtt", "--root", root, "--format", "json", *FAST]) == 0
    rows = json.loads(capsys.readouterr().out)
    for row in rows:
        assert {"name", "kind", "track", "t2v", "v2t", "ci", "tier"} <= set(row)
        assert set(row["t2v"]) == set(row["v2t"]) == set(METRIC_NAMES)
    random_row = next(r for r in rows if r["name"] == "Random")
    assert random_row["kind"] == "submitted" and random_row["tier"] == 1
    low, high = random_row["ci"]["t2v"]["MnR"]
    assert low < random_row["t2v"]["MnR"] < high and 400 < random_row["t2v"]["MnR"] < 600
    reported = [r for r in rows if r["kind"] == "reported"]
    assert len(reported) == 13 and all(r["ci"] is None and r["tier"] is None for r in reported)
    assert all(r["track"] == "raw" for r in rows)
    assert main(["leaderboard", "show", "--benchmark", "msrvtt", "--root", root, "--track", "post-processed",
                 "--format", "json", *FAST]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} == {"DiCoSA (ViT-B/32)", "GLSCL (ViT-B/32)",
                                                                        "GLSCL (ViT-B/16)"}


def test_direction_aware_marks_and_tiers(toy_root: Path) -> None:
    board = build_board("toyvtt", "raw", toy_root, StatsSettings(n_resamples=499), published=False)
    rows = {r["name"]: r for r in board["rows"]}
    assert rows["sharp"]["t2v"]["MnR"] < rows["blunt"]["t2v"]["MnR"]
    assert rows["sharp"]["tiers"]["t2v"]["MnR"] == 1 and rows["blunt"]["tiers"]["t2v"]["MnR"] == 2
    best = render.best_values(board)
    assert best[("t2v", "MnR")] == rows["sharp"]["t2v"]["MnR"]
    latex = render.to_latex(board)
    assert r"\toprule" in latex and r"MnR$\downarrow$" in latex and r"R@1$\uparrow$" in latex
    sharp_line = next(line for line in latex.splitlines() if line.startswith("sharp"))
    assert rf"\textbf{{{rows['sharp']['t2v']['MnR']:.1f}}}" in sharp_line
    assert "Holm" in latex and "n = 60 text" in latex and "alpha = 0.05" in latex
    md = render.to_markdown(board)
    assert f"**{rows['sharp']['t2v']['MnR']:.1f}**" in md
    parsed = list(csv.DictReader(io.StringIO(render.to_csv(board))))
    assert {r["name"] for r in parsed} == {"sharp", "blunt"} and parsed[0]["t2v_MnR_low"]


def test_compare_cli_reports_holm(toy_root: Path, capsys) -> None:
    args = ["leaderboard", "compare", "sharp", "blunt", "--benchmark", "toyvtt", "--root", str(toy_root),
            "--resamples", "1999"]
    assert main([*args, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["comparisons"]) == 10 and report["settings"]["correction"] == "holm"
    mnr = next(c for c in report["comparisons"] if (c["direction"], c["metric"]) == ("t2v", "MnR"))
    assert mnr["better"] == "sharp" and mnr["significant"]
    assert main(args) == 0 and "Holm correction" in capsys.readouterr().out
    assert main(["leaderboard", "compare", "sharp", "nobody", "--benchmark", "toyvtt", "--root", str(toy_root)]) == 2


def test_citation_files(tmp_path: Path, capsys) -> None:
    assert validate_cff(CFF_PATH.read_text()) == [] and CFF_PATH.read_text() == cff_text()
    for bad, problem in (("title: x\n", "cff-version"), ("cff-version: 1.2.0\nmessage: m\ntitle: t\nauthors: []\n",
                                                         "non-empty list"),
                         (cff_text().replace("type: software", "type: paper"), "`type`")):
        assert any(problem in e for e in validate_cff(bad)), bad
    assert main(["cite", "--check-cff", str(CFF_PATH)]) == 0
    assert main(["cite", "--benchmark", "msrvtt", "--format", "bibtex", "--root", str(tmp_path)]) == 0
    bib = capsys.readouterr().out
    for key in ("tvbench", "zhang2024glscl", "bogolin2022qbnorm", "xu2016msrvtt", "luo2022clip4clip"):
        assert f"{{{key}," in bib
    assert main(["cite", "--benchmark", "lsmdc", "--format", "latex", "--root", str(tmp_path)]) == 0
    assert r"\cite{gorti2022xpool}" in capsys.readouterr().out


class _Table(HTMLParser):
    """Rows (data-name, data-position) of the table for one benchmark/track, and the body's data-ready flag."""

    def __init__(self, benchmark: str, track: str) -> None:
        super().__init__()
        self.want, self.inside, self.rows, self.ready = (benchmark, track), False, [], None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "body":
            self.ready = a.get("data-ready")
        if tag == "table":
            self.inside = (a.get("data-benchmark"), a.get("data-track")) == self.want
        if tag == "tr" and self.inside and "data-name" in a:
            self.rows.append((a["data-name"], a.get("data-position")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False


def _wide_root(tmp_path: Path) -> Path:
    """A root whose toy board has everything that widens a table: MnR in the hundreds with intervals, seed spreads,
    long names (one without spaces), labels, links, and a run directory with a measured head cost and latency."""
    n, rng = 400, np.random.default_rng(3)
    root = tmp_path / "wide"
    register_split_manifest(root, Split("toyvtt", "test", [VideoRecord(f"v{i}", "") for i in range(n)],
                                        [TextRecord(f"t{i}", f"caption {i}", f"v{i}") for i in range(n)]))

    def scores(signal: float) -> np.ndarray:
        s = rng.standard_normal((n, n))
        s[np.arange(n), np.arange(n)] += signal
        return s

    entries = [("Sharp", scores(2.5), {}), ("Blunt", scores(0.4), {}),
               ("Shuffled baseline", rng.standard_normal((n, n)), {"allow_chance": True}),
               ("Supercalifragilisticexpialidocious-retrieval-network-with-a-very-long-name-v2", scores(1.5), {})]
    entries += [(f"Grouped seed {i}", scores(1.0), {"seed": i, "group": "A grouped model, long config name"})
                for i in range(3)]
    near = entries[3][1].copy()  # a near copy of the long-named entry: one text query ranked differently
    near[0, 0] -= 50
    entries.append(("Near copy", near, {"allow_duplicate": True}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SubmissionWarning)  # chance-level and near-duplicate, as intended
        for name, s, kw in entries:
            np.save(tmp_path / "s.npy", s)
            submit(tmp_path / "s.npy", Submission(benchmark="toyvtt", name=name, paper="https://example.org/paper",
                                                  code="https://example.org/code", **kw), root)
    split = load_manifest("toyvtt", root)
    s = scores(2.0)
    record = make_record(method="timed", config={}, split=split, result=evaluate_scores(s), seed=0,
                         efficiency={"head_gmacs_1k": 0.8, "latency": [{"gallery": 1000, "score_ms": 0.4,
                                                                               "e2e_ms": 2.5, "floor_ms": 0.3}]})
    write_run(record, tmp_path / "timed")
    submit(tmp_path / "timed", Submission(benchmark="toyvtt", name="Timed run", kind="reproduced"), root)
    return root


def _points(page: str, gid: str) -> int:
    """Markers in one point group of the first scatter of `page` (matplotlib draws each point as a <use>)."""
    svg = ElementTree.fromstring(page[page.index("<svg"):page.index("</svg>") + len("</svg>")])
    group = next((g for g in svg.iter() if g.get("id") == gid), None)
    return 0 if group is None else sum(e.tag.endswith("}use") for e in group.iter())


def test_best_is_among_measured_rows_and_reported_rows_are_marked_apart(tmp_path: Path) -> None:
    manifest = load_manifest("msrvtt")
    root, rng = tmp_path / "lb", np.random.default_rng(0)
    for name, signal in (("Strong", 3.0), ("Weak", 1.0)):
        s = rng.standard_normal((1000, 1000))
        s[np.arange(1000), manifest.text_to_video] += signal
        np.savez(tmp_path / "s.npz", scores=s)
        submit(tmp_path / "s.npz", Submission(benchmark="msrvtt", name=name, paper="https://example.org/p(1)",
                                              code="https://example.org/c"), root)
    board = build_board("msrvtt", "raw", root, StatsSettings(n_resamples=199))
    rows = {r["name"]: r for r in board["rows"]}
    strong, glscl = rows["Strong"]["t2v"]["R@1"], rows["GLSCL (ViT-B/16)"]["t2v"]["R@1"]
    assert strong < glscl == 49.5  # the measured best is below the best reported number, and is still the bold one
    md, latex, page = render.to_markdown(board), render.to_latex(board), render.to_html([board])
    assert f"**{strong:.1f}**" in md and "**49.5**" not in md and "_49.5_" in md
    assert rf"\textbf{{{strong:.1f}}}" in latex and r"\textbf{49.5}" not in latex and r"\underline{49.5}" in latex
    assert f'class="best" data-value="{strong!r}"' in page and 'class="best-reported" data-value="49.5"' in page
    for text, measured, reported in ((md, "Measured by tvbench", "Reported in papers"),
                                     (latex, "Measured by tvbench", "Reported in papers"),
                                     (page, 'tbody class="measured"', 'tbody class="reported"')):
        assert text.index(measured) < text.index("Weak") < text.index(reported) < text.index("CLIP4Clip (ViT-B/32)")
    assert "best reported value is in italics, never bold" in md and "underlined, never bold" in latex
    # Paper and code links: from references.bib / published.csv for reported rows, from the submission otherwise.
    assert "[paper](<https://arxiv.org/abs/2405.12710>) [code](<https://github.com/zchoi/GLSCL>)" in md
    assert "[paper](<https://example.org/p(1)>)" in md
    assert '<a href="https://github.com/zchoi/GLSCL" rel="noopener noreferrer">code</a>' in page
    parsed = {r["name"]: r for r in csv.DictReader(io.StringIO(render.to_csv(board)))}
    assert parsed["GLSCL (ViT-B/16)"]["paper"] == "https://arxiv.org/abs/2405.12710"
    assert parsed["Weak"]["code"] == "https://example.org/c"
    assert all(r.paper or r.method == "Prompt Switch" for r in load_published()) and all(r.code for r in
                                                                                        load_published())


def test_labels_and_scatter_in_every_format(tmp_path: Path) -> None:
    root = _wide_root(tmp_path)
    board = build_board("toyvtt", "raw", root, StatsSettings(n_resamples=99), published=False)
    md, latex, page = render.to_markdown(board), render.to_latex(board), render.to_html([board])
    for text in (md, latex, page):
        assert "submitted (chance-level)" in text and "submitted (near-duplicate)" in text
    assert "near-duplicate of Supercalifragilistic" in page
    parsed = {r["name"]: r for r in csv.DictReader(io.StringIO(render.to_csv(board)))}
    assert parsed["Near copy"]["near_duplicate_of"].startswith("Supercalifragilistic")
    assert parsed["Shuffled baseline"]["chance_level"] == "True" and parsed["Sharp"]["chance_level"] == "False"
    assert {r["name"] for r in json.loads(render.to_json(board)) if r["chance_level"]} == {"Shuffled baseline"}
    # One scatter per board, measured rows (filled circles) and reported rows (hollow squares) in separate groups.
    assert page.count('<figure class="scatter" data-benchmark="toyvtt"') == 1
    figure = page[page.index('<figure class="scatter"'):]
    assert _points(figure, "head_gflops-measured") == _points(figure, "latency_ms-measured") == 1  # the run dir
    assert "Timed run" in figure and _points(figure, "head_gflops-reported") == 0
    msrvtt = render.to_html([build_board("msrvtt", "raw", root, StatsSettings(n_resamples=99))])
    assert _points(msrvtt, "head_gflops-reported") == 13 and _points(msrvtt, "head_gflops-measured") == 0
    assert "no entry records a measured latency" in msrvtt


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# Appended to a copy of the page: what the test measures, written where --dump-dom shows it.
_PROBE = """<script>
const root = document.documentElement, figs = Array.from(document.querySelectorAll("figure.scatter svg"));
document.body.dataset.scrollWidth = root.scrollWidth;
document.body.dataset.clientWidth = root.clientWidth;
document.body.dataset.figures = figs.map(f => Math.round(f.getBoundingClientRect().width)).join(",");
document.body.dataset.figureRight = Math.max(...figs.map(f => f.getBoundingClientRect().right));
document.body.dataset.points = document.querySelectorAll('g[id="head_gflops-measured"] use').length;
</script></body>"""


class _Body(HTMLParser):
    """The data attributes of <body>."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "body":
            self.data = {k[5:]: v for k, v in attrs if k.startswith("data-")}


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (install Debian's `chromium`; .ci/run does)")
def test_html_page_in_headless_chromium(tmp_path: Path) -> None:
    root = _wide_root(tmp_path)
    out = tmp_path / "site"
    assert main(["leaderboard", "render", "--out", str(out), "--root", str(root), *FAST]) == 0
    for ext in ("md", "tex", "csv", "html"):
        assert (out / f"msrvtt.{ext}").is_file() and (out / f"toyvtt.{ext}").is_file()
    page = (out / "index.html").read_text()
    # Self-contained: links point out, but nothing is loaded from the network.
    assert not re.search(r"(src|xlink:href)\s*=\s*\"https?:|<link|@import|url\(\s*['\"]?https?:", page)
    assert "https://arxiv.org/abs/2405.12710" in page  # GLSCL's paper link
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE))

    def dump(path: Path, fragment: str = "") -> str:
        profile = tmp_path / f"profile{len(fragment)}{path.stem}"
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", "--window-size=1280,900", f"--user-data-dir={profile}", "--dump-dom",
               path.as_uri() + fragment]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout

    body = _Body()
    body.feed(dump(probe))
    width = int(body.data["client-width"])
    assert 1200 < width <= 1280, body.data  # the window really is 1280 px wide
    assert int(body.data["scroll-width"]) <= width, body.data  # no horizontal scrolling
    figures = [int(w) for w in body.data["figures"].split(",")]
    assert len(figures) == len(re.findall("<figure class=\"scatter\"", page)) >= 2 and min(figures) > 400
    assert float(body.data["figure-right"]) <= width and int(body.data["points"]) >= 1

    board = build_board("toyvtt", "raw", root, StatsSettings(n_resamples=199), published=False)
    values = {r["name"]: r["t2v"] for r in board["rows"]}
    for fragment, metric, reverse in (("", "R@1", True), ("#sort=t2v-MnR", "MnR", False)):
        table = _Table("toyvtt", "raw")
        table.feed(dump(out / "index.html", fragment))
        assert table.ready == "1"  # the script ran
        assert [p for _, p in table.rows] == [str(i + 1) for i in range(len(values))]
        order = [n for n, _ in table.rows]
        assert order == sorted(values, key=lambda n: values[n][metric], reverse=reverse)
    msrvtt = _Table("msrvtt", "raw")
    msrvtt.feed(dump(out / "index.html"))
    assert len(msrvtt.rows) == 13 and msrvtt.rows[0][0] == "GLSCL (ViT-B/16)"
