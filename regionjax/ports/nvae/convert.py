"""Converter: NVAE's ``checkpoint.pt`` -> Flax/orbax variables of the generation path.

    python -m regionjax.ports.nvae.convert --checkpoint checkpoint.pt --out checkpoints/nvae-celeba64

reads the ``torch.save`` zip file with :func:`regionjax.ports.nvlabs_pickle.load_torch_checkpoint`
(tensors, containers and ``argparse.Namespace`` only: no code from the file runs, torch is
not needed), builds the :class:`NVAEConfig` from ``checkpoint['args']`` (missing args filled
as NVAE's evaluate.py does), checks every tensor of the generation path against the
layout the args describe (``layout.state_dict_shapes``), folds weight normalisation
(w ← exp(log_weight_norm)·w/(‖w‖ + 10⁻⁵), neural_operations.normalize_weight_jit) and writes
``DIR/config.json`` and the orbax checkpoint ``DIR/variables``; :func:`regionjax.ports.nvae.load` reads them back.
The encoder's tensors are checked to be the encoder's and dropped.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Mapping

import numpy as np

from regionjax.ports import nvlabs_pickle as nvp
from regionjax.ports import checkpoint
from .config import NVAEConfig
from .layout import DECODER_PREFIXES, ENCODER_PREFIXES, decoder_modules, state_dict_shapes

__all__ = ["RELEASE_HINT", "checkpoint_help", "read_checkpoint", "state_dict_to_variables", "save", "main"]

from regionjax.ports.checkpoint import CONFIG_NAME, VARIABLES_DIR  # noqa: E402,F401 - the directory layout, re-exported

RELEASED_FILE = "checkpoint.pt"
RELEASE_URL = "https://drive.google.com/drive/folders/1KVpw12AzdVjvbfEYM_6_3sxTy93wWkbe"
RELEASE_HINT = (
  f"NVAE's CelebA 64×64 model is {RELEASED_FILE} in the 'celeba_64' folder linked from NVlabs/NVAE's "
  f"README ({RELEASE_URL}; NVIDIA Source Code License for NVAE, non-commercial)"
)


def checkpoint_help(out: str = "checkpoints/nvae-celeba64") -> str:
  """What to download and the one command that converts it."""
  return (
    f"Download the CelebA 64 {RELEASED_FILE} ({RELEASE_URL}) and run once: "
    f"python -m regionjax.ports.nvae.convert --checkpoint {RELEASED_FILE} --out {out}"
  )


def _set(tree: dict[str, Any], path: str, leaf: str, value) -> None:
  for part in path.split("."):
    tree = tree.setdefault(part, {})
  tree[leaf] = value


def fold_weight_norm(weight: np.ndarray, log_weight_norm: np.ndarray) -> np.ndarray:
  """w ← exp(g)·w/(‖w‖ + 10⁻⁵), the norm over (in, kh, kw) per output channel (Conv2D.normalize_weight)."""
  w = np.asarray(weight, np.float64)
  n = np.sqrt(np.sum(w * w, axis=(1, 2, 3))).reshape(-1, 1, 1, 1)
  return np.exp(np.asarray(log_weight_norm, np.float64)) * w / (n + 1e-5)


def state_dict_to_variables(sd: Mapping[str, Any], config: NVAEConfig, source: str = "the checkpoint") -> dict:
  """Reference ``AutoEncoder.state_dict()`` -> ``{'params': …, 'batch_stats': …}`` (NHWC/HWIO, weight norm folded)."""
  expected = state_dict_shapes(config)
  missing = [k for k in expected if k not in sd]
  unexpected = [
    k
    for k in sd
    if k not in expected and k.split(".")[0] not in ENCODER_PREFIXES and not k.endswith(".weight_normalized")
  ]
  if missing or unexpected:
    raise ValueError(
      f"{source} does not hold the NVAE decoder its args describe ({config.tower().__len__()} "
      f"dec_tower modules): "
      + (f"{len(missing)} missing tensors, e.g. {missing[:3]}" if missing else "")
      + ("; " if missing and unexpected else "")
      + (f"{len(unexpected)} unexpected tensors, e.g. {unexpected[:3]}" if unexpected else "")
    )
  arrays = {}
  for k, shape in expected.items():
    arr = np.asarray(sd[k])
    if tuple(arr.shape) != tuple(shape):
      raise ValueError(
        f"{source}: {k} has shape {tuple(arr.shape)}, but the decoder its args describe needs {tuple(shape)}"
      )
    if k.endswith("num_batches_tracked"):
      continue
    if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
      raise ValueError(f"{source}: {k} is not a finite floating-point tensor")
    arrays[k] = arr
  params: dict[str, Any] = {}
  stats: dict[str, Any] = {}
  f32 = lambda a: np.ascontiguousarray(a, np.float32)
  for prefix, kind, a in decoder_modules(config):
    if kind == "prior":
      params["prior_ftr0"] = f32(arrays[prefix].transpose(1, 2, 0))
    elif kind == "conv":
      w = arrays[f"{prefix}.weight"]
      if a[5]:
        w = fold_weight_norm(w, arrays[f"{prefix}.log_weight_norm"])
      _set(params, prefix, "kernel", f32(np.transpose(w, (2, 3, 1, 0))))
      if a[4]:
        _set(params, prefix, "bias", f32(arrays[f"{prefix}.bias"]))
    elif kind in ("bn", "bnswish"):
      base = f"{prefix}.bn" if kind == "bn" else prefix
      _set(params, base, "scale", f32(arrays[f"{base}.weight"]))
      _set(params, base, "bias", f32(arrays[f"{base}.bias"]))
      _set(stats, base, "mean", f32(arrays[f"{base}.running_mean"]))
      _set(stats, base, "var", f32(arrays[f"{base}.running_var"]))
    elif kind == "linear":
      _set(params, prefix, "kernel", f32(arrays[f"{prefix}.weight"].T))
      _set(params, prefix, "bias", f32(arrays[f"{prefix}.bias"]))
  return {"params": params, "batch_stats": stats}


def read_checkpoint(path) -> tuple:
  """NVAE's ``checkpoint.pt`` -> (config, variables)."""
  path = os.fspath(path)
  try:
    data = nvp.load_torch_checkpoint(path)
  except FileNotFoundError:
    raise FileNotFoundError(f"NVAE checkpoint not found: {path}. {RELEASE_HINT}") from None
  except nvp.NVlabsPickleError as e:
    raise ValueError(f"cannot read {path} as an NVAE checkpoint: {e}") from None
  if not isinstance(data, Mapping) or "state_dict" not in data or "args" not in data:
    what = f"a dict with keys {sorted(map(str, data))[:6]}" if isinstance(data, Mapping) else f"a {type(data).__name__}"
    raise ValueError(
      f"{path} is not an NVAE train.py checkpoint: it holds {what}, not {{'state_dict': …, 'args': Namespace, …}}"
    )
  args = data["args"]
  if not isinstance(args, (nvp.TorchNamespace, Mapping)):
    raise ValueError(f"{path}: its 'args' is a {type(args).__name__}, not train.py's argparse.Namespace")
  config = NVAEConfig.from_args(args, source=path)
  sd = data["state_dict"]
  if not isinstance(sd, Mapping):
    raise ValueError(f"{path}: its 'state_dict' is a {type(sd).__name__}, not a state dict")
  sd = {str(k): v for k, v in sd.items()}
  if not any(k.split(".")[0] in DECODER_PREFIXES for k in sd):
    raise ValueError(f"{path}: its state dict has no NVAE decoder tensors (prior_ftr0, dec_tower.*, …)")
  return config, state_dict_to_variables(sd, config, source=path)


def save(directory, config: NVAEConfig, variables: Mapping, *, overwrite: bool = False) -> str:
  """Writes DIR/config.json and the orbax checkpoint DIR/variables (regionjax.ports.checkpoint)."""
  return checkpoint.save(directory, config, variables, collections=("params", "batch_stats"), overwrite=overwrite)


@functools.lru_cache(maxsize=8)
def abstract_variables(config: NVAEConfig) -> dict:
  """ShapeDtypeStructs of the converted variables of ``config`` (what :func:`load` restores)."""
  import jax  # noqa: PLC0415

  zeros = {k: np.zeros(s, np.float32) for k, s in state_dict_shapes(config).items()}
  v = state_dict_to_variables_shapes_only(zeros, config)
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, np.float32), v)


def state_dict_to_variables_shapes_only(sd, config):
  # Weight-norm folding of zeros is harmless: only the shapes are used.
  with np.errstate(all="ignore"):
    return state_dict_to_variables(sd, config, source="(shapes)")


def main(argv: list | None = None) -> int:
  return checkpoint.convert_main(
    argv,
    prog="python -m regionjax.ports.nvae.convert",
    description="Convert NVAE's checkpoint.pt (the generation path) to a Flax/orbax checkpoint for "
    "regionjax.ports.nvae.load(DIR). The file is read as data: no code in it runs. " + RELEASE_HINT,
    source_flag="checkpoint",
    source_help=f"NVAE's {RELEASED_FILE}",
    read=read_checkpoint,
    write=save,
    summary=lambda config: f"{config.dataset}, {len(config.tower())} dec_tower modules",
    parameters="decoder parameters",
  )


if __name__ == "__main__":
  sys.exit(main())
