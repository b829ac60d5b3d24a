"""Numbers reported by papers (`published.csv`) and their BibTeX (`references.bib`): shown and cited, never tested.

Each row links its paper (the `url`, else the arXiv `eprint`, of its method's BibTeX entry) and its official code
(the `code` column).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

from leaderboard.bibtex import REFERENCES_BIB, BibEntry, official
from leaderboard.schema import check_url
from leaderboard.stats import DIRECTIONS, METRIC_NAMES
from leaderboard.store import track_of

PUBLISHED_CSV = Path(__file__).resolve().parent / "published.csv"
# Citation of each post-processing method (rows of the post-processed track cite it too).
POST_PROCESSING_CITES = {"qb-norm": "bogolin2022qbnorm", "dsl": "cheng2021camoe"}
# Citation of each benchmark (dataset paper; MSR-VTT's 1k-A split adds JSFusion).
BENCHMARK_CITES = {
    "msrvtt": ("xu2016msrvtt", "yu2018jsfusion"),
    "msvd": ("chen2011msvd",),
    "didemo": ("hendricks2017didemo",),
    "lsmdc": ("rohrbach2017lsmdc",),
    "activitynet": ("krishna2017activitynet",),
}


@dataclass(frozen=True)
class PublishedRow:
    """One method x backbone x benchmark x post-processing row of a paper's table."""

    method: str
    backbone: str
    benchmark: str
    split: str
    post_processing: str
    t2v: dict[str, float | None]
    v2t: dict[str, float | None] | None
    head_flops: str
    cite: str
    source: str
    table: str
    note: str
    code: str | None = None

    @property
    def name(self) -> str:
        """Display name: method and backbone."""
        return f"{self.method} ({self.backbone})"

    @property
    def track(self) -> str:
        return track_of(self.post_processing)

    @property
    def head_gflops(self) -> float | None:
        """The head cost as printed (e.g. `220.9G` -> 220.9; the paper does not say FLOPs or MACs)."""
        return parse_giga(self.head_flops)

    @property
    def paper(self) -> str | None:
        """Link to the method's paper, from its BibTeX entry in references.bib."""
        entry = official().get(self.cite)
        return None if entry is None else paper_url(entry)

    @property
    def cites(self) -> tuple[str, ...]:
        """Every citation key this row needs: the method, the table it was copied from, its post-processing."""
        keys = [self.cite, self.source, POST_PROCESSING_CITES.get(self.post_processing)]
        return tuple(dict.fromkeys(k for k in keys if k))


def paper_url(entry: BibEntry) -> str | None:
    """A BibTeX entry's `url`, else its arXiv abstract page from `eprint`, else None."""
    fields = dict(entry.fields)
    if fields.get("url"):
        return fields["url"]
    if fields.get("eprint") and fields.get("archiveprefix", "arXiv").lower() == "arxiv":
        return f"https://arxiv.org/abs/{fields['eprint']}"
    return None


def parse_giga(text: str) -> float | None:
    """`0.51G` -> 0.51; empty -> None."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*G?\s*", text or "")
    return float(match.group(1)) if match and text.strip() else None


class PublishedError(ValueError):
    """A malformed row of published.csv; the message names the file and line."""


def _number(text: str | None) -> float | None:
    if text is None:
        raise ValueError("a column is missing")
    if not text.strip():
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"`{text}` is not a finite number")
    return value


def _link(text: str | None) -> str | None:
    """An optional URL column: empty -> None; anything but an http(s) URL is refused (SchemaError is a ValueError)."""
    if not text:
        return None
    check_url(text, "code")
    return text


def load_published(path: Path = PUBLISHED_CSV) -> list[PublishedRow]:
    """Every reported row of `published.csv` (missing numbers -> None; a direction with no numbers -> None)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        try:
            for r in reader:
                metrics = {d: {m: _number(r[f"{d}_{m}"]) for m in METRIC_NAMES} for d in DIRECTIONS}
                v2t = metrics["v2t"] if any(v is not None for v in metrics["v2t"].values()) else None
                rows.append(PublishedRow(
                    method=r["method"], backbone=r["backbone"], benchmark=r["benchmark"], split=r["split"],
                    post_processing=r["post_processing"], t2v=metrics["t2v"], v2t=v2t, head_flops=r["head_flops"],
                    cite=r["cite"], source=r["source"], table=r["table"], note=r["note"], code=_link(r.get("code")),
                ))
        except (csv.Error, KeyError, TypeError, ValueError) as err:
            raise PublishedError(f"{path} line {reader.line_num}: malformed row ({err}); fix the file.") from err
    return rows


def bib_entries() -> dict[str, str]:
    """The official references (`references.bib`) by key, each written from its parsed fields."""
    return {key: entry.text() for key, entry in official(REFERENCES_BIB).items()}
