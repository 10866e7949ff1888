"""``SiDGenerator``: SiD's one-step generator behind the generator protocol (docs/adding_a_generator.md).

Codes are ``{'z': (B, H, W, C) float32}`` with z ~ N(0, I); the image is
D(σ_init·z; σ_init) (see ``model.py``). Taps: ``enc/64x64_conv`` …
``dec/64x64_block4`` (each encoder/decoder module's output, NHWC) and the
same in execution order as ``layer0`` … ``layerK``. ``decode`` from a tap
recomputes the noise embedding and the encoder skips it needs from the codes.
Images are the network's output, which lies in [-1, 1] up to small overshoots
(the reference clips only when it writes PNGs).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .config import SIGMA_INIT, SiDConfig
from .model import EDMSongUNet

__all__ = ["SiDGenerator"]


class SiDGenerator:
  """Args:
  config: ``SiDConfig``.
  variables: ``{'params': …}`` of ``EDMSongUNet(config)``.
  sigma_init: the generator's input noise level (SiD: 2.5).
  precision: matmul/conv precision ('highest' = float32 as the reference).
  """

  def __init__(
    self,
    config: SiDConfig,
    variables: Mapping[str, Any],
    *,
    sigma_init: float = SIGMA_INIT,
    precision: str | None = "highest",
  ):
    if not isinstance(config, SiDConfig):
      config = SiDConfig.from_dict(dict(config))
    self.config = config
    self.sigma_init = float(sigma_init)
    if not self.sigma_init > 0:
      raise ValueError(f"sigma_init must be positive, got {sigma_init}")
    self.variables = jax.tree.map(jnp.asarray, {"params": variables["params"]})
    self.module = EDMSongUNet(config, sigma_init=self.sigma_init, precision=precision)
    self.block_names = config.tap_names
    self.layers = tuple(f"layer{i}" for i in range(len(self.block_names))) + self.block_names
    m = self.module
    self._run = jax.jit(
      lambda v, z, f, start, stop, taps: m.apply(
        v, z, start=start, features=f, stop=stop, return_taps=taps, method=EDMSongUNet.run
      ),
      static_argnums=(3, 4, 5),
    )
    self._prefix = jax.jit(lambda v, z, start: m.apply(v, z, start, method=EDMSongUNet.prefix), static_argnums=2)
    self._tail = jax.jit(
      lambda v, z, emb, skips, f, start: m.apply(v, z, emb, skips, f, start, method=EDMSongUNet.tail), static_argnums=5
    )

  # ------------------------------------------------------------- properties
  @property
  def image_shape(self):
    r = self.config.img_resolution
    return (r, r, self.config.img_channels)

  def tap_index(self, layer) -> int:
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and 0 <= layer < len(self.block_names):
      return int(layer)
    if isinstance(layer, str):
      if layer in self.block_names:
        return self.block_names.index(layer)
      if layer.startswith("layer") and layer[5:].isdigit() and int(layer[5:]) < len(self.block_names):
        return int(layer[5:])
    raise ValueError(
      f"unknown layer {layer!r}: this SiD generator's taps are layer0 … "
      f"layer{len(self.block_names) - 1} or {self.block_names[0]} … {self.block_names[-1]}"
    )

  def feature_shape(self, layer) -> tuple:
    _, _, _, _, cout, res, _ = self.config.blocks()[self.tap_index(layer)]
    return (res, res, cout)

  # ------------------------------------------------------------------ codes
  num_classes = None  # unconditional

  def sample_codes(self, rng, num: int, classes=None) -> dict:
    """``num`` codes z ~ N(0, I) of the image's shape (SiD: ``torch.randn``); unconditional: no classes."""
    if classes is not None:
      raise ValueError("this SiD generator is unconditional: it takes no classes")
    num = int(num)
    if num < 1:
      raise ValueError(f"num must be positive, got {num}")
    return {"z": jax.random.normal(rng, (num,) + self.image_shape, jnp.float32)}

  def class_of(self, codes):
    del codes
    return None

  def _z(self, codes):
    try:
      z = codes["z"]
    except (KeyError, TypeError, IndexError):
      raise ValueError("codes must be a dict with 'z'") from None
    z = jnp.asarray(z, jnp.float32)
    if z.ndim != 4 or tuple(z.shape[1:]) != self.image_shape:
      raise ValueError(f"codes['z'] must be (B, {', '.join(map(str, self.image_shape))}), got {tuple(z.shape)}")
    return z

  # --------------------------------------------------------------- protocol
  def generate(self, codes) -> jnp.ndarray:
    """(B, H, W, C) images, D(σ_init·z; σ_init)."""
    return self._run(self.variables, self._z(codes), None, None, None, False)

  def encode(self, codes, layer) -> jnp.ndarray:
    return self._run(self.variables, self._z(codes), None, None, self.tap_index(layer), False)

  def decode(self, codes, layer, features) -> jnp.ndarray:
    """The rest of the network after ``layer`` on ``features``; pure in
    ``features`` (jit / vmap / grad freely)."""
    i = self.tap_index(layer)
    raw = codes.get("z") if isinstance(codes, Mapping) else None
    # Codes fixed while features vary (the solver): compute the embedding and
    # the encoder skips now, even under an outer jit, so that XLA does not
    # constant-fold the encoder at compile time.
    eager = raw is not None and not isinstance(raw, jax.core.Tracer)
    with jax.ensure_compile_time_eval() if eager else contextlib.nullcontext():
      z = self._z(codes)
      shape = (z.shape[0],) + self.feature_shape(i)
      if tuple(jnp.shape(features)) != shape:
        raise ValueError(
          f"features for {self.block_names[i]} must have shape {shape}, got {tuple(jnp.shape(features))}"
        )
      emb, skips = self._prefix(self.variables, z, i)
    return self._tail(self.variables, z, emb, skips, features, i)

  def generate_with_taps(self, codes):
    """(images, {block name: features}) from one forward pass."""
    x, taps = self._run(self.variables, self._z(codes), None, None, None, True)
    return x, dict(zip(self.block_names, taps))

  def __repr__(self):
    return (
      f"SiDGenerator({self.config.img_resolution}×{self.config.img_resolution}, "
      f"{len(self.block_names)} taps, σ_init={self.sigma_init})"
    )
