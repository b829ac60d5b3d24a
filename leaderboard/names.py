"""Names that come from users or data: entry and group names (shown on boards) and names that become file names.

Two names that look alike must not become two entries: display names are NFKC-normalised, invisible characters
(controls, format characters such as bidi overrides and zero-width joiners) are refused, one word may not mix Latin,
Greek and Cyrillic letters, and duplicates are detected on a `skeleton` that maps Greek and Cyrillic look-alikes onto
Latin letters. Names that become paths (benchmarks) are restricted to a safe alphabet, so data never escapes a folder.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 100
# Scripts whose letters are confusable with one another (Unicode TS #39 would refuse mixing them in one word).
CONFUSABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "CHEROKEE", "COPTIC")
# Lowercase Cyrillic and Greek letters drawn like a Latin letter (after casefolding), for `skeleton`.
_LOOKALIKES = str.maketrans("авекмнорстухіјѕԁԛԝһӏαβεζηικμνορτυχ", "abekmhopctyxijsdqwhlabezhikmnoptyx")
_INVISIBLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
PATH_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*")
MAX_PATH_NAME = 64


class InvalidNameError(ValueError):
    """A name that cannot be shown or used as a file name; the message says which character or rule and why."""


def _script(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split(" ")[0]


def normalize_name(text: str, what: str = "name") -> str:
    """`text` NFKC-normalised with runs of white space collapsed; refuses invisible and look-alike characters."""
    if not isinstance(text, str):
        raise InvalidNameError(f"The {what} must be text, got {type(text).__name__}.")
    name = " ".join(unicodedata.normalize("NFKC", text).split())
    if not name:
        raise InvalidNameError(f"The {what} is empty; give a descriptive name.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidNameError(f"The {what} has {len(name)} characters; use at most {MAX_NAME_CHARS}.")
    for char in name:
        if unicodedata.category(char) in _INVISIBLE:
            raise InvalidNameError(
                f"The {what} {name!r} contains the invisible or control character U+{ord(char):04X} "
                f"({unicodedata.name(char, 'unnamed')}), which can make two names look alike; remove it."
            )
    for word in re.findall(r"\w+", name):
        scripts = sorted({_script(c) for c in word if c.isalpha()} & set(CONFUSABLE_SCRIPTS))
        if len(scripts) > 1:
            raise InvalidNameError(
                f"The {what} {name!r} mixes {' and '.join(s.title() for s in scripts)} letters in the word "
                f"{word!r} (look-alike characters); write each word in one script."
            )
    if not any(c.isalnum() for c in name):
        raise InvalidNameError(f"The {what} {name!r} has no letters or digits; choose a descriptive name.")
    return name


def skeleton(name: str) -> str:
    """What a name looks like: NFKC, casefolded, look-alike letters mapped to Latin, punctuation runs as one `-`."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKES)
    return re.sub(r"[\W_]+", "-", folded).strip("-")


def check_path_name(value: object, what: str = "benchmark") -> str:
    """`value` when it is safe as one file name (lowercase letters, digits, `_`, `-`, inner dots); refuses the rest."""
    if isinstance(value, str) and len(value) <= MAX_PATH_NAME and PATH_NAME.fullmatch(value):
        return value
    raise InvalidNameError(
        f"Invalid {what} name {value!r}: it becomes a file name, so use at most {MAX_PATH_NAME} lowercase letters, "
        "digits, `_`, `-` and inner dots (no `/`, `..`, spaces or leading dot)."
    )
