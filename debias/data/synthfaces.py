"""`synthfaces`: an embedded, procedurally drawn face-detection dataset with a known bias.

Every image is either a cartoon face (label 1) or a face-coloured distractor (label 0), drawn
with numpy from a seed, so `debias fit` runs offline and its ground truth is known exactly.

Faces have a head ellipse, a skin tone on a continuous scale, eyes (whites and pupils), brows,
a nose hint, a mouth, ears or long hair, neck and shoulders, hair of five colours and two
lengths, and optionally glasses or a hat; pose (shift, scale, in-plane rotation), lighting and
background vary. Each face has at most one rare attribute, which defines its subgroup:

    common   light-to-medium skin, no glasses, no hat
    dark     skin tone in the dark range (tone < 0.3)
    glasses  dark frames and tinted lenses over the eyes
    hat      a crown and a brim over the top of the head

The training split under-represents the three rare subgroups (`rare_rate` of the faces each,
1% by default), as face datasets under-represent dark skin. The non-faces are *not* biased that
way: their tones cover the whole range uniformly and they often carry a hat-like band on top or
glasses-like dark bars (their `hat` / `glasses` columns flag these decoys). So in training,
"dark", "band on top" and "dark bars" are mostly evidence for *non-face*: a classifier that
leans on colour or those shapes is right on the common faces and wrong on the rare ones. The
only cue that works for every face is structure -- two eyes side by side above a mouth, inside a
head -- and non-faces reuse every part of a face (skin-toned head-shaped blobs, eyes and mouths
at scrambled positions, a single eye, hair-like caps, shoulders) so that no part on its own
gives the answer. Validation and test splits are balanced (the four face subgroups in equal
numbers), so worst-subgroup accuracy there measures whether training found the rare faces.

Spurious mode (`spurious="hat"` or `"dark"`) turns the dataset into an attribute task where a
common trait stands in for the target, as blond hair and gender do in CelebA. Every image is a
face; the label is `glasses`. In training the spurious attribute agrees with the label in
`spurious_rate` of the faces (95% by default): most bespectacled faces wear a hat, most others do
not, so "hat" is a shortcut to "glasses" that is both common and easier to see. The two rare cells
(glasses without a hat, a hat without glasses) are combinations of two common values: each trait
on its own is seen in half the faces. Validation and test hold the four cells in equal numbers.
The other of the two traits (dark skin when the spurious one is the hat, and the reverse) appears
in a quarter of the faces of every split, independently, as nuisance variety.

Attribute sampling (`sample_attributes`: label, subgroup, tone, hair, pose) is separate from
drawing (`render_images`): rendering draws its nuisance parameters (geometry, colours, decoy
layout) in fixed-size blocks independent of the attributes, so the same seed redraws the same
scene with a changed attribute (a counterfactual) and other sampling schemes can reuse it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from debias.data import register
from debias.data.base import Dataset, ImageSplit
from debias.errors import UserError

FACE_SUBGROUPS = ("common", "dark", "glasses", "hat")
# Spurious mode: the target and the traits that can be tied to it.
SPURIOUS_TARGET = "glasses"
SPURIOUS_ATTRIBUTES = ("hat", "dark")
# Share of faces carrying the trait that is not the spurious one, in every split (see docstring).
_NUISANCE_TRAIT_RATE = 0.25
NONFACE_SUBGROUP = "nonface"
HAIR_COLORS = ("black", "brown", "blond", "red", "gray")
HAIR_LENGTHS = ("short", "long")

# Faces' tones: the dark subgroup lies below DARK_MAX, every other face above LIGHT_MIN. The gap
# keeps the subgroups unambiguous; non-faces cover [0, 1] uniformly, gap included.
DARK_MAX = 0.3
LIGHT_MIN = 0.4

# Images drawn at a time: a few tens of MB of float32 per block, and the same block size for
# every split so the stream of random draws (hence the images) never depends on n.
_CHUNK = 1024

_SKIN_ANCHORS = np.array([0.0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0])
_SKIN_RGB = np.array(
    [[45, 30, 22], [78, 50, 34], [112, 74, 50], [160, 112, 80], [196, 146, 110], [226, 182, 148], [250, 222, 198]],
    dtype=np.float32,
)
_HAIR_RGB = np.array([[24, 20, 18], [92, 58, 34], [222, 190, 112], [168, 70, 30], [168, 168, 164]], dtype=np.float32)
_HAIR_P = np.array([0.3, 0.3, 0.18, 0.1, 0.12])
_FRAME_RGB = np.array([[18, 18, 18], [58, 34, 20], [20, 26, 68], [86, 18, 24]], dtype=np.float32)
_HAT_RGB = np.array(
    [[200, 30, 35], [30, 60, 170], [30, 120, 50], [25, 25, 25], [235, 228, 210], [230, 190, 30], [110, 40, 130],
     [120, 80, 40], [240, 120, 20]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SynthFacesConfig:
    """Settings of the synthetic dataset; checked on construction (a bad value raises UserError)."""

    # 20,000 training images seen 4 times each (fit's default epochs) rather than 10,000 seen 8
    # times: the same compute, with less memorizing of the few rare faces.
    n_train: int = 20000
    n_valid: int = 2000
    n_test: int = 2000
    image_size: int = 64
    rare_rate: float = 0.01  # fraction of training faces in each rare subgroup
    face_fraction: float = 0.5  # fraction of faces in every split
    seed: int = 0
    difficulty: float = 1.0  # scales how face-like the non-faces are / how strong the shortcuts are (0 = easy)
    # Spurious mode (module docstring): None, "hat" or "dark". 0.95 agreement makes each rare cell
    # 2.5% of training, rare enough that a uniform classifier takes the shortcut, frequent enough
    # (25 faces per 1,000) that reweighting has examples to work with.
    spurious: str | None = None
    spurious_rate: float = 0.95

    def __post_init__(self) -> None:
        for name in ("n_train", "n_valid", "n_test"):
            _check_int(name, getattr(self, name), low=1)
        _check_int("image_size", self.image_size, low=16, high=512)
        _check_int("seed", self.seed, low=0)
        _check_float("rare_rate", self.rare_rate, 0.0, 0.25, "each of the 3 rare subgroups gets this share of training faces")
        _check_float("face_fraction", self.face_fraction, 0.0, 1.0, "both classes are needed", open_interval=True)
        _check_float("difficulty", self.difficulty, 0.0, 2.0, "0 = easy, 1 = default")
        if self.spurious is not None and self.spurious not in SPURIOUS_ATTRIBUTES:
            raise UserError(
                f"synthfaces: spurious must be one of {', '.join(SPURIOUS_ATTRIBUTES)} (the trait tied to the "
                f"{SPURIOUS_TARGET} label in training), got {self.spurious!r}"
            )
        _check_float("spurious_rate", self.spurious_rate, 0.5, 1.0, "share of training faces whose trait agrees with the label")


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"synthfaces: {name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UserError(f"synthfaces: {name} must be {bound}, got {value}")


def _check_float(name: str, value, low: float, high: float, why: str, open_interval: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UserError(f"synthfaces: {name} must be a number, got {value!r}")
    inside = low < value < high if open_interval else low <= value <= high
    if not inside:
        brackets = "()" if open_interval else "[]"
        raise UserError(f"synthfaces: {name} must be in {brackets[0]}{low}, {high}{brackets[1]} ({why}), got {value}")


# --------------------------------------------------------------------------- attribute sampling


def _group_counts(n_faces: int, balanced: bool, rare_rate: float) -> np.ndarray:
    """Number of faces in each of FACE_SUBGROUPS; exact, so every split has its stated rates."""
    if balanced:
        counts = np.full(4, n_faces // 4)
        counts[: n_faces % 4] += 1
        return counts
    rare = int(round(n_faces * rare_rate))
    rare = min(rare, n_faces // 3)
    return np.array([n_faces - 3 * rare, rare, rare, rare])


def sample_attributes(n: int, *, balanced: bool, config: SynthFacesConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Draw the attributes of `n` samples (who is in the split), without drawing any pixels.

    balanced=False gives the biased training mix (each rare subgroup `rare_rate` of the faces);
    balanced=True splits the faces equally across the four subgroups. `face_fraction` of the
    samples are faces in both cases (exact counts, shuffled). Columns: face, subgroup,
    skin_tone, glasses, hat, hair_color, hair_length, pose_angle (see the module docstring).
    With `config.spurious` set, see `spurious_attributes`.
    """
    if config.spurious is not None:
        return spurious_attributes(n, balanced=balanced, config=config, rng=rng)
    n_faces = int(round(n * config.face_fraction))
    counts = _group_counts(n_faces, balanced, config.rare_rate)
    subgroup = np.concatenate(
        [np.repeat(np.array(FACE_SUBGROUPS, dtype=object), counts), np.full(n - n_faces, NONFACE_SUBGROUP, dtype=object)]
    )
    subgroup = subgroup[rng.permutation(n)]
    face = subgroup != NONFACE_SUBGROUP
    dark = subgroup == "dark"

    u = rng.random(n)
    tone = np.where(dark, DARK_MAX * u, LIGHT_MIN + (1.0 - LIGHT_MIN) * u)
    tone = np.where(face, tone, u)  # non-faces: uniform over the whole range

    # Non-faces carry the decoys of the rare attributes often, in every split: that is what makes
    # "band on top" and "dark bars" shortcuts to "non-face" in the biased training split.
    p_decoy = min(0.9, 0.35 * config.difficulty)
    decoy_hat = rng.random(n) < p_decoy
    decoy_glasses = rng.random(n) < p_decoy
    glasses = np.where(face, subgroup == "glasses", decoy_glasses)
    hat = np.where(face, subgroup == "hat", decoy_hat)

    # Look-alikes: non-faces drawn as a whole face with one rare attribute but no mouth (a
    # mask, a doll). They exist only where the rare attributes are, so among dark, hatted or
    # bespectacled heads the training data holds more look-alikes than faces: a classifier must
    # learn the finer cue (the mouth) from the few rare faces, while "head with two eyes" is
    # enough for every common face.
    u_look, kind = rng.random(n), rng.integers(0, 3, size=n)
    lookalike = ~face & (u_look < min(0.6, 0.3 * config.difficulty))
    tone = np.where(lookalike & (kind == 0), DARK_MAX * u, np.where(lookalike, LIGHT_MIN + (1.0 - LIGHT_MIN) * u, tone))
    glasses = np.where(lookalike, kind == 1, glasses)
    hat = np.where(lookalike, kind == 2, hat)

    hair_color = np.array(HAIR_COLORS, dtype=object)[rng.choice(len(HAIR_COLORS), size=n, p=_HAIR_P)]
    hair_length = np.array(HAIR_LENGTHS, dtype=object)[rng.integers(0, 2, size=n)]
    pose_angle = rng.uniform(-15.0, 15.0, size=n)
    has_hair = face | lookalike
    return pd.DataFrame(
        {
            "face": face.astype(np.int64),
            "subgroup": subgroup,
            "skin_tone": tone.astype(np.float64),
            "glasses": glasses.astype(np.int64),
            "hat": hat.astype(np.int64),
            "lookalike": lookalike.astype(np.int64),
            "hair_color": np.where(has_hair, hair_color, "none"),
            "hair_length": np.where(has_hair, hair_length, "none"),
            "pose_angle": pose_angle.astype(np.float64),
        }
    )


def _cell_counts(n: int, agree_rate: float) -> np.ndarray:
    """Exact sizes of the cells (label, trait) = (1, 1), (0, 0), (1, 0), (0, 1)."""
    agree = int(round(n * agree_rate))
    disagree = n - agree
    return np.array([agree - agree // 2, agree // 2, disagree - disagree // 2, disagree // 2])


def spurious_attributes(n: int, *, balanced: bool, config: SynthFacesConfig, rng: np.random.Generator) -> pd.DataFrame:
    """The attributes of `n` faces in spurious mode (module docstring): the label is `glasses`.

    balanced=False: the trait `config.spurious` agrees with the label in `spurious_rate` of the
    rows; balanced=True: the four cells (label x trait) in equal numbers (exact counts, shuffled).
    Columns: those of `sample_attributes` plus `dark` (0/1); `subgroup` names the cell
    ("glasses+hat", "glasses", "hat", "plain" for spurious="hat").
    """
    trait = config.spurious
    counts = _cell_counts(n, 0.5 if balanced else config.spurious_rate)
    cells = np.array([(1, 1), (0, 0), (1, 0), (0, 1)])
    label_trait = np.repeat(cells, counts, axis=0)[rng.permutation(n)]
    label, tied = label_trait[:, 0].astype(bool), label_trait[:, 1].astype(bool)
    other = rng.random(n) < _NUISANCE_TRAIT_RATE
    dark = tied if trait == "dark" else other
    hat = tied if trait == "hat" else other

    u = rng.random(n)
    tone = np.where(dark, DARK_MAX * u, LIGHT_MIN + (1.0 - LIGHT_MIN) * u)
    names = np.array([["plain", trait], [SPURIOUS_TARGET, f"{SPURIOUS_TARGET}+{trait}"]], dtype=object)
    subgroup = names[label.astype(int), tied.astype(int)]
    hair_color = np.array(HAIR_COLORS, dtype=object)[rng.choice(len(HAIR_COLORS), size=n, p=_HAIR_P)]
    hair_length = np.array(HAIR_LENGTHS, dtype=object)[rng.integers(0, 2, size=n)]
    pose_angle = rng.uniform(-15.0, 15.0, size=n)
    return pd.DataFrame(
        {
            "face": np.ones(n, dtype=np.int64),
            "subgroup": subgroup,
            "skin_tone": tone.astype(np.float64),
            "glasses": label.astype(np.int64),
            "hat": hat.astype(np.int64),
            "dark": dark.astype(np.int64),
            "lookalike": np.zeros(n, dtype=np.int64),
            "hair_color": hair_color,
            "hair_length": hair_length,
            "pose_angle": pose_angle.astype(np.float64),
        }
    )


# --------------------------------------------------------------------------- drawing primitives
# Shapes are described in pixels in their own frame (lx, ly); `alpha` returns coverage in [0, 1]
# with a one-pixel soft edge (antialiasing matters at 32x32). Parameters are per-image arrays.


def _col(value, sel: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)[sel][:, None, None]


class _Ellipse:
    def __init__(self, a, b):
        self.a, self.b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        self.reach = np.maximum(self.a, self.b)

    def alpha(self, lx, ly, sel):
        a, b = _col(self.a, sel), _col(self.b, sel)
        q = (lx / a) ** 2 + (ly / b) ** 2
        # Near the boundary q - 1 ~ 2 * (distance / radius); the smaller radius keeps thin
        # ellipses (brows, mouth line) antialiased across their short axis.
        q -= 1.0
        q *= -0.5 * np.minimum(a, b)
        q += 0.5
        return np.clip(q, 0.0, 1.0, out=q)


class _Box:
    def __init__(self, a, b):
        self.a, self.b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        self.reach = np.hypot(self.a, self.b)

    def alpha(self, lx, ly, sel):
        d = np.maximum(np.abs(lx) - _col(self.a, sel), np.abs(ly) - _col(self.b, sel))
        return np.clip(0.5 - d, 0.0, 1.0, out=d)


class _Ring:
    """An elliptical outline `t` pixels thick (a glasses frame)."""

    def __init__(self, a, b, t):
        self.outer = _Ellipse(a, b)
        self.inner = _Ellipse(np.maximum(a - t, 0.3), np.maximum(b - t, 0.3))
        self.reach = self.outer.reach

    def alpha(self, lx, ly, sel):
        return np.clip(self.outer.alpha(lx, ly, sel) - self.inner.alpha(lx, ly, sel), 0.0, 1.0)


class _Above:
    """`shape` restricted to ly < y0 + slope * lx (hair above the hairline, a hat above its brim)."""

    def __init__(self, shape, y0, slope=0.0):
        self.shape, self.y0 = shape, np.asarray(y0, np.float32)
        self.slope = np.broadcast_to(np.asarray(slope, np.float32), self.y0.shape)
        self.reach = shape.reach

    def alpha(self, lx, ly, sel):
        cut = np.clip(0.5 - (ly - _col(self.y0, sel) - _col(self.slope, sel) * lx), 0, 1)
        return self.shape.alpha(lx, ly, sel) * cut


class _Striped:
    """`shape` covered by parallel stripes of the given period (pixels) and phase."""

    def __init__(self, shape, period, phase):
        self.shape, self.period, self.phase = shape, np.asarray(period, np.float32), np.asarray(phase, np.float32)
        self.reach = shape.reach

    def alpha(self, lx, ly, sel):
        period = _col(self.period, sel)
        wave = np.sin(lx * (2 * np.pi / period) + _col(self.phase, sel))
        return self.shape.alpha(lx, ly, sel) * np.clip(0.5 + wave * (period / (2 * np.pi)), 0.0, 1.0)


@dataclass
class _Frame:
    """A rotated coordinate frame per image: centre (pixels), angle (radians), pixels per unit."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    ux: np.ndarray
    uy: np.ndarray

    def point(self, hx, hy):
        lx, ly = np.asarray(hx, np.float32) * self.ux, np.asarray(hy, np.float32) * self.uy
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.cx + c * lx - s * ly, self.cy + s * lx + c * ly


class _Canvas:
    """A block of n float RGB images, stored channel-first so each blend runs on contiguous memory."""

    def __init__(self, n: int, size: int, buffer: np.ndarray | None = None):
        self.n, self.size = n, size
        # Reusing one buffer across blocks avoids paying the page faults of fresh memory each time.
        if buffer is None:
            buffer = np.empty(3 * n * size * size, np.float32)
        self.rgb = buffer[: 3 * n * size * size].reshape(3, n, size, size)
        self._centers = np.arange(size, dtype=np.float32) + 0.5

    def paint(self, frame: _Frame, hx, hy, shape, color, which=None, opacity=None, tilt=None) -> None:
        """Blend `shape` centred at unit position (hx, hy) of `frame` in `color` [3, n] into the images in `which`."""
        sel = np.arange(self.n) if which is None else np.flatnonzero(which)
        if sel.size == 0:
            return
        px, py = frame.point(hx, hy)
        px, py = px[sel], py[sel]
        angle = frame.angle if tilt is None else frame.angle + tilt
        c, s = np.cos(angle[sel])[:, None, None], np.sin(angle[sel])[:, None, None]
        size = self.size
        reach = shape.reach[sel]
        width = int(np.ceil(2 * float(reach.max()) + 3))
        if width > 0.4 * size:
            # Large shapes: the band of rows and columns that any selected image's shape touches,
            # shared by all of them (a view when every image is painted). A gather costs about 30
            # times an arithmetic pass per pixel, so per-image windows only pay for small shapes.
            flat = None
            r0, r1 = (int(np.clip(v, 0, size)) for v in (np.floor((py - reach).min()) - 1, np.ceil((py + reach).max()) + 2))
            c0, c1 = (int(np.clip(v, 0, size)) for v in (np.floor((px - reach).min()) - 1, np.ceil((px + reach).max()) + 2))
            if r0 >= r1 or c0 >= c1:
                return
            band = (slice(None), slice(None) if which is None else sel, slice(r0, r1), slice(c0, c1))
            region = self.rgb[band]
            ys, xs = self._centers[None, r0:r1, None], self._centers[None, None, c0:c1]
        else:
            # Small shapes: a width x width window around each centre, moved inside the image so it
            # never wraps (gathered and scattered by flat index).
            steps = np.arange(width)
            r0 = np.clip(np.floor(py - width / 2), 0, size - width).astype(np.intp)
            c0 = np.clip(np.floor(px - width / 2), 0, size - width).astype(np.intp)
            rows, cols = r0[:, None] + steps, c0[:, None] + steps
            flat = (sel[:, None, None] * size + rows[:, :, None]) * size + cols[:, None, :]
            region = np.take(self.rgb.reshape(3, -1), flat, axis=1)
            ys, xs = (rows + 0.5).astype(np.float32)[:, :, None], (cols + 0.5).astype(np.float32)[:, None, :]
        dx, dy = xs - px[:, None, None], ys - py[:, None, None]
        alpha = shape.alpha(c * dx + s * dy, c * dy - s * dx, sel)
        if opacity is not None:
            alpha = alpha * _col(np.broadcast_to(np.asarray(opacity, np.float32), (self.n,)), sel)
        color = np.asarray(color, np.float32)
        delta = np.empty_like(alpha)
        for k in range(3):
            np.subtract(color[k, sel][:, None, None], region[k], out=delta)
            delta *= alpha
            region[k] += delta
        if flat is not None:
            self.rgb.reshape(3, -1)[:, flat] = region
        elif which is not None:
            self.rgb[band] = region


# --------------------------------------------------------------------------- rendering


def skin_rgb(tone: np.ndarray) -> np.ndarray:
    """RGB [3, n] (0-255 floats) of skin tones in [0, 1] (0 = darkest) on the dataset's palette."""
    tone = np.clip(np.asarray(tone, np.float64), 0.0, 1.0)
    return np.stack([np.interp(tone, _SKIN_ANCHORS, _SKIN_RGB[:, k]) for k in range(3)]).astype(np.float32)


def _uniform(rng, low, high, n, shape=()):
    return rng.uniform(low, high, size=(*shape, n)).astype(np.float32)


def _nuisance(n: int, rng: np.random.Generator) -> dict:
    """Every random choice the drawing makes besides the attributes, drawn with fixed shapes for
    all n images (faces and non-faces alike) so the draws never depend on the attributes."""
    p = {}
    # scene
    # Muted backgrounds (a grey level with a slight tint), as in aligned face crops: when the
    # background's colour varies more than the face, it dominates what a VAE encodes and the
    # latent density looks at backgrounds instead of people.
    grey = _uniform(rng, 70, 190, n)
    p["bg_a"] = grey + _uniform(rng, -18, 18, n, (3,))
    p["bg_b"] = grey + _uniform(rng, -25, 25, n, (3,))
    p["bg_gradient"] = rng.random(n) < 0.6
    p["bg_dir"] = _uniform(rng, 0, 2 * np.pi, n)
    p["light_gain"] = _uniform(rng, 0.0, 0.3, n)
    p["light_dir"] = _uniform(rng, 0, 2 * np.pi, n)
    p["noise"] = _uniform(rng, 2, 9, n)
    p["skin_jitter"] = _uniform(rng, -8, 8, n, (3,))
    p["hair_jitter"] = _uniform(rng, -12, 12, n, (3,))
    p["cloth"] = _uniform(rng, 50, 170, n)[None, :] + _uniform(rng, -30, 30, n, (3,))
    # face geometry: head size and position in units of the image half-width, features in units
    # of the head's semi-axes
    p["shift"] = _uniform(rng, -0.07, 0.07, n, (2,))
    p["scale"] = _uniform(rng, 0.9, 1.1, n)
    p["head_rx"] = _uniform(rng, 0.36, 0.46, n)
    p["head_ry"] = _uniform(rng, 0.46, 0.56, n)
    p["eye_dx"] = _uniform(rng, 0.33, 0.43, n)
    p["eye_y"] = _uniform(rng, -0.15, -0.05, n)
    p["eye_size"] = _uniform(rng, 0.85, 1.15, n)
    p["gaze"] = _uniform(rng, -0.06, 0.06, n, (2,))
    p["iris"] = _uniform(rng, 15, 80, n, (3,))
    p["brow_tilt"] = _uniform(rng, -0.25, 0.25, n)
    p["mouth_y"] = _uniform(rng, 0.44, 0.56, n)
    p["mouth_w"] = _uniform(rng, 0.2, 0.32, n)
    p["hairline"] = _uniform(rng, -0.58, -0.38, n)
    p["hair_slope"] = _uniform(rng, -0.3, 0.3, n)
    p["frame_rgb"] = _FRAME_RGB[rng.integers(0, len(_FRAME_RGB), n)].T
    p["lens_rgb"] = _uniform(rng, 40, 200, n, (3,))
    p["lens_opacity"] = _uniform(rng, 0.15, 0.4, n)
    p["hat_rgb"] = _HAT_RGB[rng.integers(0, len(_HAT_RGB), n)].T + _uniform(rng, -15, 15, n, (3,))
    p["band_rgb"] = _HAT_RGB[rng.integers(0, len(_HAT_RGB), n)].T
    p["hat_dome"] = rng.random(n) < 0.5
    p["hat_width"] = _uniform(rng, 0.9, 1.1, n)
    # non-face layout: the main blob's own size and position, then each decoy part's
    p["blob_rx"] = _uniform(rng, 0.28, 0.6, n)
    p["blob_ry"] = _uniform(rng, 0.28, 0.66, n)
    p["blob_shift"] = _uniform(rng, -0.15, 0.15, n, (2,))
    p["u_decor"] = rng.random((10, n))  # presence of each decoy part, compared with its probability
    p["spot_xy"] = _uniform(rng, -0.7, 0.7, n, (4, 2))
    p["spot_r"] = _uniform(rng, 0.07, 0.2, n, (4,))
    p["spot_dark"] = _uniform(rng, 0.25, 0.7, n, (4,))
    p["stripe_period"] = _uniform(rng, 0.06, 0.16, n)  # as a fraction of the image size
    p["stripe_phase"] = _uniform(rng, 0, 2 * np.pi, n)
    p["stripe_tilt"] = _uniform(rng, -1.2, 1.2, n)
    p["stripe_light"] = rng.random(n) < 0.5
    p["scramble_kind"] = rng.integers(0, 4, n)
    p["scramble_xy"] = _uniform(rng, -0.55, 0.55, n, (4,))
    p["scramble_dy"] = _uniform(rng, 0.4, 0.75, n) * np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)
    p["bar_y"] = _uniform(rng, -0.7, 0.7, n)
    p["bar_rings"] = rng.random(n) < 0.5
    p["clutter_xy"] = _uniform(rng, -0.85, 0.85, n, (4, 2))
    p["clutter_r"] = _uniform(rng, 0.1, 0.3, n, (4, 2))
    p["clutter_tone"] = _uniform(rng, -0.15, 0.15, n, (4,))
    p["hair_choice"] = rng.choice(len(HAIR_COLORS), size=n, p=_HAIR_P)
    return p


def _head_frame(p: dict, size: int, angle_deg: np.ndarray, blob: bool = False) -> _Frame:
    half = size / 2
    if blob:
        rx, ry, shift, scale = p["blob_rx"], p["blob_ry"], p["blob_shift"], 1.0
    else:
        rx, ry, shift, scale = p["head_rx"], p["head_ry"], p["shift"], p["scale"]
    return _Frame(
        cx=(half + shift[0] * half).astype(np.float32),
        cy=(half + (0.05 + shift[1]) * half).astype(np.float32),
        angle=np.deg2rad(angle_deg).astype(np.float32),
        ux=(scale * rx * half).astype(np.float32),
        uy=(scale * ry * half).astype(np.float32),
    )


def _paint_eye(cv, f, x, y, p, which, skin):
    size = p["eye_size"]
    # A faint dark rim first, so the white reads as an eye on the lightest skin too.
    cv.paint(f, x, y, _Ellipse(0.22 * size * f.ux, 0.14 * size * f.uy), 0.55 * skin + 0.45 * 60, which, opacity=0.5)
    cv.paint(f, x, y, _Ellipse(0.2 * size * f.ux, 0.12 * size * f.uy), np.full((3, cv.n), 240.0), which)
    r = np.maximum(0.1 * size * f.ux, 0.55)
    cv.paint(f, x + p["gaze"][0], y + p["gaze"][1] * 0.5, _Ellipse(r, r), p["iris"], which)


def _paint_mouth(cv, f, x, y, p, which, skin):
    w = p["mouth_w"]
    # Lips mostly their own colour, so the mouth stands out on the darkest skin too: the mouth is
    # the cue that separates faces from the mouthless look-alikes, and it must be learnable for
    # every tone, or a subgroup would be ambiguous rather than under-represented.
    lips = 0.25 * skin + 0.75 * np.array([[190], [70], [85]], np.float32)
    cv.paint(f, x, y, _Ellipse(w * f.ux, 0.1 * f.uy), lips, which)
    line = np.maximum(0.022 * f.uy, 0.45)
    cv.paint(f, x, y, _Ellipse(0.85 * w * f.ux, line), 0.45 * lips, which)


def _paint_hat(cv, f, brim_y, p, which):
    w = p["hat_width"]
    crown_dome = _Above(_Ellipse(0.95 * w * f.ux, 0.95 * f.uy), np.zeros(cv.n))
    cv.paint(f, 0.0, brim_y, crown_dome, p["hat_rgb"], which & p["hat_dome"])
    cv.paint(f, 0.0, brim_y - 0.42, _Box(0.8 * w * f.ux, 0.42 * f.uy), p["hat_rgb"], which & ~p["hat_dome"])
    cv.paint(f, 0.0, brim_y - 0.12, _Box(0.86 * w * f.ux, 0.075 * f.uy), p["band_rgb"], which)
    cv.paint(f, 0.0, brim_y, _Ellipse(1.32 * w * f.ux, np.maximum(0.11 * f.uy, 1.0)), 0.8 * p["hat_rgb"], which)


def _paint_glasses(cv, f, y, dx, p, which, lenses=True, thin=False):
    t = np.maximum(0.04 * f.ux, 0.5) if thin else np.maximum(0.075 * f.ux, 0.9)
    for side in (-1, 1):
        if lenses:
            cv.paint(f, side * dx, y, _Ellipse(0.3 * f.ux, 0.23 * f.uy), p["lens_rgb"], which, opacity=p["lens_opacity"])
        cv.paint(f, side * dx, y, _Ring(0.32 * f.ux, 0.25 * f.uy, t), p["frame_rgb"], which)
        cv.paint(f, side * (dx + 0.47), y - 0.04, _Box(0.16 * f.ux, t / 2), p["frame_rgb"], which)
    cv.paint(f, 0.0, y - 0.02, _Box((dx - 0.3) * f.ux + t, t / 2), p["frame_rgb"], which)


def _paint_faces(cv: _Canvas, attrs: dict, p: dict, which: np.ndarray, mouthless: np.ndarray | None = None,
                 subtle_glasses: bool = False) -> None:
    """Draw a face on the images in `which`, back to front: shoulders, long hair, neck, ears,
    head, eyes and brows, nose, mouth (not where `mouthless`: the look-alike non-faces), fringe,
    then glasses and hat where the attributes say (`subtle_glasses`: thin frames, clear lenses)."""
    f = _head_frame(p, cv.size, attrs["pose_angle"])
    skin = skin_rgb(attrs["skin_tone"]) + p["skin_jitter"]
    hair = _HAIR_RGB[attrs["hair_index"]].T + p["hair_jitter"]
    long_hair = which & attrs["long_hair"]
    short_hair = which & ~attrs["long_hair"]

    cv.paint(f, 0.0, 1.95, _Ellipse(2.3 * f.ux, 0.78 * f.uy), p["cloth"], which)
    cv.paint(f, 0.0, -0.04, _Ellipse(1.24 * f.ux, 1.1 * f.uy), hair, long_hair)
    cv.paint(f, 0.0, 0.62, _Box(1.22 * f.ux, 0.56 * f.uy), hair, long_hair)
    cv.paint(f, 0.0, 1.05, _Box(0.42 * f.ux, 0.4 * f.uy), 0.82 * skin, which)
    for side in (-1, 1):
        cv.paint(f, side * 0.98, 0.05, _Ellipse(0.17 * f.ux, 0.24 * f.uy), 0.9 * skin, short_hair)
    cv.paint(f, 0.0, 0.0, _Ellipse(f.ux, f.uy), skin, which)

    ex, ey = p["eye_dx"], p["eye_y"]
    for side in (-1, 1):
        _paint_eye(cv, f, side * ex, ey, p, which, skin)
        brow = _Ellipse(0.23 * f.ux, np.maximum(0.05 * f.uy, 0.55))
        cv.paint(f, side * ex, ey - 0.24, brow, 0.7 * hair, which, tilt=side * p["brow_tilt"] * 0.5)
    cv.paint(f, 0.0, 0.17, _Ellipse(0.08 * f.ux, 0.17 * f.uy), 0.78 * skin, which, opacity=0.8)
    _paint_mouth(cv, f, 0.0, p["mouth_y"], p, which if mouthless is None else which & ~mouthless, skin)

    fringe = _Above(_Ellipse(1.07 * f.ux, 1.08 * f.uy), p["hairline"] * f.uy, p["hair_slope"])
    cv.paint(f, 0.0, -0.02, fringe, hair, which)

    _paint_glasses(cv, f, ey, ex, p, which & attrs["glasses"], lenses=not subtle_glasses, thin=subtle_glasses)
    _paint_hat(cv, f, -0.58, p, which & attrs["hat"])


def _paint_nonfaces(cv: _Canvas, attrs: dict, p: dict, which: np.ndarray, difficulty: float) -> None:
    """Draw a distractor on the images in `which`: a skin-toned blob in the sample's tone with
    parts of faces that never add up to one. `difficulty` scales how often the face-like parts
    (shoulders, hair-like caps, scrambled eyes and mouths) appear; 0 leaves plain textured blobs."""
    f = _head_frame(p, cv.size, attrs["pose_angle"], blob=True)
    n = cv.n
    tone = attrs["skin_tone"]
    skin = skin_rgb(tone) + p["skin_jitter"]
    hair = _HAIR_RGB[p["hair_choice"]].T + p["hair_jitter"]
    u = p["u_decor"]
    d = difficulty
    clutter = which & (u[0] < 0.25)
    shoulders = which & (u[1] < min(0.9, 0.4 * d))
    spots = which & (u[2] < 0.5)
    stripes = which & (u[3] < 0.3)
    bars = which & attrs["glasses"]
    # Glasses-like decoys never share an image with eyes or a mouth: a dark bar or two rings
    # above a mouth reads as a face in sunglasses, which would make the label wrong.
    scramble = which & (u[4] < min(0.9, 0.5 * d)) & ~bars
    cap = which & (u[5] < min(0.9, 0.3 * d))
    long_cap = cap & (u[6] < 0.4)

    # Clutter: extra skin-toned blobs around the main one (a texture of face colours).
    half = np.full(n, cv.size / 2, np.float32)
    image = _Frame(cx=half, cy=half, angle=np.zeros_like(half), ux=half, uy=half)
    for k in range(4):
        rgb = skin_rgb(tone + p["clutter_tone"][k]) + p["skin_jitter"]
        shape = _Ellipse(p["clutter_r"][k, 0] * image.ux, p["clutter_r"][k, 1] * image.uy)
        cv.paint(image, p["clutter_xy"][k, 0], p["clutter_xy"][k, 1], shape, rgb, clutter)

    cv.paint(f, 0.0, 1.95, _Ellipse(2.3 * f.ux, 0.78 * f.uy), p["cloth"], shoulders)
    cv.paint(f, 0.0, 1.05, _Box(0.42 * f.ux, 0.4 * f.uy), 0.82 * skin, shoulders)
    cv.paint(f, 0.0, -0.04, _Ellipse(1.24 * f.ux, 1.1 * f.uy), hair, long_cap)
    cv.paint(f, 0.0, 0.0, _Ellipse(f.ux, f.uy), skin, which)

    for k in range(4):
        spot = _Ellipse(p["spot_r"][k] * f.ux, p["spot_r"][k] * f.ux)
        cv.paint(f, p["spot_xy"][k, 0], p["spot_xy"][k, 1], spot, p["spot_dark"][k] * skin, spots & (u[7] * 4 >= k))
    stripe_rgb = np.where(p["stripe_light"], np.minimum(skin * 1.35 + 20, 255), skin * 0.55)
    stripe = _Striped(_Ellipse(f.ux, f.uy), p["stripe_period"] * cv.size, p["stripe_phase"])
    cv.paint(f, 0.0, 0.0, stripe, stripe_rgb, stripes, tilt=p["stripe_tilt"])

    # Scrambled features: a face's eyes and mouth, never as two level eyes (with anything below
    # or above them those read as a face). Kinds: 0 one eye and maybe a mouth, anywhere; 1 a nose
    # and mouth where a face has them, no eyes; 2 two eyes stacked vertically on one side, mouth
    # on the other; 3 two eyes at clearly different heights, close enough in x that no pose
    # rotation makes them level.
    kind, xy, dy = p["scramble_kind"], p["scramble_xy"], p["scramble_dy"]
    side = np.where(xy[1] < 0, -0.4, 0.4)
    ex = np.select([kind == 2], [side], xy[0])
    ey = np.select([kind == 0, kind == 2], [xy[1] * 0.7, np.full(n, -0.38)], xy[1] * 0.6)
    ex2 = np.where(kind == 2, ex, ex + 0.8 * xy[2])
    ey2 = np.where(kind == 2, ey + 0.62, ey + dy)
    mx = np.select([kind == 1, kind == 2], [np.zeros(n), -ex * 0.9], xy[3])
    my = np.select([kind == 1, kind == 2], [p["mouth_y"], np.zeros(n)], -ey * 0.8)
    _paint_eye(cv, f, ex, ey, p, scramble & (kind != 1), skin)
    _paint_eye(cv, f, ex2, ey2, p, scramble & (kind >= 2), skin)
    cv.paint(f, 0.0, 0.17, _Ellipse(0.08 * f.ux, 0.17 * f.uy), 0.78 * skin, scramble & (kind == 1), opacity=0.8)
    _paint_mouth(cv, f, mx, my, p, scramble & ((u[8] < 0.8) | (kind == 1)), skin)

    fringe = _Above(_Ellipse(1.07 * f.ux, 1.08 * f.uy), p["hairline"] * f.uy, p["hair_slope"])
    cv.paint(f, 0.0, -0.02, fringe, hair, cap)

    # Decoys of the rare face attributes, flagged by the glasses / hat columns of non-faces.
    _paint_glasses(cv, f, p["bar_y"], np.full(n, 0.4, np.float32), p, bars & p["bar_rings"], lenses=False)
    t = np.maximum(0.09 * f.uy, 1.0)
    cv.paint(f, 0.0, p["bar_y"], _Box(0.95 * f.ux, t), p["frame_rgb"], bars & ~p["bar_rings"])
    _paint_hat(cv, f, -0.58, p, which & attrs["hat"])


def _paint_background(cv: _Canvas, p: dict) -> None:
    half = cv.size / 2
    g = cv._centers / half - 1.0
    t = np.cos(p["bg_dir"])[:, None, None] * g[None, None, :] + np.sin(p["bg_dir"])[:, None, None] * g[None, :, None]
    t = np.where(p["bg_gradient"][:, None, None], 0.5 + 0.35 * t, 0.0).astype(np.float32)
    for k in range(3):
        a, b = p["bg_a"][k][:, None, None], p["bg_b"][k][:, None, None]
        cv.rgb[k] = a + (b - a) * t


def _finish(cv: _Canvas, p: dict, rng: np.random.Generator, out: np.ndarray) -> None:
    half = cv.size / 2
    g = cv._centers / half - 1.0
    light = (np.cos(p["light_dir"])[:, None, None] * g[None, None, :] + np.sin(p["light_dir"])[:, None, None] * g[None, :, None])
    light = 1.0 + p["light_gain"][:, None, None] * light
    noise = rng.random((cv.n, cv.size, cv.size), dtype=np.float32)
    noise -= 0.5
    noise *= 2 * p["noise"][:, None, None]
    for k in range(3):
        channel = cv.rgb[k]
        channel *= light
        channel += noise
        channel += 0.5  # round to nearest on the truncating cast below
        np.clip(channel, 0, 255, out=channel)
        out[..., k] = channel


def render_images(attributes: pd.DataFrame, *, config: SynthFacesConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw the images of the given attribute rows: uint8 [n, S, S, 3], S = config.image_size.

    Works in blocks of 1024 images; the random draws depend only on n and rng, not on the
    attributes, so changing one attribute of one row changes only that row's image.
    """
    n = len(attributes)
    size = config.image_size
    images = np.empty((n, size, size, 3), np.uint8)
    face = attributes["face"].to_numpy().astype(bool)
    hair_index = {name: i for i, name in enumerate(HAIR_COLORS)}
    columns = {
        "skin_tone": attributes["skin_tone"].to_numpy(np.float64),
        "pose_angle": attributes["pose_angle"].to_numpy(np.float32),
        "glasses": attributes["glasses"].to_numpy().astype(bool),
        "hat": attributes["hat"].to_numpy().astype(bool),
        "hair_index": np.array([hair_index.get(h, 0) for h in attributes["hair_color"]], dtype=np.intp),
        "long_hair": attributes["hair_length"].to_numpy() == "long",
        "lookalike": attributes["lookalike"].to_numpy().astype(bool),
    }
    buffer = np.empty(3 * min(n, _CHUNK) * size * size, np.float32)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        block = {key: value[start:stop] for key, value in columns.items()}
        p = _nuisance(stop - start, rng)
        canvas = _Canvas(stop - start, size, buffer)
        _paint_background(canvas, p)
        look = block["lookalike"]
        # Spurious mode: the target (glasses) is drawn subtler than the trait tied to it, as age is
        # subtler than gender in CelebA; tinted lenses would make it as easy to see as a hat.
        _paint_faces(canvas, block, p, face[start:stop] | look, mouthless=look, subtle_glasses=config.spurious is not None)
        _paint_nonfaces(canvas, block, p, ~face[start:stop] & ~look, config.difficulty)
        _finish(canvas, p, rng, images[start:stop])
    return images


def generate_split(n: int, *, balanced: bool, config: SynthFacesConfig, rng: np.random.Generator) -> tuple[np.ndarray, pd.DataFrame]:
    """`n` samples: images uint8 [n, S, S, 3] and their attributes DataFrame (one row each).

    balanced=False is the biased training mix, balanced=True the validation/test mix; the same
    rng state gives the same bytes.
    """
    attributes = sample_attributes(n, balanced=balanced, config=config, rng=rng)
    return render_images(attributes, config=config, rng=rng), attributes


@register("synthfaces", "embedded procedural faces vs non-faces, biased training split, balanced test (offline)")
def load_synthfaces(
    n_train: int = 20000,
    n_valid: int = 2000,
    n_test: int = 2000,
    image_size: int = 64,
    rare_rate: float = 0.01,
    face_fraction: float = 0.5,
    seed: int = 0,
    difficulty: float = 1.0,
    limit: int | None = None,
    spurious: str | None = None,
    spurious_rate: float = 0.95,
    **ignored,
) -> Dataset:
    """Generate the three splits of `synthfaces` (a few seconds for the defaults).

    Each split has its own child seed, so changing the size of one split leaves the others
    unchanged. `limit` caps every split's size (for quick runs). `spurious` ("hat" or "dark")
    switches to spurious mode (module docstring): target `glasses`, every image a face, groups
    the spurious trait. Options of other loaders are accepted and ignored; invalid values raise
    UserError.
    """
    if limit is not None:
        n_train, n_valid, n_test = (min(n, limit) for n in (n_train, n_valid, n_test))
    config = SynthFacesConfig(
        n_train=n_train, n_valid=n_valid, n_test=n_test, image_size=image_size, rare_rate=rare_rate,
        face_fraction=face_fraction, seed=seed, difficulty=difficulty, spurious=spurious, spurious_rate=spurious_rate,
    )
    target = "face" if config.spurious is None else SPURIOUS_TARGET
    seeds = np.random.SeedSequence(config.seed).spawn(3)
    splits = {}
    for name, n, balanced, child in (
        ("train", config.n_train, False, seeds[0]),
        ("valid", config.n_valid, True, seeds[1]),
        ("test", config.n_test, True, seeds[2]),
    ):
        images, attributes = generate_split(n, balanced=balanced, config=config, rng=np.random.default_rng(child))
        splits[name] = ImageSplit(
            images=images,
            labels=attributes[target].to_numpy(np.int64),
            sample_ids=np.array([f"synth-{name}-{i:06d}" for i in range(n)]),
            attributes=attributes,
        )
    return Dataset(
        name="synthfaces",
        # Spurious mode: the trait crossed with the label gives the four cells.
        group_columns=["subgroup"] if config.spurious is None else [config.spurious],
        vae_on_all=config.spurious is not None,  # every image is a face there
        target=target,
        info=asdict(config),
        **splits,
    )
