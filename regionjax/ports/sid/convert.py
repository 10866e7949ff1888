"""Converter: a SiD / EDM network pickle -> Flax variables (orbax).

    python -m regionjax.ports.sid.convert --pickle network-snapshot-1.200000-498176.pkl --out checkpoints/sid-ffhq64

reads the pickle with :mod:`regionjax.ports.nvlabs_pickle` (no code from the file runs,
torch is not needed), checks that ``pickle['ema']`` is an ``EDMPrecond``
around the DDPM++ ``SongUNet``, and writes ``DIR/config.json`` and the orbax
checkpoint ``DIR/variables``; :func:`load` reads them back.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

import numpy as np

from regionjax.ports import nvlabs_pickle as nvp
from regionjax.ports import checkpoint
from .config import SIGMA_INIT, SiDConfig

__all__ = ["RELEASE_HINT", "checkpoint_help", "read_pickle", "state_dict_to_variables", "save", "load", "main"]

from regionjax.ports.checkpoint import CONFIG_NAME, VARIABLES_DIR  # noqa: E402,F401 - the directory layout, re-exported

RELEASED_FILE = "network-snapshot-1.200000-498176.pkl"
RELEASE_URL = "https://huggingface.co/UT-Austin-PML/SiD/resolve/main/ffhq64/alpha1.2/" + RELEASED_FILE
RELEASE_HINT = (
  f"SiD's FFHQ 64×64 one-step generator is {RELEASED_FILE} ({RELEASE_URL}, listed in "
  "mingyuanzhou/SiD's sid_generate.py; weights under CC BY-NC-SA 4.0)"
)


def checkpoint_help(out: str = "checkpoints/sid-ffhq64") -> str:
  """What to download and the one command that converts it."""
  return (
    f"Download {RELEASE_URL} and run once: python -m regionjax.ports.sid.convert --pickle {RELEASED_FILE} --out {out}"
  )


def _flax_path(key: str):
  """``model.enc.64x64_block0.conv0.weight`` -> (('enc_64x64_block0', 'conv0'), 'weight')."""
  parts = key.split(".")
  if parts[0] != "model" or len(parts) < 3:
    return None
  parts = parts[1:]
  if parts[0] in ("enc", "dec"):
    parts = [f"{parts[0]}_{parts[1]}"] + parts[2:]
  return tuple(parts[:-1]), parts[-1]


def _expected_shapes(config: SiDConfig) -> dict[tuple, tuple]:
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from .model import EDMSongUNet  # noqa: PLC0415

  res, c = config.img_resolution, config.img_channels
  shapes = jax.eval_shape(lambda: EDMSongUNet(config).init(jax.random.PRNGKey(0), jnp.zeros((1, res, res, c))))
  flat = {}

  def walk(tree, path):
    for k, v in tree.items():
      if isinstance(v, Mapping):
        walk(v, path + (k,))
      else:
        flat[path + (k,)] = tuple(v.shape)

  walk(shapes["params"], ())
  return flat


def state_dict_to_variables(sd: Mapping[str, np.ndarray], config: SiDConfig, source: str = "the pickle") -> dict:
  """Reference ``EDMPrecond.state_dict()`` -> ``{'params': …}`` of ``EDMSongUNet(config)``."""
  return checkpoint.assemble_params(
    _entries(sd, source), _expected_shapes(config), source=source, what="DDPM++ network"
  )


def _entries(sd: Mapping[str, np.ndarray], source: str):
  """``(key, Flax path, array in Flax's layout)`` per tensor; EDM's fixed resampling filters are checked and
  dropped, as is the augmentation map (zero augmentation labels: a bias-free map of zeros adds nothing)."""
  for key, value in sd.items():
    arr = np.asarray(value)
    if key.endswith(".resample_filter"):
      if arr.shape != (1, 1, 2, 2) or not np.allclose(arr, 0.25):
        raise ValueError(f"{source}: {key} is not EDM's [1, 1] resampling filter")
      continue
    if key.startswith("model.map_augment."):
      continue
    path = _flax_path(key)
    if path is None:
      yield key, None, arr
      continue
    mods, leaf = path
    if arr.ndim == 4:
      name, arr = "kernel", arr.transpose(2, 3, 1, 0)
    elif arr.ndim == 2:
      name, arr = "kernel", arr.T
    else:
      name = "scale" if leaf == "weight" else leaf
    yield key, mods + (name,), arr


def read_pickle(path) -> tuple:
  """An NVlabs pickle holding ``{'ema': EDMPrecond(SongUNet)}`` -> (config, variables)."""
  path = os.fspath(path)
  net, sd = nvp.load_network(
    path, "ema", "EDMPrecond", family="SiD/EDM", hint=RELEASE_HINT, role="EDM's EDMPrecond (SiD's generator)"
  )
  config = SiDConfig.from_init_kwargs(net.init_kwargs, source=path)
  return config, state_dict_to_variables(sd, config, source=path)


def save(directory, config: SiDConfig, variables: Mapping, *, overwrite: bool = False) -> str:
  """Writes DIR/config.json and the orbax checkpoint DIR/variables (regionjax.ports.checkpoint)."""
  return checkpoint.save(directory, config, variables, overwrite=overwrite)


def _abstract(config: SiDConfig):
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from .model import EDMSongUNet  # noqa: PLC0415

  res, c = config.img_resolution, config.img_channels
  shapes = jax.eval_shape(lambda: EDMSongUNet(config).init(jax.random.PRNGKey(0), jnp.zeros((1, res, res, c))))
  return {"params": shapes["params"]}


def load(directory, **generator_kwargs):
  """A directory written by :func:`save` / the CLI -> ``SiDGenerator`` (no torch)."""
  from .generator import SiDGenerator  # noqa: PLC0415

  config, variables = checkpoint.load(
    directory, family="SiD", config_cls=SiDConfig, abstract=_abstract, help_text=checkpoint_help(directory)
  )
  return SiDGenerator(config, variables, **generator_kwargs)


def main(argv: list | None = None) -> int:
  return checkpoint.convert_main(
    argv,
    prog="python -m regionjax.ports.sid.convert",
    description="Convert a SiD (EDM DDPM++) network pickle to a Flax/orbax checkpoint for "
    "regionjax.ports.sid.load(DIR). The pickle is read as data: no code in it runs. " + RELEASE_HINT,
    source_flag="pickle",
    source_help=f"the network pickle, e.g. {RELEASED_FILE}",
    read=read_pickle,
    write=save,
    summary=lambda config: f"{config.img_resolution}×{config.img_resolution}, σ_init {SIGMA_INIT}",
  )


if __name__ == "__main__":
  sys.exit(main())
