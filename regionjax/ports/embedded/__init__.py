"""The embedded default generator: a small BigGAN-deep trained on procedural scenes.

``load()`` returns a ``regionjax.ports.biggan.BigGANGenerator`` (the generator protocol of
docs/adding_a_generator.md) built from the weights shipped beside this file, so ``python
main.py`` does real work with no downloads. See README.md here for what it is
and how to retrain it (``python -m regionjax.ports.embedded.train``).
"""

from __future__ import annotations

import os

from .scenes import CLASS_COLORS, CLASS_NAMES, NUM_CLASSES

__all__ = ["CLASS_COLORS", "CLASS_NAMES", "NUM_CLASSES", "CONFIG", "DEFAULT_LAYER", "WEIGHTS", "load"]

#: The tap recommended for the explainer (8×8×32 features, D = 2048).
DEFAULT_LAYER = "layer2"

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "weights.msgpack")
CONFIG = os.path.join(HERE, "config.json")


def load(truncation: float = 1.0, directory: str | None = None):
  """The trained embedded generator (no torch, no downloads): a
  ``regionjax.ports.biggan.BigGANGenerator`` whose codes are {'z': (B, 32), 'class_vector':
  (B, 5), 'truncation'}; classes are ``CLASS_NAMES``."""
  import flax
  import jax

  from regionjax.ports.biggan import BigGANConfig, BigGANDeep, BigGANGenerator, stats_position

  directory = directory or HERE
  weights, config_path = os.path.join(directory, "weights.msgpack"), os.path.join(directory, "config.json")
  for path in (weights, config_path):
    if not os.path.exists(path):
      raise FileNotFoundError(
        f"the embedded generator's {os.path.basename(path)} is missing from {directory}; "
        f"retrain it with: python -m regionjax.ports.embedded.train --out {directory}"
      )
  config = BigGANConfig.from_json(config_path)
  module = BigGANDeep(config)
  import jax.numpy as jnp

  template = module.init(
    jax.random.PRNGKey(0),
    jnp.zeros((1, config.z_dim)),
    jnp.zeros((1, config.num_classes)),
    stats_position(1.0, config.n_stats),
  )
  with open(weights, "rb") as fh:
    try:
      variables = flax.serialization.from_bytes(template, fh.read())
    except (ValueError, KeyError) as e:
      raise ValueError(f"{weights} does not match {config_path}: {e}") from None
  return BigGANGenerator(config, variables, truncation=truncation)
