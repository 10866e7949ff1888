"""Converter: a SiD / EDM network pickle -> Flax variables (orbax).

    python -m regionjax.ports.sid.convert --pickle network-snapshot-1.200000-498176.pkl --out checkpoints/sid-ffhq64

reads the pickle with :mod:`regionjax.ports.nvlabs_pickle` (no code from the file runs,
torch is not needed), checks that ``pickle['ema']`` is an ``EDMPrecond``
around the DDPM++ ``SongUNet``, and writes ``DIR/config.json`` and the orbax
checkpoint ``DIR/variables``; :func:`load` reads them back.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Mapping

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
  expected = _expected_shapes(config)
  params: dict[str, Any] = {}
  got = {}
  unexpected = []
  for key, value in sd.items():
    arr = np.asarray(value)
    if key.endswith(".resample_filter"):
      if arr.shape != (1, 1, 2, 2) or not np.allclose(arr, 0.25):
        raise ValueError(f"{source}: {key} is not EDM's [1, 1] resampling filter")
      continue
    if key.startswith("model.map_augment."):
      continue  # zero augmentation labels: a bias-free map of zeros adds nothing
    path = _flax_path(key)
    if path is None:
      unexpected.append(key)
      continue
    mods, leaf = path
    if arr.ndim == 4:
      name, arr = "kernel", arr.transpose(2, 3, 1, 0)
    elif arr.ndim == 2:
      name, arr = "kernel", arr.T
    elif leaf == "weight":
      name = "scale"
    else:
      name = leaf
    flat_key = mods + (name,)
    if flat_key not in expected:
      unexpected.append(key)
      continue
    if tuple(arr.shape) != expected[flat_key]:
      raise ValueError(
        f"{source}: {key} has shape {tuple(np.shape(value))}, but the network its constructor "
        f"arguments describe needs {expected[flat_key]} (after transposing)"
      )
    if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
      raise ValueError(f"{source}: {key} is not a finite floating-point tensor")
    got[flat_key] = np.ascontiguousarray(arr, np.float32)
  missing = [".".join(k) for k in expected if k not in got]
  if missing or unexpected:
    raise ValueError(
      f"{source} does not hold the DDPM++ network its constructor arguments describe: "
      + (f"{len(missing)} missing tensors, e.g. {missing[:3]}" if missing else "")
      + ("; " if missing and unexpected else "")
      + (f"{len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}" if unexpected else "")
    )
  for k, v in got.items():
    d = params
    for part in k[:-1]:
      d = d.setdefault(part, {})
    d[k[-1]] = v
  return {"params": params}


def read_pickle(path) -> tuple:
  """An NVlabs pickle holding ``{'ema': EDMPrecond(SongUNet)}`` -> (config, variables)."""
  path = os.fspath(path)
  try:
    data = nvp.load(path)
  except FileNotFoundError:
    raise FileNotFoundError(f"SiD network pickle not found: {path}. {RELEASE_HINT}") from None
  except nvp.NVlabsPickleError as e:
    raise ValueError(f"cannot read {path} as an NVlabs network pickle: {e}") from None
  if not isinstance(data, Mapping) or "ema" not in data:
    what = f"a dict with keys {sorted(map(str, data))[:5]}" if isinstance(data, Mapping) else f"a {type(data).__name__}"
    raise ValueError(f"{path} is not a SiD/EDM network pickle: it holds {what}, not {{'ema': network}}")
  net = data["ema"]
  if not isinstance(net, nvp.PersistentObject) or net.class_name != "EDMPrecond":
    name = net.class_name if isinstance(net, nvp.PersistentObject) else type(net).__name__
    raise ValueError(f"{path} holds a {name} network, not EDM's EDMPrecond (SiD's generator)")
  config = SiDConfig.from_init_kwargs(net.init_kwargs, source=path)
  try:
    sd = net.state_dict()
  except nvp.NVlabsPickleError as e:
    raise ValueError(f"{path}: {e}") from None
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
  parser = argparse.ArgumentParser(
    prog="python -m regionjax.ports.sid.convert",
    description="Convert a SiD (EDM DDPM++) network pickle to a Flax/orbax checkpoint for regionjax.ports.sid.load(DIR). "
    "The pickle is read as data: no code in it runs. " + RELEASE_HINT,
  )
  parser.add_argument("--pickle", required=True, help=f"the network pickle, e.g. {RELEASED_FILE}")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint in --out")
  args = parser.parse_args(argv)
  try:
    config, variables = read_pickle(args.pickle)
    out = save(args.out, config, variables, overwrite=args.overwrite)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  n = checkpoint.num_parameters(variables["params"])
  print(f"wrote {out} ({n:,} parameters, {config.img_resolution}×{config.img_resolution}, σ_init {SIGMA_INIT})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
