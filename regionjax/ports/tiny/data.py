"""Training images of the tiny generators, from data that installed packages ship (no downloads).

Both return ``(num, 32, 32, 3)`` float32 in ``[-1, 1]``; a seed fixes everything.

* :func:`digits`: scikit-learn's 1797 handwritten digits (8×8, 16 grey levels), upsampled ×4 bilinearly and
  coloured: a random saturated ink over a random dark background per image.
* :func:`photo_crops`: random crops (64–128 px, then resized to 32) of scikit-image's bundled colour photographs
  (astronaut, coffee, chelsea, rocket, immunohistochemistry, hubble deep field), randomly mirrored.
"""

from __future__ import annotations

import colorsys

import jax
import jax.numpy as jnp
import numpy as np

SIZE = 32
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def _resize(images: np.ndarray, size: int = SIZE) -> np.ndarray:
  x = jnp.asarray(images, jnp.float32)
  return np.asarray(jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "linear"))


def digits(seed: int = 0) -> np.ndarray:
  """The digits of ``sklearn.datasets.load_digits`` as coloured 32×32 images in ``[-1, 1]``."""
  from sklearn.datasets import load_digits

  rng = np.random.default_rng(seed)
  grey = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8) in [0, 1]
  grey = _resize(grey[..., None])[..., 0].clip(0, 1)
  num = grey.shape[0]
  ink = np.array([colorsys.hsv_to_rgb(h, 0.85, 1.0) for h in rng.uniform(size=num)], np.float32)
  paper = rng.uniform(0.0, 0.35, size=(num, 3)).astype(np.float32)
  rgb = paper[:, None, None] + grey[..., None] * (ink - paper)[:, None, None]
  return (rgb * 2 - 1).astype(np.float32)


def photo_crops(num: int = 4096, seed: int = 0) -> np.ndarray:
  """``num`` random crops of scikit-image's bundled photographs as 32×32 images in ``[-1, 1]``."""
  import skimage.data

  rng = np.random.default_rng(seed)
  photos = [np.asarray(getattr(skimage.data, name)(), np.float32)[..., :3] / 255.0 for name in PHOTOS]
  out = np.empty((num, SIZE, SIZE, 3), np.float32)
  for k in range(num):
    p = photos[rng.integers(len(photos))]
    side = int(rng.integers(64, 129))
    r, c = rng.integers(0, p.shape[0] - side + 1), rng.integers(0, p.shape[1] - side + 1)
    crop = p[r : r + side, c : c + side]
    if rng.uniform() < 0.5:
      crop = crop[:, ::-1]
    out[k] = _resize(crop[None])[0]
  return (out.clip(0, 1) * 2 - 1).astype(np.float32)


DATASETS = {"digits": lambda seed: digits(seed), "photos": lambda seed: photo_crops(seed=seed)}
