"""`BigGANGenerator`: a BigGAN-deep behind the generator protocol (docs/adding_a_generator.md).

Codes are `{'z': (B, z_dim) float32, 'class_vector': (B, num_classes) float32,
'truncation': float}` as in the reference call `model(z, class_vector,
truncation)`. Taps are 'layer0' … 'layerK', the outputs of the reference's
`generator.layers[i]` (NHWC here).

`truncation` selects stored batch-norm statistics; it must be a concrete
number (a Python float, or a 0-d / constant array), never a traced value. It
is resolved on the host in double precision exactly as the reference does
and passed to the compiled functions as (row, weight), so no truncation
triggers a recompilation. `generate`, `encode`, `decode` are jit-compiled
(cached per layer and shape); `decode` is a pure function of `features` and
can be vmapped and differentiated.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .config import BigGANConfig
from .model import BigGANDeep, StatsPosition, stats_position, tap_index

__all__ = ["BigGANGenerator", "truncated_noise"]


def truncated_noise(rng, num: int, dim_z: int, truncation: float = 1.0):
  """z ~ truncation · TruncNormal(-2, 2): the reference's
  `utils.truncated_noise_sample` (scipy truncnorm(-2, 2) · truncation)."""
  return truncation * jax.random.truncated_normal(rng, -2.0, 2.0, (num, dim_z), jnp.float32)


class BigGANGenerator:
  """BigGAN-deep generator object (protocol: docs/adding_a_generator.md).

  Args:
    config: `BigGANConfig`.
    variables: {'params': …, 'batch_stats': …} of `BigGANDeep(config)`.
    truncation: the truncation that `sample_codes` uses by default.
    precision: matmul/conv precision of the compiled model ('highest' by
      default, the reference's float32; 'default' is faster on GPUs/TPUs).
    remat_blocks: rematerialise each residual block in the backward pass
      (same values, less memory for the solver; see benchmarks/memory.py).
  """

  def __init__(
    self,
    config: BigGANConfig,
    variables: Mapping[str, Any],
    *,
    truncation: float = 1.0,
    precision: str | None = "highest",
    remat_blocks: bool = False,
  ):
    if not isinstance(config, BigGANConfig):
      config = BigGANConfig.from_dict(dict(config))
    self.config = config
    self.truncation = float(truncation)
    stats_position(self.truncation, config.n_stats)  # validates (0, 1]
    self.variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    self.variables = jax.tree.map(jnp.asarray, self.variables)
    self.precision = precision
    self.module = BigGANDeep(config, precision=precision, remat_blocks=bool(remat_blocks))
    self.layers = config.tap_names
    # One compiled program per piece of the network (condition, seed, each
    # tap, head), shared by generate / encode / decode: run eagerly, they
    # give bit-identical results whichever entry point is used, and each
    # piece is compiled once per batch shape. Under an outer jit / vmap /
    # grad they are traced inline like any jitted function.
    m = self.module
    self._cond = jax.jit(lambda v, z, cv: m.apply(v, z, cv, method="condition"))
    self._seed = jax.jit(lambda v, c: m.apply(v, c, method="seed"))
    self._stage = jax.jit(lambda v, h, c, pos, i: m.apply(v, h, c, pos, i, method="stage"), static_argnums=4)
    self._head = jax.jit(lambda v, h, pos: m.apply(v, h, pos, method="head"))

  # ------------------------------------------------------------- properties
  @property
  def image_shape(self):
    return (self.config.output_dim, self.config.output_dim, 3)

  @property
  def num_classes(self) -> int:
    return self.config.num_classes

  def feature_shape(self, layer) -> tuple:
    """Shape of one example's features at `layer` (H, W, C)."""
    i = tap_index(self.config, layer)
    res = 4 * 2 ** sum(1 for kind, arg in self.config.stages()[: i + 1] if kind == "block" and arg[0])
    kind, arg = self.config.stages()[i]
    c = arg if kind == "attention" else arg[2]
    return (res, res, c)

  # ------------------------------------------------------------------ codes
  def sample_codes(
    self, rng, num: int, classes: None | int | Sequence[int] | np.ndarray = None, truncation: float | None = None
  ) -> dict:
    """`num` codes: z = truncation·TruncNormal(-2, 2), one-hot classes.

    `classes`: None (uniform over all classes), one class id, or `num` ids.
    """
    t = self.truncation if truncation is None else float(truncation)
    stats_position(t, self.config.n_stats)
    num = int(num)
    if num < 1:
      raise ValueError(f"num must be positive, got {num}")
    kz, kc = jax.random.split(rng)
    if classes is None:
      ids = jax.random.randint(kc, (num,), 0, self.config.num_classes)
    else:
      ids = np.asarray(classes).reshape(-1)
      if ids.size == 1:
        ids = np.repeat(ids, num)
      if ids.size != num:
        raise ValueError(f"classes has {ids.size} ids for num={num} codes")
      if ids.dtype.kind not in "iu" and not np.all(ids == np.round(ids)):
        raise ValueError(f"classes must be integer class ids, got {classes!r}")
      ids = ids.astype(np.int64)
      bad = ids[(ids < 0) | (ids >= self.config.num_classes)]
      if bad.size:
        raise ValueError(
          f"class id {int(bad[0])} is out of range: this BigGAN has "
          f"{self.config.num_classes} classes (0 … {self.config.num_classes - 1})"
        )
    z = truncated_noise(kz, num, self.config.z_dim, t)
    return {"z": z, "class_vector": jax.nn.one_hot(ids, self.config.num_classes, dtype=jnp.float32), "truncation": t}

  def class_of(self, codes) -> np.ndarray:
    """Class id of each code: the argmax of its one-hot `class_vector`."""
    return np.argmax(np.asarray(codes["class_vector"]), axis=-1).astype(np.int64)

  def one_hot(self, classes) -> jnp.ndarray:
    ids = np.asarray(classes).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= self.config.num_classes):
      raise ValueError(f"class id out of range 0 … {self.config.num_classes - 1}: {classes!r}")
    return jax.nn.one_hot(ids, self.config.num_classes, dtype=jnp.float32)

  def _unpack(self, codes):
    try:
      z, cv, t = codes["z"], codes["class_vector"], codes["truncation"]
    except (KeyError, TypeError) as e:
      raise ValueError("codes must be a dict with 'z', 'class_vector', 'truncation'") from e
    try:
      t = np.asarray(t)
    except jax.errors.TracerArrayConversionError as e:
      raise ValueError(
        "codes['truncation'] must be a concrete number, not a traced value (it selects stored batch-norm statistics)"
      ) from e
    if t.size != 1 and not np.all(t == t.reshape(-1)[0]):
      raise ValueError("one truncation per batch of codes, got several")
    pos = stats_position(float(t.reshape(-1)[0]), self.config.n_stats)
    pos = StatsPosition(np.int32(pos.start), np.float32(pos.coef))
    z = jnp.asarray(z, jnp.float32)
    cv = jnp.asarray(cv, jnp.float32)
    if z.ndim != 2 or z.shape[1] != self.config.z_dim:
      raise ValueError(f"codes['z'] must be (B, {self.config.z_dim}), got {z.shape}")
    if cv.shape != (z.shape[0], self.config.num_classes):
      raise ValueError(f"codes['class_vector'] must be ({z.shape[0]}, {self.config.num_classes}), got {cv.shape}")
    return z, cv, pos

  def _run(self, z, cv, pos, start: int, stop: int | None, h=None, taps=None):
    v = self.variables
    cond = self._cond(v, z, cv)
    if h is None:
      h = self._seed(v, cond)
    last = len(self.layers) - 1 if stop is None else stop
    for i in range(start, last + 1):
      h = self._stage(v, h, cond, pos, i)
      if taps is not None:
        taps.append(h)
    return h if stop is not None else self._head(v, h, pos)

  # --------------------------------------------------------------- protocol
  def generate(self, codes) -> jnp.ndarray:
    """(B, H, W, 3) float32 images in [-1, 1]."""
    z, cv, pos = self._unpack(codes)
    return self._run(z, cv, pos, 0, None)

  def encode(self, codes, layer) -> jnp.ndarray:
    """(B, H, W, C) features at tap `layer` ('layer{i}')."""
    i = tap_index(self.config, layer)
    z, cv, pos = self._unpack(codes)
    return self._run(z, cv, pos, 0, i)

  def decode(self, codes, layer, features) -> jnp.ndarray:
    """Runs the network after tap `layer` on `features` (B, H, W, C) → images.

    Pure in `features`: jit / vmap / grad through it freely."""
    i = tap_index(self.config, layer)
    z, cv, pos = self._unpack(codes)
    shape = (z.shape[0],) + self.feature_shape(i)
    if tuple(jnp.shape(features)) != shape:
      raise ValueError(f"features for {self.layers[i]} must have shape {shape}, got {tuple(jnp.shape(features))}")
    return self._run(z, cv, pos, i + 1, None, h=features)

  def generate_with_taps(self, codes):
    """(images, {tap name: features}) from one forward pass."""
    z, cv, pos = self._unpack(codes)
    taps = []
    x = self._run(z, cv, pos, 0, None, taps=taps)
    return x, dict(zip(self.layers, taps))

  def __repr__(self):
    return (
      f"BigGANGenerator(output_dim={self.config.output_dim}, taps={self.layers[0]}…"
      f"{self.layers[-1]}, truncation={self.truncation})"
    )
