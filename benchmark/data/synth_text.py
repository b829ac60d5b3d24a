"""SynthVTT captions: varied templates and synonyms over a scene's attributes, their binding to objects and time.

The first caption of a clip is *complete* (background, size, colour, shape, start position and motion of every
object), so it singles the clip out in its dataset; the others drop size, position or background at random, like the
looser captions of real benchmarks. Colour words are never swapped for synonyms; everything else is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.data.synth_scene import Scene, region

# motion -> (present tense, gerund) phrasings; the gerund feeds "after moving up, ..." templates.
MOTION_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "left": (("moves to the left", "moving to the left"), ("slides left", "sliding left"), ("goes left", "going left"),
             ("travels leftward", "travelling leftward"), ("heads left", "heading left")),
    "right": (("moves to the right", "moving to the right"), ("slides right", "sliding right"),
              ("goes right", "going right"), ("travels rightward", "travelling rightward"),
              ("heads right", "heading right")),
    "up": (("moves up", "moving up"), ("rises", "rising"), ("goes up", "going up"), ("slides upward", "sliding upward"),
           ("floats up", "floating up")),
    "down": (("moves down", "moving down"), ("falls", "falling"), ("goes down", "going down"),
             ("slides downward", "sliding downward"), ("sinks", "sinking")),
    "grow": (("grows", "growing"), ("gets bigger", "getting bigger"), ("expands", "expanding"),
             ("becomes larger", "becoming larger")),
    "shrink": (("shrinks", "shrinking"), ("gets smaller", "getting smaller"), ("contracts", "contracting"),
               ("becomes smaller", "becoming smaller")),
    "clockwise": (("spins clockwise", "spinning clockwise"), ("rotates clockwise", "rotating clockwise"),
                  ("turns clockwise", "turning clockwise")),
    "counterclockwise": (("spins counterclockwise", "spinning counterclockwise"),
                         ("rotates anticlockwise", "rotating anticlockwise"),
                         ("turns counterclockwise", "turning counterclockwise")),
    "still": (("stays still", "staying still"), ("does not move", "not moving"),
              ("remains in place", "remaining in place"), ("stays where it is", "staying where it is")),
}  # fmt: skip
SHAPE_NOUNS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle",),
    "star": ("star",),
    "cross": ("cross", "plus sign"),
    "ring": ("ring", "hoop"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
BACKGROUND_WORDS = {"black": ("black",), "gray": ("gray", "grey"), "white": ("white",)}
BACKGROUND_PHRASES = ("on a {} background", "against a {} backdrop", "over a {} background")
REGION_PHRASES: dict[str, tuple[str, ...]] = {
    "centre": ("in the centre", "in the middle"),
    "left": ("on the left", "on the left side"),
    "right": ("on the right", "on the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "near the bottom"),
}
TWO_PHASE = ("first {a} and then {b}", "{a} and then {b}", "{a}, then {b}", "first {a}, then {b}", "{a} before {gb}")
JOINERS = ("{} while {}", "{} and {}", "{}; {}", "{}, and meanwhile {}")
IMAGE_PREFIXES = ("", "a picture of ", "an image of ", "a frame showing ")


@dataclass(frozen=True)
class Detail:
    """Which optional attributes a caption states."""

    size: bool
    position: bool
    background: bool


COMPLETE = Detail(True, True, True)


def _pick(rng: np.random.Generator, options: tuple, synonyms: bool = True) -> object:
    """A random one of `options`; without `synonyms` always the first (one draw either way)."""
    options = options if synonyms else options[:1]
    return options[int(rng.integers(len(options)))]


def _article(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def _region_phrase(rng: np.random.Generator, name: str, synonyms: bool = True) -> str:
    if name in REGION_PHRASES:
        return str(_pick(rng, REGION_PHRASES[name], synonyms))
    return str(_pick(rng, ("in the {} corner", "at the {}"), synonyms)).format(name)


def _noun_phrase(rng: np.random.Generator, scene: Scene, i: int, detail: Detail, synonyms: bool = True) -> str:
    """"a [size] colour shape"; without `synonyms`, size and shape are always the first word of their lists."""
    obj = scene.objects[i]
    words = [str(_pick(rng, SIZE_WORDS[obj.size], synonyms))] if detail.size else []
    return _article(" ".join([*words, obj.colour, str(_pick(rng, SHAPE_NOUNS[obj.shape], synonyms))]))


def _background(rng: np.random.Generator, scene: Scene, synonyms: bool = True) -> str:
    phrase = str(_pick(rng, BACKGROUND_PHRASES, synonyms))  # drawn before the word, as always
    return phrase.format(_pick(rng, BACKGROUND_WORDS[scene.background], synonyms))


def _subject(
    rng: np.random.Generator, scene: Scene, i: int, detail: Detail, synonyms: bool = True
) -> tuple[str, str]:
    """(noun phrase with the position folded in where it goes, leading position phrase or "")."""
    noun = _noun_phrase(rng, scene, i, detail, synonyms)
    if not detail.position:
        return noun, ""
    where = _region_phrase(rng, region(scene, i), synonyms)
    return (noun, where) if rng.random() < 0.5 else (f"{noun} {where}", "")


def _verb(rng: np.random.Generator, phases: tuple[str, ...]) -> str:
    """Verb phrase of a motion; two phases use "first ... then", ", then", "before"."""
    if len(phases) == 1:
        return str(_pick(rng, MOTION_PHRASES[phases[0]])[0])
    (a, _ga), (b, gb) = (_pick(rng, MOTION_PHRASES[m]) for m in phases)
    return str(_pick(rng, TWO_PHASE)).format(a=a, b=b, gb=gb)


def _one_object(rng: np.random.Generator, scene: Scene, detail: Detail) -> str:
    noun, lead = _subject(rng, scene, 0, detail)
    phases = scene.objects[0].phases
    if len(phases) == 2 and rng.random() < 0.3:  # "after moving up, a red square goes left"
        (_a, ga), (b, _gb) = (_pick(rng, MOTION_PHRASES[m]) for m in phases)
        return f"after {ga}, {lead + ' ' if lead else ''}{noun} {b}"
    return f"{lead + ' ' if lead else ''}{noun} {_verb(rng, phases)}"


def _two_objects(rng: np.random.Generator, scene: Scene, detail: Detail) -> str:
    clauses = []
    for i in (0, 1) if rng.random() < 0.5 else (1, 0):
        noun, lead = _subject(rng, scene, i, detail)
        clauses.append(f"{lead + ' ' if lead else ''}{noun} {_verb(rng, scene.objects[i].phases)}")
    return str(_pick(rng, JOINERS)).format(*clauses)


def caption(rng: np.random.Generator, scene: Scene, detail: Detail) -> str:
    """One caption of the clip `scene` stating the attributes `detail` asks for (colour, shape, motion always)."""
    body = (_two_objects if len(scene.objects) == 2 else _one_object)(rng, scene, detail)
    if detail.background:
        bg = _background(rng, scene)
        body = f"{bg}, {body}" if rng.random() < 0.5 else f"{body} {bg}"
    return body


def video_captions(rng: np.random.Generator, scene: Scene, n: int) -> list[str]:
    """`n` captions: the first complete, the rest each dropping size / position / background at random."""
    looser = [Detail(*(bool(v) for v in rng.random(3) < (0.5, 0.5, 0.3))) for _ in range(n - 1)]
    return [caption(rng, scene, d) for d in (COMPLETE, *looser)]


def image_caption(rng: np.random.Generator, scene: Scene, synonyms: bool = True) -> str:
    """A static caption of a still scene (colour, shape, size, position, sometimes the background; no motion).
    Without `synonyms` it names every shape, size, position and background one way (the first of each list:
    circle, small, "in the centre", "on a gray background"), so the clip captions' other phrasings (ball, tiny,
    "in the middle", "against a grey backdrop", ...) are left for fine-tuning to learn."""
    detail = Detail(bool(rng.random() < 0.8), bool(rng.random() < 0.8), bool(rng.random() < 0.4))
    parts = []
    for i in range(len(scene.objects)):
        noun, lead = _subject(rng, scene, i, detail, synonyms)
        parts.append(f"{lead} {noun}" if lead else noun)
    body = str(_pick(rng, IMAGE_PREFIXES)) + " and ".join(parts)
    return f"{body} {_background(rng, scene, synonyms)}" if detail.background else body
