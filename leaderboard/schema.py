"""The parts of a leaderboard entry that `benchmark.runs` does not check: `extra` (with the `extra.leaderboard` and
`extra.step_timing` blocks), `efficiency` and `seed`.

They are checked when a submission is accepted and again whenever an entry is read, so a bad entry (written by hand
or by an older version) is skipped and reported instead of breaking every board, and nothing unchecked (a NaN cost,
raw BibTeX, an invisible character in a name) reaches a table.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable
from typing import Any

from benchmark.runs import RunRecord
from leaderboard.bibtex import BibtexError, submitted_entry
from leaderboard.names import InvalidNameError, normalize_name

KINDS = ("reported", "reproduced", "submitted")
SOURCES = ("score matrix", "run directory")
URL = re.compile(r"https?://[^\s<>\"'`\\{}|^]+")
MAX_URL_CHARS = 500
MAX_TEXT_CHARS = 2_000
# Fields of `efficiency` (benchmark.engine.efficiency.efficiency_block): costs are finite numbers >= 0, the rest text.
EFFICIENCY_NUMBERS = ("frames", "words", "params_total", "params_backbone", "params_added", "per_pair_macs",
                      "head_gmacs_1k", "per_video_gflops", "per_text_gflops")
EFFICIENCY_TEXTS = ("unit", "convention", "device", "device_name")
LATENCY_TEXTS = ("floor_kernel",)
LATENCY_NUMBERS = ("gallery", "gallery_bytes", "score_ms", "score_iqr_ms", "e2e_ms", "e2e_iqr_ms", "floor_ms",
                   "floor_iqr_ms", "read_gbps", "score_to_floor", "runs", "video_block",
                   "median_ms", "iqr_ms", "extrapolated_from")  # the last three: entries written before issue 17
# Fields that `tvbench train` / `evaluate` put into a run record's `extra`.
EXTRA_TYPES: dict[str, type] = {"data_root": str, "trained": bool, "checkpoint": str, "log": str, "selection": dict,
                                 "model_source": dict, "step_timing": dict}
# Fields of `extra.step_timing` (benchmark.engine.step_meter): counts and bytes are finite numbers >= 0, the seconds
# too or null (no step after the warm-up), the rest short texts.
STEP_TIMING_NUMBERS = ("world_size", "batch_per_process", "steps", "warmup_steps", "timed_steps", "peak_memory_bytes",
                       "peak_memory_reserved_bytes")
STEP_TIMING_SECONDS = ("seconds_per_step", "seconds_per_step_median")
STEP_TIMING_TEXTS = ("device", "device_name", "peak_memory_kind")


class SchemaError(ValueError):
    """A field of an entry with the wrong type or value; the message names the field."""


def _number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError(f"`{where}` must be a finite number >= 0, got {type(value).__name__}.")
    if not math.isfinite(value) or value < 0:
        found = "a negative number" if value < 0 else "a value that is not finite"
        raise SchemaError(f"`{where}` must be a finite number >= 0, got {found}.")


def _text(value: Any, where: str, limit: int = MAX_TEXT_CHARS) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise SchemaError(f"`{where}` must be text of at most {limit} characters, got {type(value).__name__}.")


def check_url(value: Any, where: str) -> None:
    """None or an http(s) URL without spaces, quotes or braces."""
    if value is not None and not (isinstance(value, str) and len(value) <= MAX_URL_CHARS and URL.fullmatch(value)):
        raise SchemaError(f"`{where}` must be an http(s) URL (no spaces, quotes or braces), got {value!r}.")


def check_efficiency(block: Any) -> None:
    """None or a cost summary of known fields: finite non-negative numbers, short texts, a latency list."""
    if block is None:
        return
    if not isinstance(block, dict):
        raise SchemaError(f"`efficiency` must be an object of cost fields or null, got {type(block).__name__}.")
    for key, value in block.items():
        if key in EFFICIENCY_NUMBERS:
            _number(value, f"efficiency.{key}")
        elif key in EFFICIENCY_TEXTS:
            _text(value, f"efficiency.{key}")
        elif key == "latency":
            if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
                raise SchemaError("`efficiency.latency` must be a list of objects.")
            for i, row in enumerate(value):
                for field, item in row.items():
                    if field in LATENCY_TEXTS:
                        _text(item, f"efficiency.latency[{i}].{field}", limit=40)
                    elif field in LATENCY_NUMBERS:
                        _number(item, f"efficiency.latency[{i}].{field}")
                    else:
                        raise SchemaError(f"Unknown field `efficiency.latency[{i}].{field}`.")
        else:
            known = ", ".join((*EFFICIENCY_NUMBERS, *EFFICIENCY_TEXTS, "latency"))
            raise SchemaError(f"Unknown field `efficiency.{key}`; known: {known}.")


def check_extra(extra: Any) -> None:
    """`extra` is an object whose fields other than `leaderboard` are the typed ones that tvbench writes."""
    if not isinstance(extra, dict):
        raise SchemaError(f"`extra` must be an object, got {type(extra).__name__}.")
    for key, value in extra.items():
        if key == "leaderboard":
            continue
        if key not in EXTRA_TYPES:
            raise SchemaError(f"Unknown field `extra.{key}`; known: leaderboard, {', '.join(EXTRA_TYPES)}.")
        if not isinstance(value, EXTRA_TYPES[key]):
            raise SchemaError(f"`extra.{key}` must be {EXTRA_TYPES[key].__name__}, got {type(value).__name__}.")
        if key == "step_timing":
            check_step_timing(value)


def check_step_timing(block: dict[str, Any]) -> None:
    """`extra.step_timing`: known fields only, numbers finite and >= 0 (seconds may be null), short texts."""
    for key, value in block.items():
        where = f"extra.step_timing.{key}"
        if key in STEP_TIMING_TEXTS:
            _text(value, where)
        elif key in STEP_TIMING_NUMBERS or (key in STEP_TIMING_SECONDS and value is not None):
            _number(value, where)
        elif key not in STEP_TIMING_SECONDS:
            known = ", ".join((*STEP_TIMING_NUMBERS, *STEP_TIMING_SECONDS, *STEP_TIMING_TEXTS))
            raise SchemaError(f"Unknown field `{where}`; known: {known}.")


def _name(value: Any, what: str) -> None:
    try:
        normalised = normalize_name(value, what)
    except InvalidNameError as err:
        raise SchemaError(str(err)) from err
    if normalised != value:
        raise SchemaError(f"The {what} {value!r} is not in normal form (NFKC, single spaces); resubmit the entry.")


def _optional(check: Callable[[Any, str], None]) -> Callable[[Any, str], None]:
    return lambda value, what: None if value is None else check(value, what)


def _bibtex(value: Any, what: str) -> None:
    _text(value, what, limit=50_000)
    try:
        entry = submitted_entry(value, what)
    except BibtexError as err:
        raise SchemaError(str(err)) from err
    if entry.text() != value:
        raise SchemaError(f"`{what}` is not in the form tvbench writes (re-serialised from its fields).")


def _timestamp(value: Any, what: str) -> None:
    try:
        _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"`{what}` must be an ISO 8601 date-time, got {value!r}.") from err


def _choice(choices: tuple[str, ...]) -> Callable[[Any, str], None]:
    def check(value: Any, what: str) -> None:
        if value not in choices:
            raise SchemaError(f"`{what}` must be one of {', '.join(choices)}, got {value!r}.")

    return check


def _flag(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise SchemaError(f"`{what}` must be true or false, got {value!r}.")


def _probability(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SchemaError(f"`{what}` must be a number between 0 and 1, got {value!r}.")


def _names(value: Any, what: str) -> None:
    if not isinstance(value, list) or not value:
        raise SchemaError(f"`{what}` must be a non-empty list of entry names, got {value!r}.")
    for i, name in enumerate(value):
        _name(name, f"{what}[{i}]")


# Field of `extra.leaderboard` -> (required, check). `submitter`, `group_owner` and the sanity fields (`chance_p`,
# `chance_level`, `near_duplicate_of`, `supersedes`) are absent in older entries.
LEADERBOARD_FIELDS: dict[str, tuple[bool, Callable[[Any, str], None]]] = {
    "name": (True, _name),
    "kind": (True, _choice(KINDS)),
    "paper": (False, check_url),
    "code": (False, check_url),
    "bibtex": (False, _optional(_bibtex)),
    "group": (False, _optional(_name)),
    "source": (False, _choice(SOURCES)),
    "submitted": (False, _timestamp),
    "submitter": (False, _optional(_name)),
    "group_owner": (False, _optional(_name)),
    "group_joined_by_maintainer": (False, _flag),
    "chance_p": (False, _probability),
    "chance_level": (False, _flag),
    "near_duplicate_of": (False, _names),
    "supersedes": (False, _name),
}


def check_leaderboard_block(block: Any) -> None:
    """The `extra.leaderboard` block: known fields only, each of its type."""
    if not isinstance(block, dict):
        raise SchemaError("`extra.leaderboard` (name, kind, ...) is missing; add entries with "
                          "`tvbench leaderboard submit`, never by hand.")
    unknown = sorted(set(block) - set(LEADERBOARD_FIELDS))
    if unknown:
        raise SchemaError(f"Unknown field `extra.leaderboard.{unknown[0]}`; known: {', '.join(LEADERBOARD_FIELDS)}.")
    for key, (required, check) in LEADERBOARD_FIELDS.items():
        if key in block:
            check(block[key], f"extra.leaderboard.{key}")
        elif required:
            raise SchemaError(f"`extra.leaderboard.{key}` is missing.")


def check_entry(record: RunRecord) -> None:
    """Every field of an entry that `benchmark.runs.validate` leaves unchecked; raises `SchemaError`."""
    if record.seed is not None and (isinstance(record.seed, bool) or not isinstance(record.seed, int)):
        raise SchemaError(f"`seed` must be an integer or null, got {record.seed!r}.")
    check_efficiency(record.efficiency)
    check_extra(record.extra)
    check_leaderboard_block(record.extra.get("leaderboard"))
