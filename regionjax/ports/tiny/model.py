"""Two small convolutional decoders ``z ↦ 32×32×3`` with named taps, and the encoder that trains them.

* ``upconv``: Dense to 4×4×64, then three blocks of nearest-neighbour ×2 upsampling, a 3×3 convolution and a
  ReLU (64, 32, 16 channels), a 3×3 convolution to RGB and ``tanh``.
* ``resbilinear``: Dense to 4×4×48, then three residual blocks of bilinear ×2 upsampling, two 3×3 convolutions
  with leaky ReLU and a 1×1 skip (48, 32, 16 channels), a 3×3 convolution to RGB and ``tanh``.

Taps (``TAPS``): ``stem`` (4×4), ``block1`` (8×8), ``block2`` (16×16), ``block3`` (32×32), each a block's output,
channels last. ``Decoder(start=tap)`` continues from a feature at ``tap``; ``Decoder(stop=tap)`` returns it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

TAPS = ("stem", "block1", "block2", "block3")
ARCHS = {
  "upconv": dict(stem=64, widths=(64, 32, 16)),
  "resbilinear": dict(stem=48, widths=(48, 32, 16)),
}


def _up(x, method: str):
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), method)


class UpConvBlock(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    return nn.relu(nn.Conv(self.width, (3, 3))(_up(x, "nearest")))


class ResBilinearBlock(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    x = _up(x, "linear")
    h = nn.leaky_relu(nn.Conv(self.width, (3, 3))(x), 0.2)
    h = nn.Conv(self.width, (3, 3))(h)
    return nn.leaky_relu(nn.Conv(self.width, (1, 1))(x) + h, 0.2)


class Decoder(nn.Module):
  """``z (B, z_dim) → (B, 32, 32, 3)`` in ``[-1, 1]``; or from/to a tap (see the module docstring)."""

  arch: str = "upconv"

  @nn.compact
  def __call__(self, x, start: str | None = None, stop: str | None = None):
    spec = ARCHS[self.arch]
    block = UpConvBlock if self.arch == "upconv" else ResBilinearBlock
    stages = [("stem", None)] + [(f"block{k + 1}", w) for k, w in enumerate(spec["widths"])]
    begin = 0 if start is None else TAPS.index(start) + 1
    if begin == 0:  # the stem is always created (init runs from z), even when a call starts later
      dense = nn.Dense(16 * spec["stem"], name="stem")
      b = x.shape[0]
      x = dense(x).reshape(b, 4, 4, spec["stem"])
      x = nn.relu(x) if self.arch == "upconv" else nn.leaky_relu(x, 0.2)
      if stop == "stem":
        return x
    for k, (name, width) in enumerate(stages[1:], start=1):
      if k < begin:
        continue
      x = block(width, name=name)(x)
      if stop == name:
        return x
    return jnp.tanh(nn.Conv(3, (3, 3), name="to_rgb")(x))


class Encoder(nn.Module):
  """``(B, 32, 32, 3) → z (B, z_dim)``: three stride-2 convolutions and a dense layer (training only)."""

  z_dim: int

  @nn.compact
  def __call__(self, x):
    for width in (32, 64, 64):
      x = nn.leaky_relu(nn.Conv(width, (4, 4), strides=(2, 2))(x), 0.2)
    return nn.Dense(self.z_dim)(x.reshape(x.shape[0], -1))
