"""The DCGAN generator (Radford et al. 2016; the PyTorch DCGAN-tutorial layout) in Flax.

    z (B, nz) → [ConvT 4×4 s1 p0 → BN → ReLU] → 4×4×8g      tap 'layer0'
              → [ConvT 4×4 s2 p1 → BN → ReLU] → 8×8×4g      tap 'layer1'
              → [ConvT 4×4 s2 p1 → BN → ReLU] → 16×16×2g    tap 'layer2'
              → [ConvT 4×4 s2 p1 → BN → ReLU] → 32×32×g     tap 'layer3'
              → [ConvT 4×4 s2 p1 → tanh]      → 64×64×3     image in [-1, 1]

NHWC throughout. A PyTorch ``ConvTranspose2d(k, stride s, padding p)`` is the
ordinary convolution of the input dilated by ``s`` (``lhs_dilation``), padded
by ``k − 1 − p`` on each side, with the kernel flipped in space and its in/out
axes swapped; the converter stores kernels already in that form (HWIO), so the
model is a plain dilated convolution. Batch norm runs with the stored running
statistics (eval mode, ε = 1e-5, PyTorch's default).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

BN_EPS = 1e-5  # torch.nn.BatchNorm2d default


@dataclasses.dataclass(frozen=True)
class DCGANConfig:
  """``nz``: latent size; ``ngf``: base width; ``nc``: image channels.

  The released face generator (``gan-face-generate`` 1.1.1) has nz = 100,
  ngf = 64, nc = 3 (its ``inference.py``).
  """

  nz: int = 100
  ngf: int = 64
  nc: int = 3

  @property
  def widths(self) -> tuple[int, ...]:
    """Output channels of the five transposed convolutions."""
    g = self.ngf
    return (8 * g, 4 * g, 2 * g, g, self.nc)

  @property
  def tap_names(self) -> tuple[str, ...]:
    return tuple(f"layer{i}" for i in range(4))

  def feature_shape(self, i: int) -> tuple[int, int, int]:
    res = 4 * 2**i
    return (res, res, self.widths[i])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return (64, 64, self.nc)


def conv_transpose(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """PyTorch ``ConvTranspose2d`` (no bias) with an HWIO kernel already flipped."""
  k = kernel.shape[0]
  pad = k - 1 - padding
  return jax.lax.conv_general_dilated(
    x,
    kernel,
    window_strides=(1, 1),
    padding=[(pad, pad), (pad, pad)],
    lhs_dilation=(stride, stride),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    precision=jax.lax.Precision.HIGHEST,
  )


class Block(nn.Module):
  """Transposed convolution, then (for all but the last) eval batch norm and ReLU."""

  features: int
  in_features: int
  stride: int
  padding: int
  last: bool = False

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.normal(0.02), (4, 4, self.in_features, self.features))
    x = conv_transpose(x, kernel, self.stride, self.padding)
    if self.last:
      return jnp.tanh(x)
    scale = self.param("scale", nn.initializers.ones, (self.features,))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    mean = self.variable("batch_stats", "mean", jnp.zeros, (self.features,))
    var = self.variable("batch_stats", "var", jnp.ones, (self.features,))
    x = (x - mean.value) * jax.lax.rsqrt(var.value + BN_EPS) * scale + bias
    return jax.nn.relu(x)


class DCGAN(nn.Module):
  """The five blocks; ``stage(i)`` runs block ``i`` alone (taps between them)."""

  config: DCGANConfig

  def setup(self):
    c = self.config
    ins = (c.nz,) + c.widths[:-1]
    self.blocks = [
      Block(w, i, 1 if k == 0 else 2, 0 if k == 0 else 1, last=(k == 4), name=f"block{k}")
      for k, (i, w) in enumerate(zip(ins, c.widths))
    ]

  def stage(self, h, i: int):
    return self.blocks[i](h)

  def __call__(self, z):
    h = z.reshape(z.shape[0], 1, 1, -1)
    for block in self.blocks:
      h = block(h)
    return h
