"""Converter: a StyleGAN2-ADA network pickle -> Flax variables (orbax).

    python -m regionjax.ports.stylegan2.convert --pickle afhqcat.pkl --out checkpoints/stylegan2-afhqcat

reads the pickle with :mod:`regionjax.ports.nvlabs_pickle` (no code from the file runs,
torch is not needed), checks that ``pickle['G_ema']`` is a StyleGAN2-ADA
``Generator`` of the supported variant, and writes ``DIR/config.json`` and the
orbax checkpoint ``DIR/variables``; :func:`load` reads them back.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

import numpy as np

from regionjax.ports import nvlabs_pickle as nvp
from regionjax.ports import checkpoint
from .config import StyleGAN2Config

__all__ = [
  "RELEASE_HINT",
  "RELEASED_FILE",
  "checkpoint_help",
  "read_pickle",
  "state_dict_to_variables",
  "save",
  "load",
  "main",
]

from regionjax.ports.checkpoint import CONFIG_NAME, VARIABLES_DIR  # noqa: E402,F401 - the directory layout, re-exported

RELEASED_FILE = "afhqcat.pkl"
RELEASE_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/" + RELEASED_FILE
RELEASE_HINT = (
  f"StyleGAN2-ADA's AFHQ cat 512×512 generator is {RELEASED_FILE} ({RELEASE_URL}, listed in "
  "NVlabs/stylegan2-ada-pytorch's README; NVIDIA Source Code License, non-commercial)"
)


def checkpoint_help(out: str = "checkpoints/stylegan2-afhqcat") -> str:
  """What to download and the one command that converts it."""
  return f"Download {RELEASE_URL} and run once: python -m regionjax.ports.stylegan2.convert --pickle {RELEASED_FILE} --out {out}"


def _expected_shapes(config: StyleGAN2Config) -> dict[tuple, tuple]:
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from .model import StyleGAN2  # noqa: PLC0415

  shapes = jax.eval_shape(lambda: StyleGAN2(config).init(jax.random.PRNGKey(0), jnp.zeros((1, config.z_dim))))
  flat = {}

  def walk(tree, path):
    for k, v in tree.items():
      if isinstance(v, Mapping):
        walk(v, path + (k,))
      else:
        flat[path + (k,)] = tuple(v.shape)

  walk(shapes["params"], ())
  return flat


def _flax_path(key: str):
  """``synthesis.b8.conv0.affine.weight`` -> ('b8', 'conv0', 'affine', 'weight'); ``mapping.*`` kept."""
  parts = key.split(".")
  if parts[0] == "synthesis" and len(parts) >= 3:
    return tuple(parts[1:])
  if parts[0] == "mapping" and len(parts) >= 2:
    return tuple(parts)
  return None


def state_dict_to_variables(sd: Mapping[str, np.ndarray], config: StyleGAN2Config, source: str = "the pickle") -> dict:
  """Reference ``Generator.state_dict()`` -> ``{'params': …}`` of ``StyleGAN2(config)``
  (names and layouts kept; the [1,3,3,1] resampling filters are checked and dropped)."""
  from .model import resample_filter  # noqa: PLC0415

  filt = resample_filter()

  def entries():
    for key, value in sd.items():
      arr = np.asarray(value)
      if key.endswith(".resample_filter"):
        if arr.shape != (4, 4) or not np.allclose(arr, filt, rtol=0, atol=1e-7):
          raise ValueError(f"{source}: {key} is not StyleGAN2's [1, 3, 3, 1] resampling filter")
        continue
      yield key, _flax_path(key), arr

  return checkpoint.assemble_params(entries(), _expected_shapes(config), source=source, what="StyleGAN2 generator")


def read_pickle(path) -> tuple:
  """An NVlabs pickle holding ``{'G_ema': Generator, …}`` -> (config, variables)."""
  path = os.fspath(path)
  net, sd = nvp.load_network(
    path, "G_ema", "Generator", family="StyleGAN2-ADA", hint=checkpoint_help(), role="StyleGAN2-ADA's Generator"
  )
  config = StyleGAN2Config.from_init_kwargs(net.init_kwargs, source=path)
  return config, state_dict_to_variables(sd, config, source=path)


def save(directory, config: StyleGAN2Config, variables: Mapping, *, overwrite: bool = False) -> str:
  """Writes DIR/config.json and the orbax checkpoint DIR/variables (regionjax.ports.checkpoint)."""
  return checkpoint.save(directory, config, variables, overwrite=overwrite)


def _abstract(config: StyleGAN2Config):
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  from .model import StyleGAN2  # noqa: PLC0415

  shapes = jax.eval_shape(lambda: StyleGAN2(config).init(jax.random.PRNGKey(0), jnp.zeros((1, config.z_dim))))
  return {"params": shapes["params"]}


def load(directory, **generator_kwargs):
  """A directory written by :func:`save` / the CLI -> ``StyleGAN2Generator`` (no torch)."""
  from .generator import StyleGAN2Generator  # noqa: PLC0415

  config, variables = checkpoint.load(
    directory, family="StyleGAN2", config_cls=StyleGAN2Config, abstract=_abstract, help_text=checkpoint_help(directory)
  )
  return StyleGAN2Generator(config, variables, **generator_kwargs)


def main(argv: list | None = None) -> int:
  return checkpoint.convert_main(
    argv,
    prog="python -m regionjax.ports.stylegan2.convert",
    description="Convert a StyleGAN2-ADA network pickle (G_ema) to a Flax/orbax checkpoint for "
    "regionjax.ports.stylegan2.load(DIR). The pickle is read as data: no code in it runs. " + RELEASE_HINT,
    source_flag="pickle",
    source_help=f"the network pickle, e.g. {RELEASED_FILE}",
    read=read_pickle,
    write=save,
    summary=lambda config: f"{config.img_resolution}×{config.img_resolution}, {len(config.resolutions)} blocks",
  )


if __name__ == "__main__":
  sys.exit(main())
