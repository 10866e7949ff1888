"""EDM's DDPM++ U-Net with EDM preconditioning, in Flax (NHWC): SiD's one-step generator.

References: Karras et al., "Elucidating the Design Space of Diffusion-Based
Generative Models" (EDM, NeurIPS 2022; NVlabs/edm ``training/networks.py``:
``EDMPrecond``, ``SongUNet``, ``UNetBlock``) and Zhou et al., "Score identity
Distillation" (SiD, ICML 2024; mingyuanzhou/SiD), whose generator is an EDM
network fine-tuned to map noise to images in one step:

    x = D(σ_init·z; σ_init),  z ~ N(0, I),  σ_init = 2.5,
    D(y; σ) = c_skip(σ)·y + c_out(σ)·F(c_in(σ)·y; c_noise(σ))            (EDM Table 1)
    c_skip = σ_d² / (σ² + σ_d²),  c_out = σ·σ_d / √(σ² + σ_d²),
    c_in = 1 / √(σ² + σ_d²),      c_noise = ln(σ) / 4,   σ_d = 0.5.

With σ = 2.5: c_skip·σ = 0.0962, c_out = 0.4903, c_in = 0.3922, so the image is
``0.0962·z + 0.4903·F``: the c_skip term adds the input noise straight to the
output (a decode from any tap adds it too, from the codes).

F is the DDPM++ U-Net (``SongUNet``): a positional embedding of c_noise
(sin/cos swapped), two SiLU MLP layers → emb; an encoder of 3×3 conv,
residual blocks and down-sampling blocks whose every output is kept as a skip;
a decoder whose blocks concatenate the last skip; group-norm, SiLU, 3×3 conv.
Each residual block (``UNetBlock`` with adaptive_scale=False, skip_scale=√½):

    h = conv0(silu(norm0(x)))            (↑/↓ resampling first when up/down)
    h = conv1(silu(norm1(h + affine(emb))))
    x = (h + skip(x)) · √½               (skip: 1×1 conv when the shape changes)
    x = (proj(attention(norm2(x))) + x) · √½     (blocks with attention)

Resampling with EDM's filter [1, 1] is a 2×2 mean (down) and nearest ×2 (up).
Augmentation labels are zero (SiD's training/sampling), so ``map_augment``
(a bias-free linear map) contributes nothing and is not part of this port.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .config import SiDConfig

__all__ = ["EDMSongUNet", "precond"]

Array = Any


def precond(sigma: float, sigma_data: float):
  """EDM's (c_skip, c_out, c_in, c_noise) at ``sigma`` (float32 as the reference)."""
  s = np.float32(sigma)
  sd = np.float32(sigma_data)
  c_skip = sd**2 / (s**2 + sd**2)
  c_out = s * sd / np.sqrt(s**2 + sd**2)
  c_in = np.float32(1) / np.sqrt(sd**2 + s**2)
  c_noise = np.log(s) / np.float32(4)
  return tuple(np.float32(c) for c in (c_skip, c_out, c_in, c_noise))


class Linear(nn.Module):
  features: int
  use_bias: bool = True
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    k = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features), jnp.float32)
    y = jnp.dot(x, k, precision=self.precision)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    return y


def _down(x):
  """EDM Conv2d down-sampling with filter [1, 1]: 2×2 mean, stride 2."""
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _up(x):
  """EDM Conv2d up-sampling with filter [1, 1]: nearest neighbour ×2."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class Conv(nn.Module):
  """EDM ``Conv2d``: optional resampling, then a k×k conv (padding k//2) and bias."""

  features: int
  kernel: int = 3
  up: bool = False
  down: bool = False
  precision: Any = None

  @nn.compact
  def __call__(self, x):
    if self.up:
      x = _up(x)
    if self.down:
      x = _down(x)
    k = self.param(
      "kernel", nn.initializers.lecun_normal(), (self.kernel, self.kernel, x.shape[-1], self.features), jnp.float32
    )
    p = self.kernel // 2
    y = jax.lax.conv_general_dilated(
      x, k, (1, 1), [(p, p), (p, p)], dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision
    )
    return y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)


class GroupNorm(nn.Module):
  """EDM ``GroupNorm``: min(32, C // 4) groups of contiguous channels."""

  eps: float = 1e-6

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    g = min(32, c // 4)
    xg = x.reshape(b, h, w, g, c // g)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = jnp.square(xg - mean).mean(axis=(1, 2, 4), keepdims=True)
    y = ((xg - mean) / jnp.sqrt(var + self.eps)).reshape(b, h, w, c)
    scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    return y * scale + bias


class UNetBlock(nn.Module):
  """EDM ``UNetBlock`` as DDPM++ configures it (see module docstring)."""

  in_channels: int
  out_channels: int
  up: bool = False
  down: bool = False
  attention: bool = False
  num_heads: int = 1
  eps: float = 1e-6
  precision: Any = None

  def setup(self):
    o, p = self.out_channels, self.precision
    self.norm0 = GroupNorm(self.eps)
    self.conv0 = Conv(o, 3, up=self.up, down=self.down, precision=p)
    self.affine = Linear(o, precision=p)
    self.norm1 = GroupNorm(self.eps)
    self.conv1 = Conv(o, 3, precision=p)
    if o != self.in_channels or self.up or self.down:
      self.skip = Conv(o, 1, up=self.up, down=self.down, precision=p)
    if self.attention:
      self.norm2 = GroupNorm(self.eps)
      self.qkv = Conv(3 * o, 1, precision=p)
      self.proj = Conv(o, 1, precision=p)

  def __call__(self, x, emb):
    scale = np.float32(math.sqrt(0.5))
    orig = x
    x = self.conv0(nn.silu(self.norm0(x)))
    x = nn.silu(self.norm1(x + self.affine(emb)[:, None, None, :]))
    x = self.conv1(x)
    x = x + (self.skip(orig) if self.out_channels != self.in_channels or self.up or self.down else orig)
    x = x * scale
    if self.attention:
      b, h, w, c = x.shape
      nh = self.num_heads
      # the reference reshapes qkv's 3C channels to (heads, C/heads, 3): q, k, v interleave
      qkv = self.qkv(self.norm2(x)).reshape(b, h * w, nh, c // nh, 3)
      q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
      logits = jnp.einsum("bqhc,bkhc->bhqk", q, k / np.float32(np.sqrt(c // nh)), precision=self.precision)
      wgt = jax.nn.softmax(logits, axis=-1)
      a = jnp.einsum("bhqk,bkhc->bqhc", wgt, v, precision=self.precision).reshape(b, h, w, c)
      x = (self.proj(a) + x) * scale
    return x


class EDMSongUNet(nn.Module):
  """``EDMPrecond(SongUNet)``; ``run`` evaluates D(σ_init·z; σ_init).

  Parameters mirror the reference's ``model.*`` names: ``map_layer0``,
  ``enc_64x64_block0/conv0`` … (kernels HWIO / (in, out)).
  """

  config: SiDConfig
  sigma_init: float = 2.5
  precision: Any = None

  def setup(self):
    cfg, p = self.config, self.precision
    self.map_layer0 = Linear(cfg.emb_channels, precision=p)
    self.map_layer1 = Linear(cfg.emb_channels, precision=p)
    mods = {}
    for part, name, kind, cin, cout, _res, attn in cfg.blocks():
      key = f"{part}_{name}"
      if kind == "conv":
        mods[key] = Conv(cout, 3, precision=p, name=key)
      else:
        mods[key] = UNetBlock(cin, cout, up=kind == "up", down=kind == "down", attention=attn, precision=p, name=key)
    self.blocks = mods
    res = cfg.img_resolution
    self.aux_norm = GroupNorm(1e-6, name=f"dec_{res}x{res}_aux_norm")
    self.aux_conv = Conv(cfg.img_channels, 3, precision=p, name=f"dec_{res}x{res}_aux_conv")

  def embed(self, c_noise):
    """Positional embedding (endpoint=True, max_positions=1e4), sin/cos
    swapped, two SiLU linear layers."""
    n = self.config.noise_channels // 2
    freqs = jnp.arange(n, dtype=jnp.float32) / np.float32(n - 1)
    freqs = jnp.power(np.float32(1 / 10000), freqs)
    x = jnp.outer(c_noise, freqs)
    emb = jnp.concatenate([jnp.sin(x), jnp.cos(x)], axis=1)
    emb = nn.silu(self.map_layer0(emb))
    return nn.silu(self.map_layer1(emb))

  def _apply(self, i, h, emb, skips):
    part, name, kind = self.config.blocks()[i][:3]
    blk = self.blocks[f"{part}_{name}"]
    if part == "enc":
      h = blk(h) if kind == "conv" else blk(h, emb)
      skips.append(h)
      return h
    if kind == "block":
      h = jnp.concatenate([h, skips.pop()], axis=-1)
    return blk(h, emb)

  def prefix(self, z, start: int):
    """What the network after tap ``start`` needs besides the tap's features,
    recomputed from the codes: ``(emb, skips)`` — the embedding and the
    encoder outputs still waiting for a decoder block (for an encoder tap,
    those before it)."""
    ops = self.config.blocks()
    _, _, c_in, c_noise = precond(self.sigma_init, self.config.sigma_data)
    emb = self.embed(jnp.full((z.shape[0],), c_noise, jnp.float32))
    n_enc = sum(1 for op in ops if op[0] == "enc")
    skips = []
    h = c_in * (np.float32(self.sigma_init) * z)
    for i in range(min(start, n_enc)):
      h = self._apply(i, h, emb, skips)
    if start >= n_enc:
      used = sum(1 for op in ops[n_enc : start + 1] if op[2] == "block")
      skips = skips[: len(skips) - used]
    return emb, tuple(skips)

  def tail(self, z, emb, skips, features, start: int):
    """The network after tap ``start`` with ``features`` as its output
    (for an encoder tap also its skip), given :meth:`prefix`'s values."""
    ops = self.config.blocks()
    c_skip, c_out, _, _ = precond(self.sigma_init, self.config.sigma_data)
    skips = list(skips)
    if ops[start][0] == "enc":
      skips.append(features)
    h = features
    for i in range(start + 1, len(ops)):
      h = self._apply(i, h, emb, skips)
    return c_skip * (np.float32(self.sigma_init) * z) + c_out * self.head(h)

  def head(self, h):
    """F's last layers: group norm, SiLU, 3×3 conv."""
    return self.aux_conv(nn.silu(self.aux_norm(h)))

  def run(self, z, start: int | None = None, features=None, stop: int | None = None, return_taps: bool = False):
    """The generator from codes ``z`` (B, H, W, C).

    ``stop=i`` returns tap i's output; ``start=i, features=f`` puts ``f`` in
    place of tap i's output and runs the rest (:meth:`prefix` then
    :meth:`tail`: the embedding and the encoder skips that later blocks
    need are recomputed from ``z``; if tap i is in the encoder, ``f`` is
    also its skip). ``return_taps`` returns ``(image, [tap outputs])``.
    """
    if start is not None:
      emb, skips = self.prefix(z, start)
      return self.tail(z, emb, skips, features, start)
    ops = self.config.blocks()
    c_skip, c_out, c_in, c_noise = precond(self.sigma_init, self.config.sigma_data)
    y = np.float32(self.sigma_init) * z
    emb = self.embed(jnp.full((z.shape[0],), c_noise, jnp.float32))
    skips, taps = [], []
    h = c_in * y
    for i in range(len(ops)):
      h = self._apply(i, h, emb, skips)
      if return_taps:
        taps.append(h)
      if stop == i:
        return h
    x = c_skip * y + c_out * self.head(h)
    return (x, taps) if return_taps else x

  def __call__(self, z):
    return self.run(z)
