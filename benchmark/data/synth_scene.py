"""SynthVTT scenes: sample a clip's description from a numpy Generator and render it to frames (pure functions).

A scene is one or two coloured shapes on a neutral background, each with a motion made of one or two phases
(left, right, up, down, grow, shrink, clockwise, counterclockwise, still). Coordinates are fractions of the frame
(x to the right, y downwards), sizes are circumradii, so a scene renders at any resolution. Hard negatives are built
by construction: a *twin* of a scene differs only in attribute binding (colours swapped between the two objects),
in phase order, or is the same clip played backwards (identical frames as a set, so mean pooling cannot separate them).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

# Object colours (saturated, so they separate from the neutral backgrounds and distractors), in the order the
# `n_colours` option takes them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (40, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (140, 50, 190),
    "orange": (250, 130, 20),
    "cyan": (30, 200, 220),
    "pink": (245, 110, 180),
}
BACKGROUNDS: dict[str, int] = {"black": 20, "gray": 110, "white": 235}
# Neutral grey level of the distractor dots on each background.
DISTRACTOR_LEVEL: dict[str, int] = {"black": 150, "gray": 190, "white": 90}
# Shapes in the order the `n_shapes` option takes them; circle and ring look the same when rotated.
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
ROTATION_INVARIANT = frozenset({"circle", "ring"})

TRANSLATIONS: dict[str, tuple[float, float]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
MOTIONS = ("left", "right", "up", "down", "grow", "shrink", "clockwise", "counterclockwise", "still")
INVERSE = {
    "left": "right", "right": "left", "up": "down", "down": "up", "grow": "shrink", "shrink": "grow",
    "clockwise": "counterclockwise", "counterclockwise": "clockwise", "still": "still",
}  # fmt: skip

RADIUS = {"small": 0.1, "large": 0.16}  # circumradius as a fraction of the frame side
GROWTH = RADIUS["large"] / RADIUS["small"]  # grow takes small to exactly large, so a reversed grow is a shrink
ROTATION_DEG = 60.0  # not a symmetry angle of any shape
STEP = {"single": 0.3, "two-phase": 0.22, "two-object": 0.16}  # distance travelled per phase
DISTRACTOR_RADIUS = 0.03
DISTRACTOR_SPEED = 0.25  # at most this far over the clip


@dataclass(frozen=True)
class SceneOptions:
    """Difficulty knobs of the generator (documented defaults; see the README section "SynthVTT")."""

    frames: tuple[int, int] = (8, 16)  # clip length, inclusive range
    n_colours: int = 8  # colours in use, from COLOURS
    n_shapes: int = 5  # shapes in use, from SHAPES
    two_object: float = 0.35  # fraction of scenes with two objects (binding matters)
    two_phase: float = 0.4  # fraction of one-object scenes with a two-phase motion (order matters)
    twins: float = 0.5  # fraction of scenes followed by a hard-negative twin in the same split
    noise: float = 6.0  # std of the static luminance texture on the background (0 = flat)
    distractors: int = 2  # each clip has 0..distractors neutral dots drifting about (never captioned)

    def __post_init__(self) -> None:
        lo, hi = self.frames
        n_col, n_shp = len(COLOURS), len(SHAPES)
        checks = [
            (2 <= lo <= hi <= 256, f"frames (--frames) must be a range 2 <= min <= max <= 256, got {self.frames}"),
            (2 <= self.n_colours <= n_col, f"n_colours (--colours) must be in 2..{n_col}, got {self.n_colours}"),
            (1 <= self.n_shapes <= n_shp, f"n_shapes (--shapes) must be in 1..{n_shp}, got {self.n_shapes}"),
            (0 <= self.two_object <= 1, f"two_object (--two-object) must be in [0, 1], got {self.two_object}"),
            (0 <= self.two_phase <= 1, f"two_phase (--two-phase) must be in [0, 1], got {self.two_phase}"),
            (0 <= self.twins <= 1, f"twins (--twins) must be in [0, 1], got {self.twins}"),
            (0 <= self.noise <= 64, f"noise (--noise) must be in [0, 64] (grey levels), got {self.noise}"),
            (0 <= self.distractors <= 8, f"distractors (--distractors) must be in 0..8, got {self.distractors}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SynthVTT option error: {message}.")

    @property
    def colours(self) -> tuple[str, ...]:
        return tuple(COLOURS)[: self.n_colours]

    @property
    def shapes(self) -> tuple[str, ...]:
        return SHAPES[: self.n_shapes]


@dataclass(frozen=True)
class ObjectSpec:
    """One shape: its look, where it starts, its phases in time order and its starting angle (degrees)."""

    colour: str
    shape: str
    size: str  # "small" | "large": the size at the first frame
    start: tuple[float, float]
    phases: tuple[str, ...]
    step: float  # distance per translation phase
    angle: float = 0.0


@dataclass(frozen=True)
class Distractor:
    """A neutral dot moving in a straight line; never mentioned in captions."""

    start: tuple[float, float]
    shift: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """A clip description. `kind` is single | two-phase | two-object; `twin` says how this scene was derived from
    the scene just before it (binding | order | reverse) or is "" for an independently sampled scene."""

    kind: str
    background: str
    objects: tuple[ObjectSpec, ...]
    n_frames: int
    noise: float
    noise_seed: int
    distractors: tuple[Distractor, ...] = ()
    twin: str = ""
    layout: str = "single"  # single | horizontal (objects left/right) | vertical (objects top/bottom)

    def to_json(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Scene:
        """Inverse of `to_json` (e.g. to re-render a clip from `synthvtt_scenes.json`)."""
        objects = tuple(
            ObjectSpec(**{**o, "start": tuple(o["start"]), "phases": tuple(o["phases"])}) for o in data["objects"]
        )
        distractors = tuple(Distractor(tuple(d["start"]), tuple(d["shift"])) for d in data["distractors"])
        return cls(**{**data, "objects": objects, "distractors": distractors})


@dataclass(frozen=True)
class ObjectState:
    """Where an object is at one instant."""

    x: float
    y: float
    radius: float
    angle: float


def object_state(obj: ObjectSpec, u: float) -> ObjectState:
    """State of `obj` at clip time u in [0, 1]; phases share the clip equally and progress linearly."""
    x, y = obj.start
    radius, angle = RADIUS[obj.size], obj.angle
    n = len(obj.phases)
    for k, motion in enumerate(obj.phases):
        p = float(np.clip(u * n - k, 0.0, 1.0))
        if motion in TRANSLATIONS:
            dx, dy = TRANSLATIONS[motion]
            x, y = x + dx * obj.step * p, y + dy * obj.step * p
        elif motion == "grow":
            radius *= GROWTH**p
        elif motion == "shrink":
            radius /= GROWTH**p
        elif motion == "clockwise":  # y points down, so a positive angle turns clockwise on screen
            angle += ROTATION_DEG * p
        elif motion == "counterclockwise":
            angle -= ROTATION_DEG * p
    return ObjectState(x, y, radius, angle)


def clip_times(n_frames: int) -> np.ndarray:
    """Clip time of each frame: 0 at the first frame, 1 at the last."""
    return np.linspace(0.0, 1.0, n_frames)


def region(scene: Scene, index: int) -> str:
    """Where object `index` starts, as captions name it: the layout side for two objects, else a 3x3 grid cell
    such as "top left", "left", "centre"."""
    obj = scene.objects[index]
    if scene.layout == "horizontal":
        return "left" if obj.start[0] < 0.5 else "right"
    if scene.layout == "vertical":
        return "top" if obj.start[1] < 0.5 else "bottom"
    x, y = obj.start
    col = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    return " ".join(p for p in (row, col) if p) or "centre"


def description_key(scene: Scene) -> tuple:
    """Everything a complete caption states; no two clips of one dataset share it, so a full caption is unique."""
    objects = tuple((o.colour, o.shape, o.size, region(scene, i), o.phases) for i, o in enumerate(scene.objects))
    return (scene.background, objects)


# ---------------------------------------------------------------------------------------------------------------
# Sampling


def _extent(obj: ObjectSpec) -> tuple[float, float, float, float, float]:
    """Offsets (min dx, max dx, min dy, max dy) of the centre over the clip, and the largest radius."""
    states = [object_state(dataclasses.replace(obj, start=(0.0, 0.0)), u) for u in np.linspace(0, 1, 9)]
    xs, ys = [s.x for s in states], [s.y for s in states]
    return min(xs), max(xs), min(ys), max(ys), max(s.radius for s in states)


def _place(rng: np.random.Generator, obj: ObjectSpec, box: tuple[float, float, float, float]) -> ObjectSpec | None:
    """`obj` with a start drawn so its whole trajectory stays inside box (x0, x1, y0, y1); None when impossible."""
    dx0, dx1, dy0, dy1, r = _extent(obj)
    x_lo, x_hi = box[0] + r - dx0, box[1] - r - dx1
    y_lo, y_hi = box[2] + r - dy0, box[3] - r - dy1
    if x_lo > x_hi or y_lo > y_hi:
        return None
    start = (round(float(rng.uniform(x_lo, x_hi)), 4), round(float(rng.uniform(y_lo, y_hi)), 4))
    return dataclasses.replace(obj, start=start)


def _motion(rng: np.random.Generator, shape: str) -> str:
    allowed = [m for m in MOTIONS if not (shape in ROTATION_INVARIANT and m in ("clockwise", "counterclockwise"))]
    return str(rng.choice(allowed))


def _two_phases(rng: np.random.Generator) -> tuple[str, str]:
    """Two perpendicular translations, e.g. ("up", "left"): their order is visible only over time."""
    first = str(rng.choice(list(TRANSLATIONS)))
    second_choices = ["up", "down"] if first in ("left", "right") else ["left", "right"]
    return first, str(rng.choice(second_choices))


def _object(
    rng: np.random.Generator, opts: SceneOptions, phases: tuple[str, ...] | None, kind: str, colour: str | None = None
) -> ObjectSpec:
    shape = str(rng.choice(opts.shapes))
    colour = colour or str(rng.choice(opts.colours))
    phases = phases or (_motion(rng, shape),)
    size = "small" if phases[0] == "grow" else "large" if phases[0] == "shrink" else str(rng.choice(list(RADIUS)))
    return ObjectSpec(colour, shape, size, (0.5, 0.5), phases, STEP[kind])


def _distractors(rng: np.random.Generator, opts: SceneOptions) -> tuple[Distractor, ...]:
    out = []
    for _ in range(int(rng.integers(0, opts.distractors + 1))):
        start = tuple(round(float(v), 4) for v in rng.uniform(0.05, 0.95, 2))
        shift = tuple(round(float(v), 4) for v in rng.uniform(-DISTRACTOR_SPEED, DISTRACTOR_SPEED, 2))
        out.append(Distractor(start, shift))  # type: ignore[arg-type]
    return tuple(out)


def sample_scene(rng: np.random.Generator, opts: SceneOptions, *, static: bool = False) -> Scene:
    """Draw one independent scene; `static=True` gives still objects (for the single-frame image-caption set)."""
    background = str(rng.choice(list(BACKGROUNDS)))
    n_frames = 1 if static else int(rng.integers(opts.frames[0], opts.frames[1] + 1))
    still = ("still",) if static else None
    while True:
        if rng.random() < opts.two_object:
            kind, layout = "two-object", str(rng.choice(["horizontal", "vertical"]))
            colours = rng.choice(opts.colours, size=2, replace=False)
            objs = [_object(rng, opts, still, kind, str(c)) for c in colours]
            halves = [(0.0, 0.5, 0.0, 1.0), (0.5, 1.0, 0.0, 1.0)]
            if layout == "vertical":
                halves = [(0.0, 1.0, 0.0, 0.5), (0.0, 1.0, 0.5, 1.0)]
            placed = [_place(rng, o, box) for o, box in zip(objs, halves)]
        else:
            two = not static and rng.random() < opts.two_phase
            kind, layout = ("two-phase" if two else "single"), "single"
            placed = [_place(rng, _object(rng, opts, _two_phases(rng) if two else still, kind), (0, 1, 0, 1))]
        if all(p is not None for p in placed):
            break
    return Scene(
        kind=kind,
        background=background,
        objects=tuple(placed),  # type: ignore[arg-type]
        n_frames=n_frames,
        noise=opts.noise,
        noise_seed=int(rng.integers(0, 2**31)),
        distractors=() if static else _distractors(rng, opts),
        layout=layout,
    )


def binding_twin(scene: Scene) -> Scene:
    """The same clip with the two objects' colours swapped: same words, different binding."""
    a, b = scene.objects
    objects = (dataclasses.replace(a, colour=b.colour), dataclasses.replace(b, colour=a.colour))
    return dataclasses.replace(scene, objects=objects, twin="binding")


def order_twin(scene: Scene) -> Scene:
    """The same start with the phases in the opposite order ("up then left" vs "left then up")."""
    (obj,) = scene.objects
    return dataclasses.replace(scene, objects=(dataclasses.replace(obj, phases=obj.phases[::-1]),), twin="order")


def reverse_twin(scene: Scene) -> Scene:
    """The clip played backwards: same frames as a set, so only temporal order separates it from `scene`."""
    objects = []
    for obj in scene.objects:
        end = object_state(obj, 1.0)
        size = "large" if obj.phases[-1] == "grow" else "small" if obj.phases[-1] == "shrink" else obj.size
        phases = tuple(INVERSE[m] for m in reversed(obj.phases))
        start = (round(end.x, 4), round(end.y, 4))
        objects.append(dataclasses.replace(obj, start=start, size=size, phases=phases, angle=round(end.angle, 4)))
    distractors = tuple(
        Distractor((d.start[0] + d.shift[0], d.start[1] + d.shift[1]), (-d.shift[0], -d.shift[1]))
        for d in scene.distractors
    )
    return dataclasses.replace(scene, objects=tuple(objects), distractors=distractors, twin="reverse")


def twin_of(rng: np.random.Generator, scene: Scene) -> Scene | None:
    """A hard negative for `scene`, or None when none differs from it (a still clip backwards is the same clip)."""
    if scene.kind == "two-object":
        return binding_twin(scene)
    if scene.kind == "two-phase":
        return order_twin(scene) if rng.random() < 0.5 else reverse_twin(scene)
    return None if scene.objects[0].phases == ("still",) else reverse_twin(scene)


@dataclass
class SceneSampler:
    """Draws scenes for a whole dataset, pairing some with their twins and refusing repeated descriptions."""

    rng: np.random.Generator
    opts: SceneOptions
    used: set = field(default_factory=set)

    def sample(self, n: int) -> list[Scene]:
        """`n` scenes whose complete captions are unique across everything this sampler has drawn."""
        out: list[Scene] = []
        for _ in range(50 * n + 1000):
            if len(out) >= n:
                return out
            scene = sample_scene(self.rng, self.opts)
            group = [scene]
            if len(out) + 1 < n and self.rng.random() < self.opts.twins:
                twin = twin_of(self.rng, scene)
                group += [twin] if twin is not None else []
            keys = [description_key(s) for s in group]
            if len(set(keys)) < len(keys) or any(k in self.used for k in keys):
                continue
            self.used.update(keys)
            out.extend(group)
        if len(out) >= n:
            return out
        raise ValueError(
            f"SynthVTT cannot draw {n} clips with distinct descriptions from these options (got {len(out)}); "
            "allow more colours (--colours) or shapes (--shapes), or ask for fewer clips."
        )


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _polygon(shape: str) -> np.ndarray:
    """Vertices of `shape` with circumradius 1 at angle 0 (y down), shape [V, 2]."""
    if shape == "square":
        a = np.deg2rad(np.arange(45, 360, 90))
        return np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "triangle":  # pointing up
        a = np.deg2rad(np.arange(-90, 270, 120))
        return np.stack([np.cos(a), np.sin(a)], 1)
    if shape == "star":
        a = np.deg2rad(np.arange(-90, 270, 36))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if shape == "cross":
        w, arm = 0.32, 0.95
        pts = [(w, -arm), (w, -w), (arm, -w), (arm, w), (w, w), (w, arm), (-w, arm), (-w, w), (-arm, w), (-arm, -w),
               (-w, -w), (-w, -arm)]  # fmt: skip
        return np.asarray(pts, dtype=np.float64)
    raise ValueError(f"`{shape}` is not a polygon shape")


def shape_mask(shape: str, state: ObjectState, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Boolean mask of the pixels (centres px, py in frame fractions) covered by `shape` in `state`."""
    dx, dy = px - state.x, py - state.y
    if shape in ("circle", "ring"):
        d2 = dx * dx + dy * dy
        inside = d2 <= state.radius**2
        return inside & (d2 >= (0.55 * state.radius) ** 2) if shape == "ring" else inside
    theta = np.deg2rad(state.angle)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    verts = _polygon(shape) @ rot.T * state.radius + (state.x, state.y)
    inside = np.zeros(px.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(verts, np.roll(verts, -1, axis=0)):  # even-odd rule
        crosses = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (px < x_at)
    return inside


def render(scene: Scene, size: int) -> np.ndarray:
    """Frames of `scene` as uint8 [T, size, size, 3]: background + static noise, distractors, then the objects."""
    centres = (np.arange(size) + 0.5) / size
    px, py = np.meshgrid(centres, centres)
    base = np.full((size, size), float(BACKGROUNDS[scene.background]))
    if scene.noise > 0:
        base += np.random.default_rng(scene.noise_seed).normal(0.0, scene.noise, (size, size))
    base = np.repeat(np.clip(base, 0, 255)[:, :, None], 3, axis=2)
    grey = DISTRACTOR_LEVEL[scene.background]
    frames = np.empty((scene.n_frames, size, size, 3), dtype=np.uint8)
    for t, u in enumerate(clip_times(scene.n_frames)):
        canvas = base.copy()
        for d in scene.distractors:
            dot = ObjectState(d.start[0] + d.shift[0] * u, d.start[1] + d.shift[1] * u, DISTRACTOR_RADIUS, 0.0)
            canvas[shape_mask("circle", dot, px, py)] = grey
        for obj in scene.objects:
            canvas[shape_mask(obj.shape, object_state(obj, u), px, py)] = COLOURS[obj.colour]
        frames[t] = np.rint(canvas).astype(np.uint8)
    return frames
