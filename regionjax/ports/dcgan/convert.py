"""Converts a PyTorch DCGAN generator state dict to the Flax variables of ``regionjax.ports.dcgan``.

    python -m regionjax.ports.dcgan.convert --weights weights.tar --out regionjax/ports/dcgan/weights.msgpack

``--weights`` is the ``torch.save`` file of ``gan-face-generate`` 1.1.1
(``gan_face_generate/weights.tar``, a dict holding ``netG_state_dict``) or a
bare generator state dict. Reading it needs torch (loaded with
``weights_only=True``: tensors and containers only, no code); the output,
flax msgpack, does not.
"""

from __future__ import annotations

import argparse
import sys
from typing import Mapping

import numpy as np

from .model import DCGANConfig

# nn.Sequential indices of the five ConvTranspose2d and four BatchNorm2d modules
# in the DCGAN-tutorial generator (``self.main``).
CONV_INDEX = (0, 3, 6, 9, 12)
BN_INDEX = (1, 4, 7, 10)


def expected_shapes(config: DCGANConfig) -> dict[str, tuple]:
  """The state-dict names and shapes of ``config``'s generator (PyTorch layout)."""
  ins = (config.nz,) + config.widths[:-1]
  shapes = {}
  for k, (i, o) in enumerate(zip(ins, config.widths)):
    shapes[f"main.{CONV_INDEX[k]}.weight"] = (i, o, 4, 4)
    if k < 4:
      for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"main.{BN_INDEX[k]}.{name}"] = (o,)
  return shapes


def config_of(state: Mapping[str, np.ndarray]) -> DCGANConfig:
  """Reads nz, ngf and nc off the kernel shapes."""
  try:
    first, last = state["main.0.weight"].shape, state["main.12.weight"].shape
  except KeyError as e:
    raise ValueError(
      f"not a DCGAN generator state dict: no {e.args[0]!r}; its keys start {sorted(state)[:4]}"
    ) from None
  return DCGANConfig(nz=int(first[0]), ngf=int(first[1]) // 8, nc=int(last[1]))


def state_dict_to_variables(state: Mapping[str, np.ndarray]) -> tuple[DCGANConfig, dict]:
  """PyTorch names/layouts → ``{'params', 'batch_stats'}`` of ``DCGAN``.

  A ConvTranspose2d weight (in, out, kh, kw) becomes the HWIO kernel of the
  equivalent dilated convolution: spatially flipped, (kh, kw, in, out).
  """
  state = {k: np.asarray(v) for k, v in state.items() if not k.endswith("num_batches_tracked")}
  config = config_of(state)
  want = expected_shapes(config)
  missing = sorted(set(want) - set(state))
  extra = sorted(set(state) - set(want))
  if missing or extra:
    raise ValueError(
      f"state dict does not match a DCGAN generator (nz={config.nz}, ngf={config.ngf}): "
      f"missing {missing[:4]}, unexpected {extra[:4]}"
    )
  bad = [(k, state[k].shape, s) for k, s in want.items() if tuple(state[k].shape) != s]
  if bad:
    raise ValueError(f"state dict shapes differ from a DCGAN generator: {bad[:3]}")
  params, stats = {}, {}
  for k in range(5):
    w = state[f"main.{CONV_INDEX[k]}.weight"].astype(np.float32)
    params[f"block{k}"] = {"kernel": np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 0, 1))}
    if k < 4:
      b = BN_INDEX[k]
      params[f"block{k}"]["scale"] = state[f"main.{b}.weight"].astype(np.float32)
      params[f"block{k}"]["bias"] = state[f"main.{b}.bias"].astype(np.float32)
      stats[f"block{k}"] = {
        "mean": state[f"main.{b}.running_mean"].astype(np.float32),
        "var": state[f"main.{b}.running_var"].astype(np.float32),
      }
  return config, {"params": params, "batch_stats": stats}


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
  """The generator state dict in ``path`` (``netG_state_dict`` inside, or bare)."""
  import torch  # only the converter needs torch

  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types for a bad file
    raise ValueError(f"{path} is not a readable torch.save file: {' '.join(str(e).split())[:200]}") from None
  if isinstance(obj, Mapping) and "netG_state_dict" in obj:
    obj = obj["netG_state_dict"]
  if not isinstance(obj, Mapping):
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
  return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}


def save(variables: Mapping, path: str) -> None:
  """Writes the variables (flax msgpack) atomically (``regionjax.io.atomic_write_bytes``: the old file
  or the whole new one, never part; mode from the umask); the config is implied by the shapes."""
  import flax

  from regionjax import io as io_lib

  io_lib.atomic_write_bytes(path, flax.serialization.to_bytes(variables))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--weights", required=True, help="torch.save file (gan_face_generate/weights.tar)")
  parser.add_argument("--out", required=True, help="output .msgpack")
  args = parser.parse_args(argv)
  try:
    config, variables = state_dict_to_variables(read_torch_state_dict(args.weights))
    save(variables, args.out)
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.out} (nz={config.nz}, ngf={config.ngf}, nc={config.nc})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
