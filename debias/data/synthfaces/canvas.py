"""Drawing primitives of `synthfaces`: antialiased shapes, per-image coordinate frames and a canvas
that blends shapes into a block of float RGB images (numpy only, vectorised over the images)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Shapes are described in pixels in their own frame (lx, ly); `alpha` returns coverage in [0, 1]
# with a one-pixel soft edge (antialiasing matters at 32x32). Parameters are per-image arrays.


def _col(value, sel: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)[sel][:, None, None]


class Ellipse:
    """An ellipse with half-axes a (x) and b (y), per image; antialiased over about a pixel."""

    def __init__(self, a, b):
        self.a, self.b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        self.reach = np.maximum(self.a, self.b)

    def alpha(self, lx, ly, sel):
        """Coverage in [0, 1] at local coordinates (lx, ly) of the images selected by `sel`."""
        a, b = _col(self.a, sel), _col(self.b, sel)
        q = (lx / a) ** 2 + (ly / b) ** 2
        # Near the boundary q - 1 ~ 2 * (distance / radius); the smaller radius keeps thin
        # ellipses (brows, mouth line) antialiased across their short axis.
        q -= 1.0
        q *= -0.5 * np.minimum(a, b)
        q += 0.5
        return np.clip(q, 0.0, 1.0, out=q)


class Box:
    """A rectangle with half-sides a (x) and b (y), per image."""

    def __init__(self, a, b):
        self.a, self.b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        self.reach = np.hypot(self.a, self.b)

    def alpha(self, lx, ly, sel):
        """Coverage in [0, 1] at local coordinates (lx, ly) of the images selected by `sel`."""
        d = np.maximum(np.abs(lx) - _col(self.a, sel), np.abs(ly) - _col(self.b, sel))
        return np.clip(0.5 - d, 0.0, 1.0, out=d)


class Ring:
    """An elliptical outline `t` pixels thick (a glasses frame)."""

    def __init__(self, a, b, t):
        self.outer = Ellipse(a, b)
        self.inner = Ellipse(np.maximum(a - t, 0.3), np.maximum(b - t, 0.3))
        self.reach = self.outer.reach

    def alpha(self, lx, ly, sel):
        """Coverage of the outline: the outer ellipse less the inner one."""
        return np.clip(self.outer.alpha(lx, ly, sel) - self.inner.alpha(lx, ly, sel), 0.0, 1.0)


class Above:
    """`shape` restricted to ly < y0 + slope * lx (hair above the hairline, a hat above its brim)."""

    def __init__(self, shape, y0, slope=0.0):
        self.shape, self.y0 = shape, np.asarray(y0, np.float32)
        self.slope = np.broadcast_to(np.asarray(slope, np.float32), self.y0.shape)
        self.reach = shape.reach

    def alpha(self, lx, ly, sel):
        """The shape's coverage where it lies above the cut."""
        cut = np.clip(0.5 - (ly - _col(self.y0, sel) - _col(self.slope, sel) * lx), 0, 1)
        return self.shape.alpha(lx, ly, sel) * cut


class Striped:
    """`shape` covered by parallel stripes of the given period (pixels) and phase."""

    def __init__(self, shape, period, phase):
        self.shape, self.period, self.phase = shape, np.asarray(period, np.float32), np.asarray(phase, np.float32)
        self.reach = shape.reach

    def alpha(self, lx, ly, sel):
        """The shape's coverage, modulated by the stripes."""
        period = _col(self.period, sel)
        wave = np.sin(lx * (2 * np.pi / period) + _col(self.phase, sel))
        return self.shape.alpha(lx, ly, sel) * np.clip(0.5 + wave * (period / (2 * np.pi)), 0.0, 1.0)


@dataclass
class Frame:
    """A rotated coordinate frame per image: centre (pixels), angle (radians), pixels per unit."""

    cx: np.ndarray
    cy: np.ndarray
    angle: np.ndarray
    ux: np.ndarray
    uy: np.ndarray

    def point(self, hx, hy):
        """Pixel coordinates of the point (hx, hy) given in the frame's units."""
        lx, ly = np.asarray(hx, np.float32) * self.ux, np.asarray(hy, np.float32) * self.uy
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.cx + c * lx - s * ly, self.cy + s * lx + c * ly


class Canvas:
    """A block of n float RGB images, stored channel-first so each blend runs on contiguous memory."""

    def __init__(self, n: int, size: int, buffer: np.ndarray | None = None):
        self.n, self.size = n, size
        # Reusing one buffer across blocks avoids paying the page faults of fresh memory each time.
        if buffer is None:
            buffer = np.empty(3 * n * size * size, np.float32)
        self.rgb = buffer[: 3 * n * size * size].reshape(3, n, size, size)
        self.centers = np.arange(size, dtype=np.float32) + 0.5

    def paint(self, frame: Frame, hx, hy, shape, color, which=None, opacity=None, tilt=None) -> None:
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
            r0, r1 = (
                int(np.clip(v, 0, size)) for v in (np.floor((py - reach).min()) - 1, np.ceil((py + reach).max()) + 2)
            )
            c0, c1 = (
                int(np.clip(v, 0, size)) for v in (np.floor((px - reach).min()) - 1, np.ceil((px + reach).max()) + 2)
            )
            if r0 >= r1 or c0 >= c1:
                return
            band = (slice(None), slice(None) if which is None else sel, slice(r0, r1), slice(c0, c1))
            region = self.rgb[band]
            ys, xs = self.centers[None, r0:r1, None], self.centers[None, None, c0:c1]
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
