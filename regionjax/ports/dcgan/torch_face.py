"""The face DCGAN from its own PyTorch package, explained through ``rj.from_torch`` (no port, no converter).

    python main.py --config=configs/from_torch.py        # the default run, through the bridge

``module()`` is ``gan_face_generate.models.Generator`` (PyPI ``gan-face-generate``
1.1.1, the package ``regionjax/ports/dcgan``'s weights were converted from) with the
package's own ``weights.tar``, in eval mode; ``load()`` wraps it with
``rj.from_torch`` so that its codes, taps and layouts are those of the Flax
port (``regionjax.ports.dcgan.load()``): codes ``{'z': (B, 100)}``, features channels
last. Needs torch, torchax and ``pip install --no-deps gan-face-generate==1.1.1``
(its other requirements — torchvision, wandb, … — are for its training
script, not for the module; docs/torch.md §Installing).
"""

from __future__ import annotations

import os

__all__ = ["TAPS", "load", "module", "weights_path"]

#: The Flax port's taps and the PyTorch module paths of the same outputs (each block's ReLU).
TAPS = {"layer0": "main.2", "layer1": "main.5", "layer2": "main.8", "layer3": "main.11"}

NZ, NGF, NC = 100, 64, 3  # the package's inference.py


def weights_path() -> str:
  """``weights.tar`` inside the installed ``gan_face_generate`` package."""
  try:
    import gan_face_generate
  except ImportError:
    raise ImportError(
      "the face GAN's PyTorch module is in the package gan-face-generate: pip install --no-deps "
      "gan-face-generate==1.1.1 (docs/torch.md §Installing)"
    ) from None
  return os.path.join(os.path.dirname(gan_face_generate.__file__), "weights.tar")


def module(model_config=None):
  """The package's ``Generator`` with its released weights, in eval mode (``model_config`` is not used)."""
  del model_config
  import torch

  from .convert import read_torch_state_dict

  path = weights_path()  # first: it explains a missing package
  from gan_face_generate.models import Generator

  net = Generator(0, NC, NZ, NGF)
  net.load_state_dict({k: torch.from_numpy(v) for k, v in read_torch_state_dict(path).items()})
  return net.eval()


def _inputs(codes):
  z = codes["z"]
  return (z.reshape(z.shape[0], NZ, 1, 1),)


def _sample_codes(rng, num, classes=None):
  import jax
  import jax.numpy as jnp

  if classes is not None:
    raise ValueError("the DCGAN is unconditional: it takes no classes")
  return {"z": jax.random.normal(rng, (int(num), NZ), jnp.float32)}


def load(model_config=None, *, split=None, verify: bool = True):
  """The package's module through ``rj.from_torch``, split at ``model_config.layer`` (default ``'main.11'``).

  ``split`` (one path or several) overrides the config's layer.
  """
  from regionjax import torch_bridge

  if split is None:
    split = model_config.layer if model_config is not None else TAPS["layer3"]
  return torch_bridge.from_torch(module(), split=split, sample_codes=_sample_codes, inputs=_inputs, verify=verify)
