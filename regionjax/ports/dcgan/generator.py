"""`DCGANGenerator`: the DCGAN behind the generator protocol (``regionjax.Generator``).

Codes are ``{'z': (B, nz) float32}``, z ~ N(0, I) as in the reference's
``torch.randn(B, nz, 1, 1)``. Taps are 'layer0' … 'layer3', the outputs of
the first four blocks (after batch norm and ReLU). ``decode`` is a pure
function of the features: jit, vmap and grad through it freely.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp

from .model import DCGAN, DCGANConfig

__all__ = ["DCGANGenerator"]


class DCGANGenerator:
  """A DCGAN generator object.

  Args:
    config: ``DCGANConfig``.
    variables: ``{'params': …, 'batch_stats': …}`` of ``DCGAN(config)``.
  """

  num_classes = None  # unconditional

  def __init__(self, config: DCGANConfig, variables: Mapping[str, Any]):
    self.config = config
    self.variables = jax.tree.map(jnp.asarray, {"params": variables["params"], "batch_stats": variables["batch_stats"]})
    self.module = DCGAN(config)
    self.layers = config.tap_names
    m = self.module
    self._stage = jax.jit(lambda v, h, i: m.apply(v, h, i, method="stage"), static_argnums=2)

  @property
  def image_shape(self):
    return self.config.image_shape

  def feature_shape(self, layer) -> tuple:
    return self.config.feature_shape(self._index(layer))

  def _index(self, layer) -> int:
    if isinstance(layer, int) and 0 <= layer < len(self.layers):
      return layer
    if layer not in self.layers:
      raise ValueError(f"unknown layer {layer!r}; the DCGAN's layers are {list(self.layers)}")
    return self.layers.index(layer)

  def sample_codes(self, rng, num: int, classes=None) -> dict:
    """``num`` codes z ~ N(0, I) (an unconditional model: ``classes`` must be None)."""
    if classes is not None:
      raise ValueError("the DCGAN is unconditional: it takes no classes")
    num = int(num)
    if num < 1:
      raise ValueError(f"num must be positive, got {num}")
    return {"z": jax.random.normal(rng, (num, self.config.nz), jnp.float32)}

  def class_of(self, codes):
    del codes
    return None

  def _z(self, codes):
    try:
      z = jnp.asarray(codes["z"], jnp.float32)
    except (KeyError, TypeError) as e:
      raise ValueError("codes must be a dict with 'z' (B, nz)") from e
    if z.ndim != 2 or z.shape[1] != self.config.nz:
      raise ValueError(f"codes['z'] must be (B, {self.config.nz}), got {z.shape}")
    return z.reshape(z.shape[0], 1, 1, -1)

  def _run(self, h, start: int, stop: int):
    for i in range(start, stop):
      h = self._stage(self.variables, h, i)
    return h

  def generate(self, codes) -> jax.Array:
    """(B, 64, 64, 3) float32 images in [-1, 1]."""
    return self._run(self._z(codes), 0, 5)

  def encode(self, codes, layer) -> jax.Array:
    """(B, H, W, C) features at tap ``layer``."""
    return self._run(self._z(codes), 0, self._index(layer) + 1)

  def decode(self, codes, layer, features) -> jax.Array:
    """The blocks after tap ``layer`` on ``features`` (B, H, W, C) → images."""
    i = self._index(layer)
    shape = (jnp.shape(features)[0],) + self.config.feature_shape(i)
    if tuple(jnp.shape(features)) != shape:
      raise ValueError(f"features for {self.layers[i]} must have shape {shape}, got {tuple(jnp.shape(features))}")
    return self._run(features, i + 1, 5)

  def __repr__(self):
    return f"DCGANGenerator(nz={self.config.nz}, ngf={self.config.ngf}, taps={list(self.layers)})"
