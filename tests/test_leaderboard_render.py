"""Boards, renderers, CLI, citation files and the HTML page in headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import load_split
from benchmark.data.split import Split, TextRecord, VideoRecord
from leaderboard import render
from leaderboard.board import build_board
from leaderboard.cite import CFF_PATH, cff_text, validate_cff
from leaderboard.published import BENCHMARK_CITES, bib_entries, load_published
from leaderboard.splits import PACKAGE_SPLITS, SHIPPED, build_manifest, load_manifest, register_split_manifest
from leaderboard.stats import METRIC_NAMES, StatsSettings
from leaderboard.submit import Submission, submit

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


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium binary (install Debian's `chromium`; .ci/run does)")
def test_html_page_in_headless_chromium(toy_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert main(["leaderboard", "render", "--out", str(out), "--root", str(toy_root), *FAST]) == 0
    for ext in ("md", "tex", "csv", "html"):
        assert (out / f"msrvtt.{ext}").is_file() and (out / f"toyvtt.{ext}").is_file()
    page = (out / "index.html").read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page
    assert "<svg" in page  # msrvtt has reported head FLOPs

    def dump(fragment: str) -> str:
        profile = tmp_path / f"profile{len(fragment)}"
        cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--dump-dom", (out / "index.html").as_uri() + fragment]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout

    board = build_board("toyvtt", "raw", toy_root, StatsSettings(n_resamples=199), published=False)
    values = {r["name"]: r["t2v"] for r in board["rows"]}
    for fragment, metric, reverse in (("", "R@1", True), ("#sort=t2v-MnR", "MnR", False)):
        table = _Table("toyvtt", "raw")
        table.feed(dump(fragment))
        assert table.ready == "1"  # the script ran
        assert [p for _, p in table.rows] == ["1", "2"]
        order = [n for n, _ in table.rows]
        assert order == sorted(values, key=lambda n: values[n][metric], reverse=reverse)
        assert set(order) == set(values)
    msrvtt = _Table("msrvtt", "raw")
    msrvtt.feed(dump(""))
    assert len(msrvtt.rows) == 13 and msrvtt.rows[0][0] == "GLSCL (ViT-B/16)"
