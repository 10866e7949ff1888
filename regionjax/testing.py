"""A generator with planted regional structure, for known-answer tests.

The feature is a vector of ``D = Σ_b d_b + d_inert`` numbers cut into blocks.
Block ``b`` paints exactly the pixels of the patches in its planted field
``F_b`` (a set of players), through fixed random weights; the inert tail of
the feature is ignored by the decoder:

    g(v)[p] = tanh( x0[p] + Σ_{b : p ∈ pixels(F_b)} W_b[p] · (v_b − f0_b) )

Each block has fewer numbers than any patch has pixel values, so a block's
contribution is determined by any one patch of its field. Then the minimal
feature of ``S`` keeps (α = 1) exactly the blocks whose field meets ``S`` and
drops (α = 0) every other block and the inert tail, so

    u(S) = f0 + Σ_{b : F_b ∩ S ≠ ∅} Δ_b   ⇒   Δf_F = Σ_{b : F_b = F} Δ_b,

every other OR component is 0, up to the λ-dependent shrinkage of the L1 term.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from regionjax import patches as patches_lib
from regionjax import subsets as subsets_lib


@dataclasses.dataclass(frozen=True)
class Planted:
  """A planted generator and its known answer."""

  fields: tuple[int, ...]  # bitmask field of each block
  block_slices: tuple[slice, ...]
  f: np.ndarray  # (D,)
  f0: np.ndarray  # (D,)
  masks: np.ndarray  # (n, H, W) player masks
  x0: np.ndarray  # (H, W, C) pre-activation background
  weights: np.ndarray  # (D, H, W, C); zero outside each block's field and for inert dims

  @property
  def n(self) -> int:
    return self.masks.shape[0]

  def decode(self, v: jax.Array) -> jax.Array:
    """``g(v)``: one feature ``(D,)`` → one image ``(H, W, C)``."""
    w = jnp.asarray(self.weights, v.dtype)
    return jnp.tanh(jnp.asarray(self.x0, v.dtype) + jnp.tensordot(v - jnp.asarray(self.f0, v.dtype), w, axes=1))

  @property
  def image(self) -> np.ndarray:
    return np.asarray(self.decode(jnp.asarray(self.f)))

  def expected_components(self) -> np.ndarray:
    """``(2**n, D)``: ``f0`` at ∅, each field's summed blocks, zeros elsewhere."""
    out = np.zeros((1 << self.n,) + self.f.shape, self.f.dtype)
    out[0] = self.f0
    for field, sl in zip(self.fields, self.block_slices):
      out[field, sl] += (self.f - self.f0)[sl]
    return out

  def expected_u(self) -> np.ndarray:
    """``(2**n, D)``: ``u(S) = f0 + Σ_{F_b ∩ S ≠ ∅} Δ_b``."""
    out = np.repeat(self.f0[None], 1 << self.n, axis=0)
    all_s = subsets_lib.all_subsets(self.n)
    for field, sl in zip(self.fields, self.block_slices):
      hit = (all_s & field) != 0
      out[np.ix_(hit, np.arange(sl.start, sl.stop))] += (self.f - self.f0)[sl]
    return out


def planted_generator(
  fields: Sequence[Sequence[int]] = ((0,), (1,), (0, 1), (2, 3), (1, 3), (3,)),
  *,
  n: int = 4,
  block_dim: int = 3,
  inert_dim: int = 5,
  size: int = 12,
  grid: int = 3,
  channels: int = 3,
  seed: int = 0,
) -> Planted:
  """Builds a :class:`Planted` generator on a ``grid × grid`` image of ``size²``.

  ``fields`` lists each block's field as player indices; the players are the
  first ``n`` cells of the grid, in row-major order.
  """
  rng = np.random.default_rng(seed)
  cells = patches_lib.patch_masks(size, size, grid, grid)
  masks = cells[:n]
  if min(m.sum() for m in masks) * channels <= 2 * block_dim:
    raise ValueError("patches are too small for the block size: the blocks would not be identifiable")
  field_bits = tuple(subsets_lib.from_indices(fl) for fl in fields)
  if any(fb >> n for fb in field_bits) or any(fb == 0 for fb in field_bits):
    raise ValueError(f"fields {fields} must be non-empty sets of players in [0, {n})")
  num_blocks = len(fields)
  dim = num_blocks * block_dim + inert_dim
  slices = tuple(slice(b * block_dim, (b + 1) * block_dim) for b in range(num_blocks))
  f0 = rng.normal(size=dim).astype(np.float32)
  delta = rng.choice([-1.0, 1.0], size=dim) * rng.uniform(0.6, 1.2, size=dim)
  f = (f0 + delta).astype(np.float32)
  weights = np.zeros((dim, size, size, channels), np.float32)
  for fb, sl in zip(field_bits, slices):
    pix = np.any(masks[subsets_lib.to_indices(fb)], axis=0)
    w = rng.normal(scale=0.35, size=(block_dim, size, size, channels)).astype(np.float32)
    weights[sl] = w * pix[None, :, :, None]
  x0 = rng.normal(scale=0.3, size=(size, size, channels)).astype(np.float32)
  return Planted(fields=field_bits, block_slices=slices, f=f, f0=f0, masks=masks, x0=x0, weights=weights)


class PlantedGenerator:
  """The planted decoder behind the generator protocol (docs/adding_a_generator.md).

  Codes are ``{'z': (B, D)}``; the feature at the only tap ``'feature'`` is
  ``f0 + z``, so the mean feature over many codes is ≈ ``f0``, and the image
  is :meth:`Planted.decode` of the feature. Used for fast pipeline tests.
  """

  layers = ("feature",)

  def __init__(self, planted: Planted | None = None, num_classes: int = 1):
    self.planted = planted or planted_generator()
    self.num_classes = num_classes

  def sample_codes(self, rng: jax.Array, num: int, classes=None):
    z = jax.random.normal(rng, (num,) + self.planted.f.shape, jnp.float32)
    labels = np.zeros((num,), np.int32) if classes is None else np.broadcast_to(np.asarray(classes, np.int32), (num,))
    if np.any((labels < 0) | (labels >= self.num_classes)):
      raise ValueError(f"class id out of range: the planted generator has {self.num_classes} class(es)")
    return {"z": z, "label": jnp.asarray(labels)}

  def class_of(self, codes):
    return np.asarray(codes["label"]).astype(np.int64)

  def encode(self, codes, layer: str) -> jax.Array:
    if layer not in self.layers:
      raise ValueError(f"unknown layer {layer!r}; this generator's layers are {list(self.layers)}")
    return jnp.asarray(self.planted.f0) + codes["z"]

  def decode(self, codes, layer: str, features: jax.Array) -> jax.Array:
    return jax.vmap(self.planted.decode)(features)

  def generate(self, codes) -> jax.Array:
    return self.decode(codes, "feature", self.encode(codes, "feature"))
