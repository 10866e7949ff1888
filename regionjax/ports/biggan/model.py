"""BigGAN-deep generator in Flax (NHWC), numerically the reference's eval forward.

Reference: pytorch-pretrained-biggan `model.py` (Brock, Donahue, Simonyan,
"Large Scale GAN Training for High Fidelity Natural Image Synthesis", ICLR
2019, the "deep" generator as exported from TF Hub). The forward pass is

    e    = embeddings(class_vector)                      # linear, no bias
    c    = concat(z, e)                                  # condition vector
    h    = gen_z(c).reshape(B, 4, 4, 16·ch)              # already NHWC
    h    = layers[i](h, c, truncation)   for every tap i # GenBlocks + SelfAttn
    x    = tanh(conv_to_rgb(relu(bn(h)))[..., :3])

Every batch norm normalises with *stored* running statistics: `n_stats` rows
per norm, for truncations `k/(n_stats-1)`. A truncation `t` picks rows as the
reference does (`coef, start = modf(t·(n_stats-1))` in double precision, then
`stats[start]·coef + stats[start+1]·(1-coef)`; note the reference weighs the
*lower* row by the fractional part — kept as is for parity). Conditional norms
scale by `1 + scale(c)` and shift by `offset(c)`.

Spectral normalisation is folded into the weights at conversion time (see
`convert.py`): the parameters here are the normalised kernels.

Training mode (`train=True`, for small models trained from scratch): every
norm uses the batch's mean and (biased) variance over (B, H, W) and, unless
initialising, moves *all* `n_stats` rows of its running statistics towards them
with `momentum` (mutable collection 'batch_stats'). After such training, every
truncation therefore reads the same statistics. To record truncation-specific
("standing") statistics afterwards, call with `train=True,
stats_rows=(k,)` — only those rows are updated, e.g. with `momentum=0` on a
large batch of codes drawn at truncation `k/(n_stats-1)`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

from .config import BigGANConfig

__all__ = [
  "BigGANDeep",
  "StatsPosition",
  "stats_position",
  "tap_index",
]

Array = Any


class StatsPosition(NamedTuple):
  """Which stored statistics a truncation reads: rows `start`, `start+1`
  mixed with weight `coef` on `start` (coef == 0 → row `start` alone)."""

  start: Array
  coef: Array


def stats_position(truncation, n_stats: int) -> StatsPosition:
  """The reference's `math.modf(truncation / step_size)`.

  A concrete number is resolved in Python double precision exactly as the
  reference does and checked against `0 < truncation <= 1`; a traced value
  is resolved in float32 (which may differ from the reference only for values
  within float32 rounding of a grid point `k/(n_stats-1)`).
  """
  if isinstance(truncation, StatsPosition):
    return truncation
  try:
    t = float(truncation)  # concrete: Python float, numpy or concrete jax scalar
  except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    t = None
  if t is not None:
    if not (0.0 < t <= 1.0) or math.isnan(t):
      raise ValueError(f"truncation must be in (0, 1], got {t}")
    step = 1.0 / (n_stats - 1)
    coef, start = math.modf(t / step)
    return StatsPosition(int(start), float(coef))
  t = jnp.asarray(truncation, jnp.float32) * (n_stats - 1)
  start = jnp.floor(t)
  return StatsPosition(start.astype(jnp.int32), t - start)


def tap_index(config: BigGANConfig, layer: str | int) -> int:
  """'layer6' (or 6) -> 6, with a clear error for anything else."""
  names = config.tap_names
  if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
    if 0 <= int(layer) < len(names):
      return int(layer)
  elif isinstance(layer, str) and layer in names:
    return names.index(layer)
  raise ValueError(f"unknown layer {layer!r}: this BigGAN has taps {names[0]} … {names[-1]}")


def _interpolate(stats: Array, pos: StatsPosition) -> Array:
  n = stats.shape[0]
  start = jnp.clip(jnp.asarray(pos.start), 0, n - 1)
  nxt = jnp.clip(start + 1, 0, n - 1)
  coef = jnp.asarray(pos.coef, stats.dtype)
  lo, hi = stats[start], stats[nxt]
  return jnp.where(coef != 0, lo * coef + hi * (1 - coef), lo)


class BigGANBatchNorm(nn.Module):
  """Batch norm with `n_stats` stored statistics selected by truncation;
  conditional (scale/offset from the condition vector) or plain affine."""

  num_features: int
  n_stats: int
  eps: float
  conditional: bool = True
  momentum: float = 0.99
  precision: Any = None

  @nn.compact
  def __call__(self, x, pos: StatsPosition, cond=None, train: bool = False, stats_rows: Sequence[int] | None = None):
    c = self.num_features
    means = self.variable("batch_stats", "running_means", lambda: jnp.zeros((self.n_stats, c), jnp.float32))
    variances = self.variable("batch_stats", "running_vars", lambda: jnp.ones((self.n_stats, c), jnp.float32))
    if train:
      mean = jnp.mean(x, axis=(0, 1, 2))
      var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
      if not self.is_initializing():
        m = self.momentum
        rows = slice(None) if stats_rows is None else jnp.asarray(stats_rows, jnp.int32)
        means.value = means.value.at[rows].set(m * means.value[rows] + (1 - m) * mean)
        variances.value = variances.value.at[rows].set(m * variances.value[rows] + (1 - m) * var)
    else:
      mean = _interpolate(means.value, pos)
      var = _interpolate(variances.value, pos)
    if self.conditional:
      dense = lambda name: nn.Dense(c, use_bias=False, name=name, precision=self.precision)
      weight = 1 + dense("scale")(cond)[:, None, None, :]
      bias = dense("offset")(cond)[:, None, None, :]
      return (x - mean) / jnp.sqrt(var + self.eps) * weight + bias
    weight = self.param("weight", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    return (x - mean) / jnp.sqrt(var + self.eps) * weight + bias


def _upsample(x):
  """Nearest-neighbour ×2 (F.interpolate(scale_factor=2, mode='nearest'))."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class GenBlock(nn.Module):
  """Bottleneck residual block: 4×(cond-BN, ReLU, conv) 1×1 → 3×3 → 3×3 → 1×1,
  up-sampling before the first 3×3; skip path drops channels, up-samples."""

  in_size: int
  out_size: int
  up_sample: bool
  n_stats: int
  eps: float
  reduction_factor: int = 4
  momentum: float = 0.99
  precision: Any = None

  def setup(self):
    mid = self.in_size // self.reduction_factor
    bn = lambda n: BigGANBatchNorm(
      n, self.n_stats, self.eps, conditional=True, momentum=self.momentum, precision=self.precision
    )
    conv = lambda n, k: nn.Conv(n, (k, k), padding=[(k // 2, k // 2)] * 2, precision=self.precision)
    self.bn_0, self.conv_0 = bn(self.in_size), conv(mid, 1)
    self.bn_1, self.conv_1 = bn(mid), conv(mid, 3)
    self.bn_2, self.conv_2 = bn(mid), conv(mid, 3)
    self.bn_3, self.conv_3 = bn(mid), conv(self.out_size, 1)

  def __call__(self, x, cond, pos, train=False, stats_rows=None):
    x0 = x
    x = self.conv_0(nn.relu(self.bn_0(x, pos, cond, train, stats_rows)))
    x = nn.relu(self.bn_1(x, pos, cond, train, stats_rows))
    if self.up_sample:
      x = _upsample(x)
    x = self.conv_1(x)
    x = self.conv_2(nn.relu(self.bn_2(x, pos, cond, train, stats_rows)))
    x = self.conv_3(nn.relu(self.bn_3(x, pos, cond, train, stats_rows)))
    if self.in_size != self.out_size:
      x0 = x0[..., : self.out_size]
    if self.up_sample:
      x0 = _upsample(x0)
    return x + x0


class SelfAttn(nn.Module):
  """SAGAN self-attention with 2×2 max-pooled keys/values; out = x + γ·o."""

  in_channels: int
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    conv = lambda n, name: nn.Conv(n, (1, 1), use_bias=False, name=name, precision=self.precision)
    pool = lambda y: nn.max_pool(y, (2, 2), strides=(2, 2))
    theta = conv(c // 8, "snconv1x1_theta")(x).reshape(b, h * w, c // 8)
    phi = pool(conv(c // 8, "snconv1x1_phi")(x)).reshape(b, h * w // 4, c // 8)
    g = pool(conv(c // 2, "snconv1x1_g")(x)).reshape(b, h * w // 4, c // 2)
    attn = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi, precision=self.precision), axis=-1)
    attn_g = jnp.einsum("bqk,bkc->bqc", attn, g, precision=self.precision).reshape(b, h, w, c // 2)
    o = conv(c, "snconv1x1_o_conv")(attn_g)
    gamma = self.param("gamma", nn.initializers.zeros, (1,), jnp.float32)
    return x + gamma * o


class BigGANDeep(nn.Module):
  """The BigGAN-deep generator.

  `__call__(z, class_vector, truncation)` -> (B, H, W, 3) images in [-1, 1],
  like the reference `BigGAN.forward(z, class_label, truncation)`.

  Tap `i` ('layer{i}') is the output of the reference's
  `generator.layers[i]` (self-attention included at its index), NHWC.
  `stop_at=tap` returns that tap's features instead of the image;
  `start_after=tap, features=f` feeds `f` in place of that tap's output and
  runs the rest of the network (z is then used only for the condition
  vector). `return_taps=True` returns `(image, [tap0, tap1, …])`.

  Variables: 'params' (kernels NHWC/HWIO, spectral norm folded in) and
  'batch_stats' (running_means / running_vars, (n_stats, C) per norm).
  """

  config: BigGANConfig
  momentum: float = 0.99
  precision: Any = None
  # Rematerialise each GenBlock in the backward pass: only the blocks' inputs
  # are kept, each block's 4 norms/convs are recomputed when its gradient is
  # needed. Same values; less memory than remat of the whole decoder, which
  # re-runs the forward pass and then holds every intermediate anyway.
  remat_blocks: bool = False

  def setup(self):
    cfg = self.config
    # static: train (4) and stats_rows (5), counting self as 0 (flax's convention)
    block = nn.remat(GenBlock, static_argnums=(4, 5)) if self.remat_blocks else GenBlock
    self.embeddings = nn.Dense(cfg.class_embed_dim, use_bias=False, precision=self.precision)
    self.seed_channels = cfg.channel_width * cfg.layers[0][1]
    self.gen_z = nn.Dense(4 * 4 * self.seed_channels, precision=self.precision)
    stages = []
    for kind, arg in cfg.stages():
      if kind == "attention":
        stages.append(SelfAttn(arg, precision=self.precision))
      else:
        up, cin, cout = arg
        stages.append(block(cin, cout, up, cfg.n_stats, cfg.eps, momentum=self.momentum, precision=self.precision))
    self.layers = stages
    out_ch = cfg.channel_width * cfg.layers[-1][2]
    self.bn = BigGANBatchNorm(out_ch, cfg.n_stats, cfg.eps, conditional=False, momentum=self.momentum)
    self.conv_to_rgb = nn.Conv(out_ch, (3, 3), padding=[(1, 1), (1, 1)], precision=self.precision)

  # The forward pass in pieces (used by BigGANGenerator, which compiles each
  # piece once so that generate / encode / decode share the same programs).
  def condition(self, z, class_vector):
    """cond = concat(z, embeddings(class_vector))."""
    return jnp.concatenate([z, self.embeddings(class_vector)], axis=-1)

  def seed(self, cond):
    """gen_z(cond) reshaped to (B, 4, 4, C) — the reference's view is NHWC."""
    return self.gen_z(cond).reshape(cond.shape[0], 4, 4, self.seed_channels)

  def stage(self, h, cond, truncation, index: int, train: bool = False, stats_rows=None):
    """Tap `index`: the reference's `generator.layers[index]`."""
    layer = self.layers[index]
    if isinstance(layer, GenBlock):
      pos = stats_position(truncation, self.config.n_stats) if not train else StatsPosition(0, 0.0)
      # every argument positional and hashable: remat_blocks makes train and stats_rows static
      rows = None if stats_rows is None else tuple(int(r) for r in stats_rows)
      return layer(h, cond, pos, bool(train), rows)
    return layer(h)

  def head(self, h, truncation, train: bool = False, stats_rows=None):
    """Output norm, ReLU, 3×3 conv, first three channels, tanh."""
    pos = stats_position(truncation, self.config.n_stats) if not train else StatsPosition(0, 0.0)
    h = nn.relu(self.bn(h, pos, None, train, stats_rows))
    return jnp.tanh(self.conv_to_rgb(h)[..., :3])

  def __call__(
    self,
    z,
    class_vector,
    truncation,
    train: bool = False,
    *,
    stop_at=None,
    start_after=None,
    features=None,
    return_taps: bool = False,
    stats_rows: Sequence[int] | None = None,
  ):
    cfg = self.config
    if not train:
      truncation = stats_position(truncation, cfg.n_stats)  # validates once
    cond = self.condition(z, class_vector)
    stop = None if stop_at is None else tap_index(cfg, stop_at)
    if start_after is None:
      if features is not None:
        raise ValueError("features given without start_after")
      first = 0
      h = self.seed(cond)
    else:
      if features is None:
        raise ValueError("start_after needs features")
      first = tap_index(cfg, start_after) + 1
      h = features
    taps = []
    for i in range(first, len(self.layers)):
      h = self.stage(h, cond, truncation, i, train, stats_rows)
      taps.append(h)
      if stop == i:
        return h
    if stop is not None:
      raise ValueError(f"stop_at={stop_at!r} lies before start_after={start_after!r}")
    x = self.head(h, truncation, train, stats_rows)
    return (x, taps) if return_taps else x
