"""The generator protocol: how a model reaches the core (docs/adding_a_generator.md)."""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import jax

#: One feature (the tap's shape, no batch axis) → one image (H, W, C): what the solver optimises through.
Decode = Callable[[jax.Array], jax.Array]

Codes = Any  # a pytree of input codes with a leading batch axis


@runtime_checkable
class Generator(Protocol):
  """Anything that can be split at a named layer ``z --d--> f --g--> x``."""

  layers: Sequence[str]
  num_classes: int | None
  """Number of classes of a class-conditional model; ``None`` when unconditional."""

  def sample_codes(self, rng: jax.Array, num: int, classes=None) -> Codes:
    """``num`` codes; ``classes`` (class-conditional models only): one id or ``num`` ids."""

  def class_of(self, codes: Codes) -> Any:
    """The class id of each code, ``(B,)`` ints, or ``None`` when unconditional."""

  def generate(self, codes: Codes) -> jax.Array:
    """``(B, H, W, 3)`` float32 images in ``[-1, 1]``."""

  def encode(self, codes: Codes, layer: str) -> jax.Array:
    """``(B, *feature_shape)`` features at ``layer``."""

  def decode(self, codes: Codes, layer: str, features: jax.Array) -> jax.Array:
    """The rest of the network from ``layer``: features → images."""


def check_layer(gen: Generator, layer: str) -> str:
  """Returns ``layer`` or raises ValueError listing the generator's taps."""
  if layer not in gen.layers:
    raise ValueError(f"unknown layer {layer!r}; this generator's layers are {list(gen.layers)}")
  return layer
