"""StyleGAN2 (stylegan2-ada-pytorch ``Generator``) in Flax, float32, NHWC.

Parameters keep the reference's names and layouts (``mapping/fc0/weight``
(out, in), ``b8/conv0/weight`` (out, in, 3, 3), ``b4/const`` (C, 4, 4),
``noise_const`` (res, res), …), so the converter only renames; the model
applies the equalised-learning-rate gains at run time as the reference does.

Mapping (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN", §2; stylegan2-ada-pytorch ``MappingNetwork``):
``x = z / sqrt(mean(z²) + 1e-8)``, then 8 fully connected layers with
learning-rate multiplier 0.01 (weight gain ``0.01/sqrt(fan_in)``, bias gain
0.01), leaky ReLU (slope 0.2) × √2; ``w`` is broadcast to ``num_ws`` rows and
truncated towards ``w_avg``: ``w' = w_avg + ψ (w − w_avg)`` on the first
``cutoff`` rows.

Synthesis layer (modulated convolution, ibid. eq. (1)–(3)):
``s = A(w)`` (affine, bias init 1), ``y = conv(x ⊙ s, W)`` and
``y ⊙ (Σ_{i,k} (W s)² + 1e-8)^{-1/2}`` (demodulation) — computed "unfused"
(scale activations, convolve with the shared weight, scale again), which the
reference also offers and which equals its fused per-sample weights up to
rounding — then ``+ strength · noise``, ``+ bias``, leaky ReLU × √2 and a
clamp to ±conv_clamp. Upsampling layers are a stride-2 transposed
convolution followed by the [1,3,3,1] ⊗ [1,3,3,1] / 64 low-pass filter
(gain 4), the order of the reference's ``conv2d_resample``.

ToRGB: ``s = A(w)/sqrt(C)``, 1×1 modulated convolution without
demodulation, bias, clamp. Skip architecture: ``img = upsample(img) + ToRGB(x)``
per block, ``upsample`` the same [1,3,3,1] filter after zero insertion.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .config import StyleGAN2Config

__all__ = ["StyleGAN2", "NOISE_MODES", "resample_filter", "upsample2d"]

NOISE_MODES = ("const", "none", "random")
_SQRT2 = np.float32(math.sqrt(2.0))
_ALPHA = 0.2  # leaky ReLU slope


def resample_filter() -> np.ndarray:
  """The normalised 4×4 low-pass filter [1,3,3,1] ⊗ [1,3,3,1] / 64 (float32)."""
  k = np.array([1, 3, 3, 1], np.float32)
  f = np.outer(k, k)
  return (f / f.sum()).astype(np.float32)


def _fir(x, gain: float, pad: tuple, dilate: int, precision):
  """Depthwise correlation of NHWC ``x`` with the (symmetric) low-pass filter
  times ``gain``, after inserting ``dilate − 1`` zeros between pixels and
  padding ``pad`` = (before, after) on both spatial axes."""
  c = x.shape[-1]
  f = jnp.asarray(np.tile((resample_filter() * np.float32(gain))[:, :, None, None], (1, 1, 1, c)))
  return jax.lax.conv_general_dilated(
    x,
    f,
    (1, 1),
    [pad, pad],
    lhs_dilation=(dilate, dilate),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=c,
    precision=precision,
  )


def upsample2d(img, precision=None):
  """The reference's ``upfirdn2d.upsample2d(x, f, up=2)``: zeros inserted after
  every pixel, padding (2, 1), the filter × 4; (B, H, W, C) -> (B, 2H, 2W, C)."""
  # lhs dilation inserts zeros only between pixels: one more zero of padding after
  return _fir(img, 4.0, (2, 2), 2, precision)


def _lrelu_clamp(x, clamp):
  x = jnp.where(x >= 0, x, np.float32(_ALPHA) * x) * _SQRT2
  if clamp is not None:
    x = jnp.clip(x, -np.float32(clamp), np.float32(clamp))
  return x


def _noise(mode: str, noise_const, seed, salt: int, batch: int, res: int):
  """Unit noise (1 or B, res, res) of a synthesis layer, or None."""
  if mode == "none":
    return None
  if mode == "const":
    return noise_const[None]
  if mode == "random":
    if seed is None:
      raise ValueError("noise_mode 'random' needs codes['noise_seed']")

    def one(s):
      return jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(s), salt), (res, res), jnp.float32)

    return jax.vmap(one)(jnp.asarray(seed).astype(jnp.uint32).reshape(batch))
  raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")


class FullyConnected(nn.Module):
  """``FullyConnectedLayer``: weight (out, in) × lr_multiplier/sqrt(in), bias × lr_multiplier."""

  in_features: int
  out_features: int
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  activation: str = "linear"
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.normal(1.0), (self.out_features, self.in_features))
    b = self.param("bias", nn.initializers.constant(self.bias_init), (self.out_features,))
    w = w * np.float32(self.lr_multiplier / math.sqrt(self.in_features))
    if self.lr_multiplier != 1:
      b = b * np.float32(self.lr_multiplier)
    y = jnp.matmul(x, w.T, precision=self.precision) + b
    return y if self.activation == "linear" else _lrelu_clamp(y, None)


class Mapping(nn.Module):
  """``MappingNetwork`` (unconditional): z -> w, plus the buffer ``w_avg``."""

  config: StyleGAN2Config
  precision: Any = None

  @nn.compact
  def __call__(self, z):
    cfg = self.config
    x = z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=1, keepdims=True) + np.float32(1e-8))
    for i in range(cfg.mapping_layers):
      fin = cfg.z_dim if i == 0 else cfg.w_dim
      x = FullyConnected(
        fin,
        cfg.w_dim,
        lr_multiplier=cfg.mapping_lr_multiplier,
        activation="lrelu",
        precision=self.precision,
        name=f"fc{i}",
      )(x)
    w_avg = self.param("w_avg", nn.initializers.zeros, (cfg.w_dim,))
    return x, w_avg


class SynthesisLayer(nn.Module):
  """``SynthesisLayer``: modulated 3×3 convolution (optionally ×2 upsampling),
  noise, bias, leaky ReLU × √2, clamp."""

  in_channels: int
  out_channels: int
  w_dim: int
  resolution: int
  up: bool = False
  conv_clamp: float | None = None
  precision: Any = None

  @nn.compact
  def __call__(self, x, w, noise_mode: str = "const", noise_seed=None, salt: int = 0):
    """``noise_mode``: 'const' (the stored ``noise_const``), 'none', or
    'random' (per code, N(0, 1) drawn from ``noise_seed`` (B,) and ``salt``)."""
    affine = FullyConnected(self.w_dim, self.in_channels, bias_init=1.0, precision=self.precision, name="affine")
    styles = affine(w)  # (B, I)
    weight = self.param("weight", nn.initializers.normal(1.0), (self.out_channels, self.in_channels, 3, 3))
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
    noise_const = self.param("noise_const", nn.initializers.normal(1.0), (self.resolution, self.resolution))
    strength = self.param("noise_strength", nn.initializers.zeros, ())
    noise = _noise(noise_mode, noise_const, noise_seed, salt, x.shape[0], self.resolution)
    wsq = jnp.einsum("oikl,bi->bo", jnp.square(weight), jnp.square(styles), precision=self.precision)
    dcoefs = jax.lax.rsqrt(wsq + np.float32(1e-8))  # (B, O)
    x = x * styles[:, None, None, :]
    dn = ("NHWC", "HWIO", "NHWC")
    if self.up:
      # conv_transpose2d(stride 2) == correlation of the zero-inserted input
      # with the spatially flipped kernel, padded by 2; then the filter (gain 4)
      k = jnp.transpose(weight[:, :, ::-1, ::-1], (2, 3, 1, 0))
      x = jax.lax.conv_general_dilated(
        x, k, (1, 1), [(2, 2), (2, 2)], lhs_dilation=(2, 2), dimension_numbers=dn, precision=self.precision
      )
      x = _fir(x, 4.0, (1, 1), 1, self.precision)
    else:
      k = jnp.transpose(weight, (2, 3, 1, 0))
      x = jax.lax.conv_general_dilated(x, k, (1, 1), [(1, 1), (1, 1)], dimension_numbers=dn, precision=self.precision)
    x = x * dcoefs[:, None, None, :]
    if noise is not None:
      x = x + (noise * strength)[..., None]
    return _lrelu_clamp(x + bias, self.conv_clamp)


class ToRGB(nn.Module):
  """``ToRGBLayer``: 1×1 modulated convolution without demodulation, bias, clamp."""

  in_channels: int
  out_channels: int
  w_dim: int
  conv_clamp: float | None = None
  precision: Any = None

  @nn.compact
  def __call__(self, x, w):
    styles = FullyConnected(self.w_dim, self.in_channels, bias_init=1.0, precision=self.precision, name="affine")(
      w
    ) * np.float32(1 / math.sqrt(self.in_channels))
    weight = self.param("weight", nn.initializers.normal(1.0), (self.out_channels, self.in_channels, 1, 1))
    bias = self.param("bias", nn.initializers.zeros, (self.out_channels,))
    y = jnp.einsum("bhwi,oi->bhwo", x * styles[:, None, None, :], weight[:, :, 0, 0], precision=self.precision)
    y = y + bias
    if self.conv_clamp is not None:
      y = jnp.clip(y, -np.float32(self.conv_clamp), np.float32(self.conv_clamp))
    return y


class StyleGAN2(nn.Module):
  """The generator; parameters ``mapping`` and ``b4`` … ``b{res}`` (each with
  ``conv0`` (not b4), ``conv1``, ``torgb``; b4 also ``const``).

  Entry points: :meth:`ws` (mapping and truncation), :meth:`synthesis`
  (blocks from the start, or from a tap with given features and RGB sum).
  """

  config: StyleGAN2Config
  precision: Any = None

  def setup(self):
    cfg, p = self.config, self.precision
    self.mapping = Mapping(cfg, precision=p, name="mapping")
    self.blocks = {r: _Block(cfg, r, precision=p, name=f"b{r}") for r in cfg.resolutions}

  def ws(self, z, psi=1.0, cutoff: int | None = None):
    """(B, num_ws, w_dim) w vectors of codes ``z``, truncated with ψ on the first ``cutoff`` rows (all if None)."""
    cfg = self.config
    w, w_avg = self.mapping(z)
    ws = jnp.broadcast_to(w[:, None, :], (w.shape[0], cfg.num_ws, cfg.w_dim))
    if isinstance(psi, (int, float)) and psi == 1:
      return ws  # the reference skips truncation at ψ = 1
    n = cfg.num_ws if cutoff is None else min(int(cutoff), cfg.num_ws)
    trunc = w_avg + jnp.asarray(psi, jnp.float32) * (ws[:, :n] - w_avg)
    return jnp.concatenate([trunc, ws[:, n:]], axis=1)

  def synthesis(
    self,
    ws,
    noise_mode: str = "const",
    noise_seed=None,
    start: int | None = None,
    features=None,
    img=None,
    stop: int | None = None,
    until_res: int | None = None,
    return_taps: bool = False,
  ):
    """The synthesis network on ``ws``.

    ``start=t, features=f, img=rgb``: tap ``t``'s output replaced by ``f``,
    ``rgb`` the RGB running sum entering that tap's block (None for b4),
    then the rest. ``stop=t``: returns tap ``t``'s output. ``until_res=r``:
    returns the RGB sum entering block ``r`` (what a decode from a tap of
    block ``r`` needs). ``return_taps``: ``(image, [tap outputs])``.
    """
    cfg = self.config
    taps = cfg.taps()
    start_res = taps[start][1] if start is not None else None
    x = features if start is not None else None
    img = img if start is not None else None
    out = []
    for t, (_, res, op, _) in enumerate(taps):
      if until_res is not None and res >= until_res:
        return img
      if start is not None and res < start_res:
        continue
      blk = self.blocks[res]
      if start is None or t > start:
        x = blk.op(op, x, ws, noise_mode, noise_seed)
      if return_taps:
        out.append(x)
      if stop == t:
        return x
      if op == "block":
        img = blk.rgb(x, img, ws)
    return (img, out) if return_taps else img

  def __call__(self, z):
    return self.synthesis(self.ws(z))


class _Block(nn.Module):
  """``SynthesisBlock`` ('skip'): [const,] conv0 (×2 up), conv1, ToRGB."""

  config: StyleGAN2Config
  resolution: int
  precision: Any = None

  def setup(self):
    cfg, r, p = self.config, self.resolution, self.precision
    ch = cfg.channels()
    if r == 4:
      self.const = self.param("const", nn.initializers.normal(1.0), (ch[r], r, r))
    else:
      self.conv0 = SynthesisLayer(ch[r // 2], ch[r], cfg.w_dim, r, up=True, conv_clamp=cfg.conv_clamp, precision=p)
    self.conv1 = SynthesisLayer(ch[r], ch[r], cfg.w_dim, r, conv_clamp=cfg.conv_clamp, precision=p)
    self.torgb = ToRGB(ch[r], cfg.img_channels, cfg.w_dim, conv_clamp=cfg.conv_clamp, precision=p)

  def op(self, op, x, ws, noise_mode, noise_seed):
    cfg, r = self.config, self.resolution
    wi = cfg.w_index(r)
    b = ws.shape[0]
    if op == "conv0":
      return self.conv0(x, ws[:, wi], noise_mode, noise_seed, 2 * r)
    if op == "conv1":
      if r == 4:
        x = jnp.broadcast_to(jnp.transpose(self.const, (1, 2, 0))[None], (b, r, r, self.const.shape[0]))
        return self.conv1(x, ws[:, 0], noise_mode, noise_seed, 2 * r + 1)
      return self.conv1(x, ws[:, wi + 1], noise_mode, noise_seed, 2 * r + 1)
    return x  # 'block': the block's feature output is conv1's

  def rgb(self, x, img, ws):
    """``img = upsample(img) + ToRGB(x)`` (ToRGB uses the w after the block's convs)."""
    cfg, r = self.config, self.resolution
    y = self.torgb(x, ws[:, cfg.w_index(r) + (1 if r == 4 else 2)])
    return y if img is None else upsample2d(img, self.precision) + y
