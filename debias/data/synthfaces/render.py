"""Drawing the images of `synthfaces` from their attributes: the palette, the nuisance draws
(geometry, colours, decoy layout), faces, non-faces, background, lighting and noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from debias.data.synthfaces.attributes import HAIR_COLORS, HAIR_P
from debias.data.synthfaces.canvas import Above, Box, Canvas, Ellipse, Frame, Ring, Striped
from debias.data.synthfaces.config import SynthFacesConfig

# Images drawn at a time: a few tens of MB of float32 per block, and the same block size for
# every split so the stream of random draws (hence the images) never depends on n.
_CHUNK = 1024

_SKIN_ANCHORS = np.array([0.0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0])
_SKIN_RGB = np.array(
    [[45, 30, 22], [78, 50, 34], [112, 74, 50], [160, 112, 80], [196, 146, 110], [226, 182, 148], [250, 222, 198]],
    dtype=np.float32,
)
_HAIR_RGB = np.array([[24, 20, 18], [92, 58, 34], [222, 190, 112], [168, 70, 30], [168, 168, 164]], dtype=np.float32)
_FRAME_RGB = np.array([[18, 18, 18], [58, 34, 20], [20, 26, 68], [86, 18, 24]], dtype=np.float32)
_HAT_RGB = np.array(
    [
        [200, 30, 35],
        [30, 60, 170],
        [30, 120, 50],
        [25, 25, 25],
        [235, 228, 210],
        [230, 190, 30],
        [110, 40, 130],
        [120, 80, 40],
        [240, 120, 20],
    ],
    dtype=np.float32,
)


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
    p["hair_choice"] = rng.choice(len(HAIR_COLORS), size=n, p=HAIR_P)
    return p


def _head_frame(p: dict, size: int, angle_deg: np.ndarray, blob: bool = False) -> Frame:
    half = size / 2
    if blob:
        rx, ry, shift, scale = p["blob_rx"], p["blob_ry"], p["blob_shift"], 1.0
    else:
        rx, ry, shift, scale = p["head_rx"], p["head_ry"], p["shift"], p["scale"]
    return Frame(
        cx=(half + shift[0] * half).astype(np.float32),
        cy=(half + (0.05 + shift[1]) * half).astype(np.float32),
        angle=np.deg2rad(angle_deg).astype(np.float32),
        ux=(scale * rx * half).astype(np.float32),
        uy=(scale * ry * half).astype(np.float32),
    )


def _paint_eye(cv, f, x, y, p, which, skin):
    size = p["eye_size"]
    # A faint dark rim first, so the white reads as an eye on the lightest skin too.
    cv.paint(f, x, y, Ellipse(0.22 * size * f.ux, 0.14 * size * f.uy), 0.55 * skin + 0.45 * 60, which, opacity=0.5)
    cv.paint(f, x, y, Ellipse(0.2 * size * f.ux, 0.12 * size * f.uy), np.full((3, cv.n), 240.0), which)
    r = np.maximum(0.1 * size * f.ux, 0.55)
    cv.paint(f, x + p["gaze"][0], y + p["gaze"][1] * 0.5, Ellipse(r, r), p["iris"], which)


def _paint_mouth(cv, f, x, y, p, which, skin):
    w = p["mouth_w"]
    # Lips mostly their own colour, so the mouth stands out on the darkest skin too: the mouth is
    # the cue that separates faces from the mouthless look-alikes, and it must be learnable for
    # every tone, or a subgroup would be ambiguous rather than under-represented.
    lips = 0.25 * skin + 0.75 * np.array([[190], [70], [85]], np.float32)
    cv.paint(f, x, y, Ellipse(w * f.ux, 0.1 * f.uy), lips, which)
    line = np.maximum(0.022 * f.uy, 0.45)
    cv.paint(f, x, y, Ellipse(0.85 * w * f.ux, line), 0.45 * lips, which)


def _paint_hat(cv, f, brim_y, p, which):
    w = p["hat_width"]
    crown_dome = Above(Ellipse(0.95 * w * f.ux, 0.95 * f.uy), np.zeros(cv.n))
    cv.paint(f, 0.0, brim_y, crown_dome, p["hat_rgb"], which & p["hat_dome"])
    cv.paint(f, 0.0, brim_y - 0.42, Box(0.8 * w * f.ux, 0.42 * f.uy), p["hat_rgb"], which & ~p["hat_dome"])
    cv.paint(f, 0.0, brim_y - 0.12, Box(0.86 * w * f.ux, 0.075 * f.uy), p["band_rgb"], which)
    cv.paint(f, 0.0, brim_y, Ellipse(1.32 * w * f.ux, np.maximum(0.11 * f.uy, 1.0)), 0.8 * p["hat_rgb"], which)


def _paint_glasses(cv, f, y, dx, p, which, lenses=True, thin=False):
    t = np.maximum(0.04 * f.ux, 0.5) if thin else np.maximum(0.075 * f.ux, 0.9)
    for side in (-1, 1):
        if lenses:
            cv.paint(f, side * dx, y, Ellipse(0.3 * f.ux, 0.23 * f.uy), p["lens_rgb"], which, opacity=p["lens_opacity"])
        cv.paint(f, side * dx, y, Ring(0.32 * f.ux, 0.25 * f.uy, t), p["frame_rgb"], which)
        cv.paint(f, side * (dx + 0.47), y - 0.04, Box(0.16 * f.ux, t / 2), p["frame_rgb"], which)
    cv.paint(f, 0.0, y - 0.02, Box((dx - 0.3) * f.ux + t, t / 2), p["frame_rgb"], which)


def _paint_faces(
    cv: Canvas,
    attrs: dict,
    p: dict,
    which: np.ndarray,
    mouthless: np.ndarray | None = None,
    subtle_glasses: bool = False,
) -> None:
    """Draw a face on the images in `which`, back to front: shoulders, long hair, neck, ears,
    head, eyes and brows, nose, mouth (not where `mouthless`: the look-alike non-faces), fringe,
    then glasses and hat where the attributes say (`subtle_glasses`: thin frames, clear lenses)."""
    f = _head_frame(p, cv.size, attrs["pose_angle"])
    skin = skin_rgb(attrs["skin_tone"]) + p["skin_jitter"]
    hair = _HAIR_RGB[attrs["hair_index"]].T + p["hair_jitter"]
    long_hair = which & attrs["long_hair"]
    short_hair = which & ~attrs["long_hair"]

    cv.paint(f, 0.0, 1.95, Ellipse(2.3 * f.ux, 0.78 * f.uy), p["cloth"], which)
    cv.paint(f, 0.0, -0.04, Ellipse(1.24 * f.ux, 1.1 * f.uy), hair, long_hair)
    cv.paint(f, 0.0, 0.62, Box(1.22 * f.ux, 0.56 * f.uy), hair, long_hair)
    cv.paint(f, 0.0, 1.05, Box(0.42 * f.ux, 0.4 * f.uy), 0.82 * skin, which)
    for side in (-1, 1):
        cv.paint(f, side * 0.98, 0.05, Ellipse(0.17 * f.ux, 0.24 * f.uy), 0.9 * skin, short_hair)
    cv.paint(f, 0.0, 0.0, Ellipse(f.ux, f.uy), skin, which)

    ex, ey = p["eye_dx"], p["eye_y"]
    for side in (-1, 1):
        _paint_eye(cv, f, side * ex, ey, p, which, skin)
        brow = Ellipse(0.23 * f.ux, np.maximum(0.05 * f.uy, 0.55))
        cv.paint(f, side * ex, ey - 0.24, brow, 0.7 * hair, which, tilt=side * p["brow_tilt"] * 0.5)
    cv.paint(f, 0.0, 0.17, Ellipse(0.08 * f.ux, 0.17 * f.uy), 0.78 * skin, which, opacity=0.8)
    _paint_mouth(cv, f, 0.0, p["mouth_y"], p, which if mouthless is None else which & ~mouthless, skin)

    fringe = Above(Ellipse(1.07 * f.ux, 1.08 * f.uy), p["hairline"] * f.uy, p["hair_slope"])
    cv.paint(f, 0.0, -0.02, fringe, hair, which)

    _paint_glasses(cv, f, ey, ex, p, which & attrs["glasses"], lenses=not subtle_glasses, thin=subtle_glasses)
    _paint_hat(cv, f, -0.58, p, which & attrs["hat"])


def _paint_nonfaces(cv: Canvas, attrs: dict, p: dict, which: np.ndarray, difficulty: float) -> None:
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
    image = Frame(cx=half, cy=half, angle=np.zeros_like(half), ux=half, uy=half)
    for k in range(4):
        rgb = skin_rgb(tone + p["clutter_tone"][k]) + p["skin_jitter"]
        shape = Ellipse(p["clutter_r"][k, 0] * image.ux, p["clutter_r"][k, 1] * image.uy)
        cv.paint(image, p["clutter_xy"][k, 0], p["clutter_xy"][k, 1], shape, rgb, clutter)

    cv.paint(f, 0.0, 1.95, Ellipse(2.3 * f.ux, 0.78 * f.uy), p["cloth"], shoulders)
    cv.paint(f, 0.0, 1.05, Box(0.42 * f.ux, 0.4 * f.uy), 0.82 * skin, shoulders)
    cv.paint(f, 0.0, -0.04, Ellipse(1.24 * f.ux, 1.1 * f.uy), hair, long_cap)
    cv.paint(f, 0.0, 0.0, Ellipse(f.ux, f.uy), skin, which)

    for k in range(4):
        spot = Ellipse(p["spot_r"][k] * f.ux, p["spot_r"][k] * f.ux)
        cv.paint(f, p["spot_xy"][k, 0], p["spot_xy"][k, 1], spot, p["spot_dark"][k] * skin, spots & (u[7] * 4 >= k))
    stripe_rgb = np.where(p["stripe_light"], np.minimum(skin * 1.35 + 20, 255), skin * 0.55)
    stripe = Striped(Ellipse(f.ux, f.uy), p["stripe_period"] * cv.size, p["stripe_phase"])
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
    cv.paint(f, 0.0, 0.17, Ellipse(0.08 * f.ux, 0.17 * f.uy), 0.78 * skin, scramble & (kind == 1), opacity=0.8)
    _paint_mouth(cv, f, mx, my, p, scramble & ((u[8] < 0.8) | (kind == 1)), skin)

    fringe = Above(Ellipse(1.07 * f.ux, 1.08 * f.uy), p["hairline"] * f.uy, p["hair_slope"])
    cv.paint(f, 0.0, -0.02, fringe, hair, cap)

    # Decoys of the rare face attributes, flagged by the glasses / hat columns of non-faces.
    _paint_glasses(cv, f, p["bar_y"], np.full(n, 0.4, np.float32), p, bars & p["bar_rings"], lenses=False)
    t = np.maximum(0.09 * f.uy, 1.0)
    cv.paint(f, 0.0, p["bar_y"], Box(0.95 * f.ux, t), p["frame_rgb"], bars & ~p["bar_rings"])
    _paint_hat(cv, f, -0.58, p, which & attrs["hat"])


def _paint_background(cv: Canvas, p: dict) -> None:
    half = cv.size / 2
    g = cv.centers / half - 1.0
    t = np.cos(p["bg_dir"])[:, None, None] * g[None, None, :] + np.sin(p["bg_dir"])[:, None, None] * g[None, :, None]
    t = np.where(p["bg_gradient"][:, None, None], 0.5 + 0.35 * t, 0.0).astype(np.float32)
    for k in range(3):
        a, b = p["bg_a"][k][:, None, None], p["bg_b"][k][:, None, None]
        cv.rgb[k] = a + (b - a) * t


def _finish(cv: Canvas, p: dict, rng: np.random.Generator, out: np.ndarray) -> None:
    half = cv.size / 2
    g = cv.centers / half - 1.0
    light = (
        np.cos(p["light_dir"])[:, None, None] * g[None, None, :]
        + np.sin(p["light_dir"])[:, None, None] * g[None, :, None]
    )
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
        canvas = Canvas(stop - start, size, buffer)
        _paint_background(canvas, p)
        look = block["lookalike"]
        # Spurious mode: the target (glasses) is drawn subtler than the trait tied to it, as age is
        # subtler than gender in CelebA; tinted lenses would make it as easy to see as a hat.
        _paint_faces(
            canvas, block, p, face[start:stop] | look, mouthless=look, subtle_glasses=config.spurious is not None
        )
        _paint_nonfaces(canvas, block, p, ~face[start:stop] & ~look, config.difficulty)
        _finish(canvas, p, rng, images[start:stop])
    return images
