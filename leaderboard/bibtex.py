"""BibTeX as parsed fields: read, validated, and written back from the fields, never passed through as text.

BibTeX reaches LaTeX documents (`tvbench cite --format bibtex`), so an entry is accepted only when every part of it is
known to be inert: a key of `[A-Za-z0-9_:-]`, plain field names, balanced braces, and no TeX command other than
accents and escaped special characters (so no `\\input`, `\\write18` or `^^` character codes). The keys of
`leaderboard/references.bib` belong to the official references and are reserved.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

REFERENCES_BIB = Path(__file__).resolve().parent / "references.bib"
KEY = re.compile(r"[A-Za-z0-9_:-]+")
_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_START = re.compile(r"@\s*([A-Za-z]+)\s*([{(]?)")
_NUMBER = re.compile(r"\d+")
_MACRO = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
MONTHS = dict(zip(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December")))
# TeX commands allowed inside values: accents, escaped specials and letters with no ASCII form.
SAFE_COMMANDS = frozenset(
    list("\"'`^~=.&%$#_ -")
    + "u v H c d b t k r ss o O l L ae AE oe OE aa AA i j textendash textemdash ldots dots".split()
)
MAX_ENTRY_CHARS = 20_000


class BibtexError(ValueError):
    """BibTeX that is malformed or unsafe; the message names the entry and the problem."""


@dataclass(frozen=True)
class BibEntry:
    """One entry: type (lowercase), key, and (field name, value) pairs; values are the text inside the delimiters."""

    type: str
    key: str
    fields: tuple[tuple[str, str], ...]

    def text(self) -> str:
        """The entry written from its fields (one field per line, every value in braces)."""
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in self.fields)
        return f"@{self.type}{{{self.key},\n{body}\n}}"


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _braced(text: str, start: int, close: str, where: str) -> tuple[str, int]:
    """The text from `start` up to the `close` character at brace depth 0, and the position after it.

    Every brace counts, escaped or not, as in BibTeX; `_check_value` refuses escaped braces, so LaTeX agrees.
    """
    depth = 0
    for i in range(start, len(text)):
        char = text[i]
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == "}" and close != "}":
            raise BibtexError(f"{where}: unbalanced braces (a `}}` closes nothing at line {_line(text, i)}).")
        elif char == close and depth == 0:
            return text[start:i], i + 1
    raise BibtexError(f"{where}: unbalanced braces or an unterminated value starting at line {_line(text, start)}.")


def _check_value(value: str, where: str) -> str:
    """`value` with white space collapsed, when it holds no TeX command outside `SAFE_COMMANDS` and no `^^`."""
    if "^^" in value:
        raise BibtexError(f"{where}: `^^` (a TeX character code) is not allowed.")
    for match in re.finditer(r"\\([A-Za-z]+|.?)", value, flags=re.DOTALL):
        if match.group(1) not in SAFE_COMMANDS:
            raise BibtexError(
                f"{where}: the TeX command `{match.group(0)}` is not allowed; only accents (e.g. {{\\\"o}}) and "
                "escaped characters (\\&, \\%, \\_) may appear in a value."
            )
    for char in "%#&":
        if re.search(rf"(?<!\\){re.escape(char)}", value):
            raise BibtexError(f"{where}: unescaped `{char}` breaks LaTeX; write `\\{char}`.")
    return " ".join(value.split())


def _value(text: str, pos: int, where: str) -> tuple[str, int]:
    """One field value (braced, quoted, a number or a month macro) starting at `pos`, and the position after it."""
    if text.startswith("{", pos):
        return _braced(text, pos + 1, "}", where)
    if text.startswith('"', pos):
        return _braced(text, pos + 1, '"', where)
    if match := _NUMBER.match(text, pos):
        return match.group(0), match.end()
    if (match := _MACRO.match(text, pos)) and match.group(0).lower() in MONTHS:
        return MONTHS[match.group(0).lower()], match.end()
    found = text[pos:pos + 20].split("\n")[0]
    raise BibtexError(f"{where}: expected a value in braces, quotes, a number or a month at line {_line(text, pos)}, "
                      f"found `{found}` (@string macros are not supported).")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _entry(text: str, pos: int, kind: str, where: str) -> tuple[BibEntry, int]:
    pos = _skip(text, pos)
    end = pos
    while end < len(text) and text[end] != "," and not text[end].isspace():  # BibTeX reads the key up to a comma
        end += 1
    key = text[pos:end]
    if not KEY.fullmatch(key):
        raise BibtexError(f"{where}: the key {key!r} is not valid; use only letters, digits, `_`, `:` and `-`.")
    where = f"{where}: entry `{key}`"
    pos = _skip(text, end)
    fields: dict[str, str] = {}
    while True:
        if pos >= len(text):
            raise BibtexError(f"{where}: unbalanced braces (the entry is never closed with `}}`).")
        if text.startswith("}", pos):
            return BibEntry(kind, key, tuple(fields.items())), pos + 1
        if not text.startswith(",", pos):
            raise BibtexError(f"{where}: expected `,` or `}}` at line {_line(text, pos)}.")
        pos = _skip(text, pos + 1)
        if text.startswith("}", pos):
            continue
        name_match = _FIELD.match(text, pos)
        if not name_match:
            raise BibtexError(f"{where}: expected a field name at line {_line(text, pos)}.")
        name = name_match.group(0).lower()
        pos = _skip(text, name_match.end())
        if not text.startswith("=", pos):
            raise BibtexError(f"{where}: expected `=` after field `{name}` at line {_line(text, pos)}.")
        value, pos = _value(text, _skip(text, pos + 1), f"{where}, field `{name}`")
        pos = _skip(text, pos)
        if text.startswith("#", pos):
            raise BibtexError(f"{where}, field `{name}`: `#` concatenation is not supported; write one value.")
        if name in fields:
            raise BibtexError(f"{where}: field `{name}` appears twice.")
        fields[name] = _check_value(value, f"{where}, field `{name}`")


def parse(text: str, where: str = "BibTeX") -> list[BibEntry]:
    """Every entry of `text` (text outside entries is a comment, as in BibTeX); raises `BibtexError` with the reason."""
    entries, pos = [], 0
    while (at := text.find("@", pos)) != -1:
        match = _START.match(text, at)
        if not match or not match.group(2):
            raise BibtexError(f"{where}: `@` at line {_line(text, at)} does not start an entry `@type{{key, ...}}`.")
        kind = match.group(1).lower()
        if kind in ("string", "preamble", "comment"):
            raise BibtexError(f"{where}: `@{kind}` is not accepted; give plain entries such as `@article{{key, ...}}`.")
        if match.group(2) == "(":
            raise BibtexError(f"{where}: write the entry at line {_line(text, at)} with braces, `@{kind}{{key, ...}}`.")
        entry, pos = _entry(text, match.end(), kind, where)
        if len(entry.text()) > MAX_ENTRY_CHARS:
            raise BibtexError(f"{where}: entry `{entry.key}` is longer than {MAX_ENTRY_CHARS} characters.")
        entries.append(entry)
    return entries


def entries_by_key(text: str, where: str = "BibTeX") -> dict[str, BibEntry]:
    """The entries of `text` by key; a key used twice is an error."""
    entries: dict[str, BibEntry] = {}
    for entry in parse(text, where):
        if entry.key in entries:
            raise BibtexError(f"{where}: the key `{entry.key}` is used by two entries.")
        entries[entry.key] = entry
    return entries


@functools.cache
def official(path: Path = REFERENCES_BIB) -> dict[str, BibEntry]:
    """The official references (`leaderboard/references.bib`) by key."""
    return entries_by_key(path.read_text(encoding="utf-8"), str(path))


def submitted_entry(text: str, where: str = "BibTeX") -> BibEntry:
    """The one entry of a submitted BibTeX text, validated; its key must not be an official reference's."""
    entries = parse(text, where)
    if not entries:
        raise BibtexError(f"{where} holds no BibTeX entry (expected `@type{{key, ...}}`).")
    if len(entries) > 1:
        raise BibtexError(f"{where} holds {len(entries)} BibTeX entries; give the one entry of the paper.")
    entry = entries[0]
    if entry.key in official():
        raise BibtexError(
            f"{where}: the key `{entry.key}` is reserved for the official reference in leaderboard/references.bib; "
            "choose another key."
        )
    return entry
