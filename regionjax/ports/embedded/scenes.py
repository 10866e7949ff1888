"""Procedural training scenes for the embedded generator.

Each scene is one to three shapes of *one* class over a muted, textured
background. The class fixes both the shape and its (saturated) colour:

    0 red circle   1 green square   2 blue triangle   3 yellow cross   4 magenta ring

Backgrounds are low-saturation (greys, browns, dull tints) so that the class
colour is the only strongly saturated thing in the frame: a linear gradient, a
stripe pattern (random angle and frequency) or smooth blotchy noise, plus a
little pixel grain. Shapes are large (radius 0.20–0.36 of the frame for one
shape, smaller when there are more), anywhere in the frame, and may overlap or
touch the border — the explainer cuts the image into a 6×6 grid and picks
foreground patches, so the foreground must cover a good, varied part of it.

Rendering is vectorised over the batch in numpy at 2× supersampling, then
2×2 average-pooled (anti-aliased edges). Everything is a function of the
`numpy.random.Generator` passed in, so a seed fixes the scenes exactly.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CLASS_NAMES", "CLASS_COLORS", "render", "render_seeded", "dominant_class"]

CLASS_NAMES = ("red circle", "green square", "blue triangle", "yellow cross", "magenta ring")
#: Base RGB colour in [0, 1] of each class's shapes.
CLASS_COLORS = np.array(
  [
    [0.92, 0.12, 0.10],
    [0.12, 0.78, 0.16],
    [0.12, 0.28, 0.95],
    [0.97, 0.86, 0.08],
    [0.90, 0.12, 0.88],
  ],
  np.float32,
)
NUM_CLASSES = len(CLASS_NAMES)
_SUPERSAMPLE = 2


def _muted_colors(rng, shape):
  """Random low-saturation colours: a grey level plus a small tint."""
  grey = rng.uniform(0.15, 0.85, shape + (1,))
  tint = rng.uniform(-0.08, 0.08, shape + (3,))
  return np.clip(grey + tint, 0.0, 1.0)


def _backgrounds(rng, n, size):
  yy, xx = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
  kind = rng.integers(0, 3, n)
  c0, c1 = _muted_colors(rng, (n,)), _muted_colors(rng, (n,))
  angle = rng.uniform(0, 2 * np.pi, n)
  freq = rng.uniform(1.5, 5.0, n)[:, None, None]
  phase = rng.uniform(0, 2 * np.pi, n)[:, None, None]
  coarse = rng.uniform(0, 1, (n, 4, 4))
  proj = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy  # (n, s, s) in ~[-1.4, 1.4]
  t = np.empty((n, size, size))
  g = kind == 0  # linear gradient
  t[g] = np.clip(proj[g] / 2.8 + 0.5, 0, 1)
  st = kind == 1  # stripes: 1.5 … 5 periods across the frame, soft edges
  t[st] = 0.5 + 0.5 * np.tanh(3.0 * np.sin(np.pi * freq[st] * proj[st] + phase[st]))
  nz = kind == 2  # blotchy noise: a random 4×4 field, bilinearly up-sampled
  pos = np.linspace(0, 3, size)
  i0 = np.clip(np.floor(pos).astype(int), 0, 2)
  w = pos - i0
  coarse = coarse[nz]
  rows = coarse[:, i0, :] * (1 - w)[None, :, None] + coarse[:, i0 + 1, :] * w[None, :, None]
  t[nz] = rows[:, :, i0] * (1 - w)[None, None, :] + rows[:, :, i0 + 1] * w[None, None, :]
  t = t[..., None].astype(np.float32)
  img = c0[:, None, None, :].astype(np.float32) * (1 - t) + c1[:, None, None, :].astype(np.float32) * t
  return img


def _shape_mask(cls, xx, yy, cx, cy, r, rot):
  """Boolean masks (n, s, s) of one shape per image; cls, cx, cy, r, rot are (n,)."""
  out = np.zeros((cls.size,) + xx.shape, bool)
  for c in np.unique(cls):
    idx = np.flatnonzero(cls == c)
    ccx, ccy, cr, crot = (a[idx, None, None] for a in (cx, cy, r, rot))
    dx, dy = xx - ccx, yy - ccy
    if c == 0:  # circle
      m = dx**2 + dy**2 <= cr**2
    elif c == 4:  # ring
      d2 = dx**2 + dy**2
      m = (d2 <= cr**2) & (d2 >= (0.55 * cr) ** 2)
    else:
      # rotate into the shape's frame
      cos, sin = np.cos(crot), np.sin(crot)
      u = cos * dx + sin * dy
      v = -sin * dx + cos * dy
      if c == 1:  # square
        m = (np.abs(u) <= 0.8 * cr) & (np.abs(v) <= 0.8 * cr)
      elif c == 2:  # equilateral triangle inscribed in radius 1.2·r, pointing along -v
        k, rt = np.sqrt(3.0), 1.2 * cr
        m = (v <= 0.5 * rt) & (k * u - v <= rt) & (-k * u - v <= rt)
      else:  # plus-shaped cross
        au, av, arm = np.abs(u), np.abs(v), 0.33 * cr
        m = ((au <= arm) & (av <= cr)) | ((av <= arm) & (au <= cr))
    out[idx] = m
  return out


def render(rng: np.random.Generator, classes, size: int = 32) -> np.ndarray:
  """Scenes of the given classes: float32 (n, size, size, 3) in [-1, 1]."""
  classes = np.asarray(classes, np.int64).reshape(-1)
  if classes.size and (classes.min() < 0 or classes.max() >= NUM_CLASSES):
    raise ValueError(f"class ids must be in 0 … {NUM_CLASSES - 1}, got {classes}")
  n, s = classes.size, size * _SUPERSAMPLE
  img = _backgrounds(rng, n, s)
  yy, xx = np.meshgrid((np.arange(s) + 0.5) / s, (np.arange(s) + 0.5) / s, indexing="ij")
  count = rng.choice([1, 2, 3], size=n, p=[0.45, 0.35, 0.2])
  scale = np.array([0.0, 1.0, 0.8, 0.68])[count]
  for k in range(3):
    r = rng.uniform(0.20, 0.36, n) * scale
    cx = rng.uniform(0.12, 0.88, n)
    cy = rng.uniform(0.12, 0.88, n)
    rot = rng.uniform(-0.35, 0.35, n) * (classes != 0)  # small tilts (circles/rings: invariant anyway)
    shade = rng.uniform(0.8, 1.0, n)
    mask = _shape_mask(classes, xx, yy, cx, cy, r, rot) & (k < count)[:, None, None]
    color = np.clip(CLASS_COLORS[classes] * shade[:, None] + rng.uniform(-0.05, 0.05, (n, 3)), 0, 1)
    img = np.where(mask[..., None], color[:, None, None, :], img)
  img = img.reshape(n, size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(2, 4))
  img = img + rng.normal(0, 0.015, img.shape)  # fine grain
  return np.clip(img * 2 - 1, -1, 1).astype(np.float32)


def render_seeded(seed: int, n: int, size: int = 32, classes=None):
  """`n` scenes from one integer seed; classes uniform unless given. Returns (images, classes)."""
  rng = np.random.default_rng(seed)
  if classes is None:
    classes = rng.integers(0, NUM_CLASSES, n)
  classes = np.broadcast_to(np.asarray(classes, np.int64), (n,)).copy()
  return render(rng, classes, size), classes


def dominant_class(images, min_saturation: float = 0.45, min_pixels: int = 4):
  """Class whose colour the image's saturated pixels are closest to, per image.

  images: (n, H, W, 3) in [-1, 1]. A pixel counts as foreground when its HSV
  saturation is ≥ `min_saturation` and its value ≥ 0.35 (backgrounds here stay
  well below that saturation). Each foreground pixel votes for the class colour
  of nearest hue; the majority is returned, or -1 when fewer than `min_pixels`
  pixels are saturated. Also returns the foreground fraction per image.
  """
  x = (np.asarray(images, np.float32) + 1) / 2
  mx, mn = x.max(-1), x.min(-1)
  sat = (mx - mn) / np.maximum(mx, 1e-6)
  fg = (sat >= min_saturation) & (mx >= 0.35)
  hue = _hue(x)
  class_hue = _hue(CLASS_COLORS[None, None])[0, 0]  # (C,)
  d = np.abs(hue[..., None] - class_hue)
  d = np.minimum(d, 1 - d)
  nearest = d.argmin(-1)
  votes = np.stack([((nearest == c) & fg).sum((1, 2)) for c in range(NUM_CLASSES)], -1)
  out = votes.argmax(-1)
  out[fg.sum((1, 2)) < min_pixels] = -1
  return out, fg.mean((1, 2))


def _hue(x):
  """HSV hue in [0, 1) of RGB in [0, 1] (last axis)."""
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  mx, mn = x.max(-1), x.min(-1)
  c = np.maximum(mx - mn, 1e-6)
  h = np.where(mx == r, ((g - b) / c) % 6, np.where(mx == g, (b - r) / c + 2, (r - g) / c + 4))
  return (h / 6.0) % 1.0
