"""A real pretrained generator: DCGAN for 64×64 faces, the project's default model.

The weights shipped here (``weights.msgpack``) are converted from the PyPI
package ``gan-face-generate`` 1.1.1 (MIT licence, © 2023 Chien Liu; see
``LICENSE`` here), a DCGAN trained on DigiFace-1M, whose terms allow
non-commercial research use only. ``load()`` needs neither torch nor a download.

    import regionjax.ports.dcgan as dcgan
    gen = dcgan.load()
    codes = gen.sample_codes(jax.random.PRNGKey(0), 4)
    x = gen.generate(codes)                      # (4, 64, 64, 3) in [-1, 1]
    f = gen.encode(codes, "layer2")              # (4, 16, 16, 128)
"""

from __future__ import annotations

import os

from .generator import DCGANGenerator
from .model import DCGAN, DCGANConfig

__all__ = ["DCGAN", "DCGANConfig", "DCGANGenerator", "DEFAULT_LAYER", "WEIGHTS", "load"]

#: The tap the face config explains: 32×32×64 features (D = 65536); see configs/default.py.
DEFAULT_LAYER = "layer3"

HERE = os.path.dirname(os.path.abspath(__file__))
WEIGHTS = os.path.join(HERE, "weights.msgpack")


def load(path: str | None = None, config: DCGANConfig | None = None) -> DCGANGenerator:
  """The generator from converted weights (default: the shipped face model)."""
  import flax
  import jax
  import jax.numpy as jnp

  path = path or WEIGHTS
  config = config or DCGANConfig()
  if not os.path.exists(path):
    raise FileNotFoundError(
      f"DCGAN weights {path} not found; convert them with: "
      f"python -m regionjax.ports.dcgan.convert --weights weights.tar --out {path}"
    )
  # the variables' structure and shapes only: no random initialiser is compiled or run (seconds on a CPU)
  template = jax.eval_shape(DCGAN(config).init, jax.random.PRNGKey(0), jnp.zeros((1, config.nz)))
  with open(path, "rb") as fh:
    try:
      variables = flax.serialization.from_bytes(template, fh.read())
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(
        f"{path} is not a DCGAN checkpoint for nz={config.nz}, ngf={config.ngf}: {' '.join(str(e).split())[:200]}"
      ) from None
  shapes = jax.tree.map(lambda x: tuple(x.shape), template)
  got = jax.tree.map(jnp.shape, variables)
  if shapes != got:
    raise ValueError(f"{path} holds a DCGAN of other shapes than nz={config.nz}, ngf={config.ngf}")
  return DCGANGenerator(config, variables)
