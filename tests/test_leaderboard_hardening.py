"""Hostile and careless inputs to the leaderboard (issue 12): each is refused with a message, or skipped and reported,
and never breaks `show`, `render` or `cite`, never writes outside the store, never allocates what a header claims."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import tracemalloc
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from test_leaderboard_submit import N, _meta, _scores, _split, _tree_hash

from benchmark.cli import main
from benchmark.data.split import Split
from benchmark.metrics import evaluate_scores
from benchmark.runs import RunRecord, load_run, make_record, write_run
from leaderboard import render, store
from leaderboard.bibtex import BibtexError, official, parse, submitted_entry
from leaderboard.board import build_board
from leaderboard.cite import bibliography
from leaderboard.names import InvalidNameError, normalize_name
from leaderboard.published import PublishedError, load_published
from leaderboard.splits import build_manifest, register_split_manifest
from leaderboard.stats import StatsSettings
from leaderboard.store import load_entries
from leaderboard.submit import Submission, SubmissionError, submit

FAST = StatsSettings(n_resamples=99)
GOOD_BIB = "@Article{doe2025good,\n  Title = \"A {Good} Model\",\n  author={Doe, Jane}, year = 2025, month = jan,\n}"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    lb = tmp_path / "lb"
    register_split_manifest(lb, _split())
    return lb


def _matrix(tmp: Path, seed: int, name: str | None = None) -> Path:
    path = tmp / (name or f"s{seed}.npy")
    np.save(path, _scores(seed))
    return path


@functools.cache
def _record(seed: int) -> RunRecord:
    """A valid record of the scores of `seed` (cached: collecting provenance takes a moment)."""
    return make_record(method="toy", config={}, split=_split(), result=evaluate_scores(_scores(seed)), seed=seed)


def _run_dir(tmp: Path, name: str, score_seed: int = 0, **doc_changes) -> Path:
    """A valid run directory (seed = `score_seed`), with top-level run.json fields replaced by `doc_changes`."""
    path = write_run(_record(score_seed), tmp / name)
    doc = json.loads((path / "run.json").read_text())
    doc.update(doc_changes)
    (path / "run.json").write_text(json.dumps(doc))
    return path


def _plant(root: Path, name: str, seed: int, **meta_changes) -> Path:
    """An entry written into the store by hand, bypassing `submit` (as a pull request or an older version could)."""
    efficiency = meta_changes.pop("efficiency", None)
    meta = {"name": name, "kind": "submitted", "source": "score matrix", **meta_changes}
    record = replace(_record(seed), efficiency=efficiency, extra={"leaderboard": meta})
    return write_run(record, root / "entries" / "toyvtt" / name.lower())


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def _refused(path: Path, meta: Submission, root: Path, message: str) -> None:
    """`meta` is refused with `message` and the store stays byte-identical."""
    before = _tree_hash(root)
    with pytest.raises(SubmissionError) as err:
        submit(path, meta, root)
    assert message in str(err.value), str(err.value)
    assert _tree_hash(root) == before


def test_bibtex_and_efficiency_are_validated_at_submit(root: Path, tmp_path: Path) -> None:
    ok = _matrix(tmp_path, 1)
    _refused(ok, _meta("x", bibtex="@article{k1, title = {unbalanced}"), root, "unbalanced braces")
    _refused(ok, _meta("x", bibtex="@article{k1, title = {a}} @misc{k2, title={b}}"), root, "2 BibTeX entries")
    _refused(ok, _meta("x", paper="javascript:alert(1)"), root, "http(s) URL")
    for efficiency, problem in (([1, 2], "must be an object"), ({"head_gmacs_1k": -1.0}, "finite number >= 0"),
                                ({"head_gmacs_1k": float("nan")}, "finite number >= 0"),
                                ({"latency": [{"gallery": 1000, "median_ms": "fast"}]}, "latency[0].median_ms"),
                                ({"secret": 1}, "Unknown field `efficiency.secret`")):
        run = _run_dir(tmp_path, f"eff{len(problem)}", efficiency=efficiency)
        _refused(run, _meta("x"), root, problem)
    _refused(_run_dir(tmp_path, "extra", extra="abc"), _meta("x"), root, "`extra` must be an object")
    _refused(_run_dir(tmp_path, "extra2", extra={"evil": {"x": 1}}), _meta("x"), root, "Unknown field `extra.evil`")
    for timing, problem in (({"seconds_per_step": -1.0}, "`extra.step_timing.seconds_per_step` must be a finite"),
                            ({"device": 7}, "`extra.step_timing.device` must be text"),
                            ({"secret": 1}, "Unknown field `extra.step_timing.secret`")):
        run = _run_dir(tmp_path, f"timing{len(problem)}", extra={"step_timing": timing})
        _refused(run, _meta("x"), root, problem)
    _refused(_run_dir(tmp_path, "seed", seed="7"), _meta("x"), root, "`seed` must be an integer")
    _refused(_run_dir(tmp_path, "seed2", seed=True), _meta("x"), root, "`seed` must be an integer")


def test_a_bad_entry_is_skipped_and_reported_never_fatal(root: Path, tmp_path: Path, capsys) -> None:
    submit(_matrix(tmp_path, 0), _meta("Good", bibtex=GOOD_BIB), root)
    _plant(root, "nancost", 1, efficiency={"head_gmacs_1k": float("nan")})
    _plant(root, "badbib", 2, bibtex="@article{k, title = {oops}")
    _plant(root, "listcost", 3, efficiency=[1, 2])
    args = ["--root", str(root), "--resamples", "99"]
    assert main(["leaderboard", "show", "--benchmark", "toyvtt", *args]) == 0
    captured = capsys.readouterr()
    assert "Good" in captured.out and "nancost" not in captured.out.split("Skipped")[0]
    for name in ("nancost", "badbib", "listcost"):
        assert f"warning: skipped an invalid entry: Leaderboard entry {root / 'entries' / 'toyvtt' / name}" in (
            captured.err)
    assert main(["leaderboard", "render", "--out", str(tmp_path / "site"), *args]) == 0
    page = (tmp_path / "site" / "toyvtt.html").read_text()
    assert "Skipped (invalid)" in page and "nancost" in page and not re.search(r"\bnan\b", page, re.IGNORECASE)
    assert main(["cite", "--benchmark", "toyvtt", "--format", "bibtex", *args]) == 0
    assert "@article{doe2025good," in capsys.readouterr().out


def test_no_nan_or_inf_is_ever_written(root: Path, tmp_path: Path) -> None:
    submit(_matrix(tmp_path, 0), _meta("A"), root)
    board = build_board("toyvtt", "raw", root, FAST, published=False)
    row = board["rows"][0]
    row["head_gflops"], row["t2v"]["R@5"], row["ci"]["t2v"]["R@1"] = float("nan"), float("inf"), (float("nan"), 1.0)
    for text in (render.to_html([board]), render.to_csv(board), render.to_markdown(board), render.to_latex(board)):
        assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)


def test_latex_injection_is_refused_and_escaped(root: Path, tmp_path: Path) -> None:
    ok = _matrix(tmp_path, 1)
    evil_key = r"@article{k}\input{/etc/passwd}\immediate\write18{id}\cite{k, title = {x}}"
    _refused(ok, _meta("x", bibtex=evil_key), root, "is not valid; use only letters")
    _refused(ok, _meta("x", bibtex=r"@article{k, title = {\input{/etc/passwd}}}"), root, r"`\input` is not allowed")
    _refused(ok, _meta("x", bibtex=r"@article{k, title = {^^5cinput}}"), root, "`^^`")
    _refused(ok, _meta("x", bibtex="@preamble{\"\\\\input{x}\"}"), root, "`@preamble` is not accepted")
    path = submit(ok, _meta(r"Evil \input{/etc/passwd} & co", bibtex=GOOD_BIB), root)
    assert load_run(path).extra["leaderboard"]["bibtex"] == (
        "@article{doe2025good,\n  title = {A {Good} Model},\n  author = {Doe, Jane},\n  year = {2025},\n"
        "  month = {January}\n}")
    board = build_board("toyvtt", "raw", root, FAST, published=False)
    latex = render.to_latex(board)
    assert r"Evil \textbackslash{}input\{/etc/passwd\} \& co~\cite{doe2025good}" in latex
    board["rows"][0]["cite"] = r"k}\input{x}"
    assert r"\input" not in render.to_latex(board).replace(r"\textbackslash{}input", "")


def test_bibtex_parser_reads_the_official_references() -> None:
    refs = official()
    assert len(refs) == len(re.findall(r"^@", Path("leaderboard/references.bib").read_text(), flags=re.MULTILINE))
    assert r"No{\"e}l" in refs["gorti2022xpool"].text()
    assert parse(refs["zhang2024glscl"].text()) == [refs["zhang2024glscl"]]  # writing and reading agree
    with pytest.raises(BibtexError, match="reserved"):
        submitted_entry("@article{zhang2024glscl, title = {Mine}}")


def test_reproduced_kind_does_not_bypass_duplicates(root: Path, tmp_path: Path) -> None:
    path = _matrix(tmp_path, 3)
    submit(path, _meta("r1", kind="reproduced", seed=1), root)
    _refused(path, _meta("r2", kind="reproduced", seed=1), root, "identical")
    _refused(path, _meta("r3", kind="reproduced", seed=2), root, "identical")
    run = _run_dir(tmp_path, "run", score_seed=5)
    _refused(run, _meta("r4", kind="reproduced", seed=6), root, "run.json says seed 5 but --seed is 6")


def test_a_group_belongs_to_its_first_submitter(root: Path, tmp_path: Path, capsys) -> None:
    submit(_matrix(tmp_path, 10), _meta("alice s0", group="Team A", submitter="alice"), root)
    submit(_matrix(tmp_path, 11), _meta("alice s1", group="Team A", submitter="alice"), root)
    _refused(_matrix(tmp_path, 12), _meta("bob s0", group="Team A", submitter="bob"), root, "belongs to alice")
    _refused(_matrix(tmp_path, 12), _meta("bob s0", group="team a", submitter="bob"), root, "looks like the existing")
    _refused(_matrix(tmp_path, 12), _meta("Team A", submitter="bob"), root, "looks like the existing row")
    args = ["leaderboard", "submit", str(tmp_path / "s12.npy"), "--benchmark", "toyvtt", "--name", "bob s0",
            "--group", "Team A", "--submitter", "bob", "--root", str(root)]
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("tvbench leaderboard: error: The group `Team A` belongs to alice")
    assert main([*args, "--maintainer-join"]) == 0
    metas = {e.name: e.meta for e in load_entries(root)}
    assert metas["alice s0"]["group_owner"] == metas["bob s0"]["group_owner"] == "alice"
    assert metas["bob s0"]["group_joined_by_maintainer"] and metas["bob s0"]["submitter"] == "bob"


def test_official_bibtex_keys_are_reserved(root: Path, tmp_path: Path) -> None:
    fake = "@article{zhang2024glscl, title = {Not the real paper}, author = {Mallory}, year = {2099}}"
    _refused(_matrix(tmp_path, 1), _meta("x", bibtex=fake), root, "reserved for the official reference")
    submit(_matrix(tmp_path, 2), _meta("Real", bibtex=GOOD_BIB), root)
    _plant(root, "planted", 3, bibtex=submitted_entry(GOOD_BIB).text().replace("doe2025good", "zhang2024glscl"))
    boards = [build_board("msrvtt", "raw", root, FAST), build_board("toyvtt", "raw", root, FAST)]
    bib = bibliography(boards, root)
    assert "Global-Local Semantic Consistent" in bib and "A {Good} Model" in bib and bib.count("zhang2024glscl,") == 1
    _refused(_matrix(tmp_path, 4), _meta("y", bibtex=GOOD_BIB.replace("Good", "Other")), root, "already cites")


def test_npz_headers_are_checked_before_any_data_is_read(root: Path, tmp_path: Path) -> None:
    zeros = bytes(64 << 20)  # 64 MiB of zeros compress to about 64 KiB
    huge = _zip(tmp_path / "huge.npz", {"scores": _npy_header((4096, 2048)) + zeros})
    negative = _zip(tmp_path / "negative.npz", {"scores": _npy_header((-1, N)) + bytes(64)})
    big_ids = _zip(tmp_path / "ids.npz", {"scores": _npy_header((N, N)) + bytes(8 * N * N),
                                          "text_ids": _npy_header((N,), "<U100000000") + zeros})
    buffer = io.BytesIO()
    np.save(buffer, _scores(4))
    junk = _zip(tmp_path / "junk.npz", {"scores": buffer.getvalue(), "junk": _npy_header((1 << 40,)) + zeros})
    tracemalloc.start()
    try:
        _refused(huge, _meta("x"), root, "wrong shape (4096, 2048)")
        _refused(negative, _meta("x"), root, "negative shape (-1, 40)")
        _refused(big_ids, _meta("x"), root, "`text_ids` must be a string array of at most 256 characters")
        submit(junk, _meta("junk ignored"), root)  # members nobody asked for are never read
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak / 2**20:.0f} MiB"
    np.save(tmp_path / "neg.npy", np.zeros((2, 2)))
    raw = (tmp_path / "neg.npy").read_bytes()
    (tmp_path / "neg.npy").write_bytes(_npy_header((-5, N)) + raw[len(_npy_header((2, 2))):])
    _refused(tmp_path / "neg.npy", _meta("x"), root, "negative shape (-5, 40)")


def test_path_names_from_data_never_leave_the_store(tmp_path: Path) -> None:
    root = tmp_path / "lb"
    doc = build_manifest(_split())
    (root / "splits").mkdir(parents=True)
    (root / "splits" / "evil.json").write_text(json.dumps({**doc, "benchmark": "../../outside"}))
    ok = _matrix(tmp_path, 1)
    before = _tree_hash(tmp_path)
    for benchmark, message in (("evil", "Invalid benchmark name '../../outside'"),
                               ("../lb/splits/evil", "Invalid benchmark name '../lb/splits/evil'"),
                               ("toy/vtt", "Invalid benchmark name")):
        with pytest.raises(SubmissionError, match=re.escape(message)):
            submit(ok, Submission(benchmark=benchmark, name="x"), root)
    assert _tree_hash(tmp_path) == before and not (tmp_path / "outside").exists()
    toy = _split()
    with pytest.raises(InvalidNameError):
        register_split_manifest(root, Split("../escape", "test", toy.videos, toy.texts))


def test_careless_inputs_get_messages(root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    ok = _matrix(tmp_path, 1)
    _refused(ok, _meta("x" * 260), root, "use at most 100")
    monkeypatch.setattr(store, "LOCK_TIMEOUT_S", 0.2)
    with FileLock(str(root / store.LOCK_NAME)):
        _refused(ok, _meta("locked"), root, "held the leaderboard lock")
    (tmp_path / "random.npy").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(SubmissionError) as err:
        submit(tmp_path / "random.npy", _meta("x"), root)
    assert "is not a NumPy .npy array" in str(err.value) and "pickle" not in str(err.value)
    np.savez(tmp_path / "ids.npz", scores=_scores(1), text_ids=np.array([f"t{i}" for i in range(N)][::-1]))
    with pytest.raises(SubmissionError, match=re.escape(f"{tmp_path / 'ids.npz'}: `text_ids`[0] is `t39`")):
        submit(tmp_path / "ids.npz", _meta("x"), root)
    published = tmp_path / "published.csv"
    published.write_text(Path("leaderboard/published.csv").read_text().replace("Table I,", "x" * 140_000 + ",", 1))
    with pytest.raises(PublishedError, match=re.escape(f"{published} line")):
        load_published(published)
    (tmp_path / "file").write_text("not a folder")
    assert main(["leaderboard", "show", "--benchmark", "msrvtt", "--root", str(tmp_path / "file")]) == 2
    assert "tvbench leaderboard: error: The leaderboard root" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["leaderboard", "render", "--out", str(tmp_path / "file"), "--root", str(root)])
    assert exit_.value.code == 2 and "is a file; give a folder" in capsys.readouterr().err


def test_markdown_and_csv_outputs_are_escaped(root: Path, tmp_path: Path) -> None:
    names = ["A|B <b>bold</b> *x*", '=HYPERLINK("http://e.vil","x")', "-1+2", "@SUM(A1)"]
    for i, name in enumerate(names):
        submit(_matrix(tmp_path, 20 + i), _meta(name), root)
    board = build_board("toyvtt", "raw", root, FAST, published=False)
    board["rows"].append({**board["rows"][0], "name": "line\nbreak | pipe"})
    md = render.to_markdown(board)
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert {len(re.findall(r"(?<!\\)\|", line)) for line in table} == {len(re.findall(r"\|", table[0]))}
    assert "<b>" not in md and r"\<b\>bold\</b\>" in md and "line break" in md
    cells = [r["name"] for r in csv.DictReader(io.StringIO(render.to_csv(board)))]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    assert "'=HYPERLINK(\"http://e.vil\",\"x\")" in cells and "'-1+2" in cells and "'@SUM(A1)" in cells


def test_look_alike_names_are_refused(root: Path, tmp_path: Path) -> None:
    submit(_matrix(tmp_path, 1), _meta("Model A"), root)
    submit(_matrix(tmp_path, 2), _meta("Mod\u00e8le C"), root)
    for i, (name, message) in enumerate((
        ("Model \u0410", "already exists"),  # Cyrillic A as a word of its own: same skeleton
        ("model   a", "already exists"),
        ("Mode\u0300le C", "already exists"),  # NFD of an existing NFC name
        ("M\u043edel B", "mixes Cyrillic and Latin letters in the word"),
        ("\u202eModel D", "U+202E"),
        ("Model\u200bE", "U+200B"),
        ("\uff2d\uff4f\uff44\uff45\uff4c A", "already exists"),  # full-width letters, NFKC-equal to "Model A"
    )):
        _refused(_matrix(tmp_path, 3 + i), _meta(name), root, message)
    path = submit(_matrix(tmp_path, 30), _meta("模型 (CJK)"), root)
    assert load_run(path).extra["leaderboard"]["name"] == "模型 (CJK)" and path.name == "模型-cjk"
    assert normalize_name("Ａ  b") == "A b"


def test_numeric_options_and_user_errors_exit_2(root: Path, capsys) -> None:
    for argv, message in (
        (["leaderboard", "show", "--benchmark", "toyvtt", "--resamples", "0"], "argument --resamples: expected an "
                                                                               "integer >= 1, got `0`"),
        (["leaderboard", "show", "--benchmark", "toyvtt", "--alpha", "7"], "argument --alpha: expected a probability"),
        (["leaderboard", "compare", "a", "b", "--benchmark", "toyvtt", "--stats-seed", "-1"], "argument --stats-seed"),
        (["cite", "--resamples", "-3"], "argument --resamples"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--root", str(root)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    for argv, prefix in ((["leaderboard", "compare", "a", "b", "--benchmark", "toyvtt"], "tvbench leaderboard: error:"),
                         (["leaderboard", "show", "--benchmark", "nope"], "tvbench leaderboard: error:"),
                         (["leaderboard", "show", "--benchmark", "../x"], "tvbench leaderboard: error: Invalid"),
                         (["cite", "--benchmark", "nope"], "tvbench cite: error:"),
                         (["cite", "--check-cff", "/nonexistent/CITATION.cff"], "tvbench cite: error:")):
        assert main([*argv, "--root", str(root)]) == 2, argv
        assert capsys.readouterr().err.startswith(prefix), argv
