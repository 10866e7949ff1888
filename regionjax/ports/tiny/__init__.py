"""Tiny generators trained here in about two minutes on data that installed packages ship (README.md here).

``load('digits')`` (the TUNING generator of README "Faithful by default?") and ``load('photos')`` (HELD OUT: never
used to choose a setting) return a :class:`TinyGenerator` with the generator protocol of
docs/adding_a_generator.md: codes ``{'z': (B, z_dim)}``, images ``(B, 32, 32, 3)`` in ``[-1, 1]``, taps
``model.TAPS``. Retrain with ``python -m regionjax.ports.tiny.train --name digits`` (seeded).
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp

from regionjax.ports.tiny import model as model_lib

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ("digits", "photos")
#: The tap explained by default: the 16×16 block, half the image side, as the face model's default tap.
DEFAULT_LAYER = "block2"


class TinyGenerator:
  """A trained :class:`model.Decoder` behind the generator protocol; codes ``z = μ + L ε``, ``ε ~ N(0, I)``."""

  layers = model_lib.TAPS

  def __init__(self, config: dict, variables: dict, fingerprint: str = ""):
    self.config = config
    self.name = config["name"]
    self.module = model_lib.Decoder(config["arch"])
    self.params = variables["params"]
    self.z_mean, self.z_chol = jnp.asarray(variables["z_mean"]), jnp.asarray(variables["z_chol"])
    self.fingerprint = fingerprint
    self._run = jax.jit(
      lambda p, x, start, stop: self.module.apply({"params": p}, x, start, stop), static_argnums=(2, 3)
    )

  def sample_codes(self, rng, num: int, classes=None):
    eps = jax.random.normal(rng, (num, self.z_mean.shape[0]), jnp.float32)
    return {"z": self.z_mean + eps @ self.z_chol.T}

  def _check(self, layer):
    if layer not in self.layers:
      raise ValueError(f"unknown layer {layer!r}; this generator's layers are {list(self.layers)}")

  def generate(self, codes):
    return self._run(self.params, jnp.asarray(codes["z"]), None, None)

  def encode(self, codes, layer: str):
    self._check(layer)
    return self._run(self.params, jnp.asarray(codes["z"]), None, layer)

  def decode(self, codes, layer: str, features):
    self._check(layer)
    return self.module.apply({"params": self.params}, features, layer, None)


def load(name: str = "digits", directory: str | None = None) -> TinyGenerator:
  """The shipped tiny generator ``name`` (one of ``NAMES``)."""
  import flax

  directory = directory or HERE
  if name not in NAMES:
    raise ValueError(f"unknown tiny generator {name!r}; use one of {list(NAMES)}")
  weights, config_path = os.path.join(directory, f"{name}.msgpack"), os.path.join(directory, f"{name}.json")
  for path in (weights, config_path):
    if not os.path.exists(path):
      raise FileNotFoundError(
        f"the tiny generator's {os.path.basename(path)} is missing from {directory}; "
        f"retrain it with: python -m regionjax.ports.tiny.train --name {name} --out {directory}"
      )
  with open(config_path) as fh:
    config = json.load(fh)
  with open(weights, "rb") as fh:
    blob = fh.read()
  variables = flax.serialization.msgpack_restore(blob)  # nested dicts of arrays: no template to build
  if set(variables) != {"params", "z_mean", "z_chol"} or variables["z_mean"].shape != (config["z_dim"],):
    raise ValueError(f"{weights} does not match {config_path}")
  return TinyGenerator(config, variables, fingerprint=f"tiny-{name}-" + hashlib.sha256(blob).hexdigest()[:16])
