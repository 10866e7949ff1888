"""Random-weight NVAE decoders in the released layout, for parity tests and end-to-end runs.

:func:`random_state_dict` fills every tensor of the generation path (``layout.state_dict_shapes``)
with numpy random numbers, keeping activations O(1): weight-normalised convolutions get
‖w‖ = exp(log_weight_norm) ≈ 1 (0.2 in the prior's ``dec_sampler``, 0.5 in
``image_conditional``), the other convolutions and the SE layers N(0, 1/fan_in),
batch-norm affines 1 + N(0, 0.1²) and N(0, 0.1²), ``prior_ftr0`` U(0, 1) (as the reference's
``torch.rand``). The batch-norm statistics are (0, 1) unless given; the parity fixtures store
statistics calibrated by the reference (BN in training mode on a batch of samples).
:func:`write_random_checkpoint` writes ``{'state_dict', 'args', 'epoch', …}`` with ``torch.save``
(torch is needed only there), as NVAE's train.py does.
"""

from __future__ import annotations

import argparse
import collections
from typing import Mapping

import numpy as np

from .config import NVAEConfig
from .layout import decoder_modules, state_dict_shapes

__all__ = ["random_state_dict", "train_args", "write_random_checkpoint"]


def random_state_dict(config: NVAEConfig, seed: int = 0, bn_stats: Mapping | None = None) -> dict:
  """The generation path's state dict (torch layout, float32 numpy) with random, non-degenerate weights."""
  rs = np.random.RandomState(seed)
  out = collections.OrderedDict()
  normal = lambda shape, std, loc=0.0: (loc + std * rs.standard_normal(shape)).astype(np.float32)
  for prefix, kind, a in decoder_modules(config):
    if kind == "prior":
      out[prefix] = rs.uniform(0.0, 1.0, a).astype(np.float32)
    elif kind == "conv":
      cin, cout, k, groups, bias, wn = a
      fan_in = cin // groups * k * k
      out[f"{prefix}.weight"] = normal((cout, cin // groups, k, k), 1.0 / np.sqrt(fan_in))
      if bias:
        out[f"{prefix}.bias"] = normal((cout,), 0.1)
      if wn:  # ‖w‖ ≈ 1; the prior's and the output's convolutions smaller (O(1) latents and logits)
        gain = 0.2 if prefix.startswith("dec_sampler") else 0.5 if prefix.startswith("image_conditional") else 1.0
        out[f"{prefix}.log_weight_norm"] = normal((cout, 1, 1, 1), 0.1, np.log(gain))
    elif kind in ("bn", "bnswish"):
      base = f"{prefix}.bn" if kind == "bn" else prefix
      c = a[0]
      out[f"{base}.weight"] = normal((c,), 0.1, 1.0)
      out[f"{base}.bias"] = normal((c,), 0.1)
      out[f"{base}.running_mean"] = np.zeros((c,), np.float32)
      out[f"{base}.running_var"] = np.ones((c,), np.float32)
      out[f"{base}.num_batches_tracked"] = np.array(0, np.int64)
    elif kind == "linear":
      cin, cout = a
      out[f"{prefix}.weight"] = normal((cout, cin), 1.0 / np.sqrt(cin))
      out[f"{prefix}.bias"] = normal((cout,), 0.1)
  assert list(out) == list(state_dict_shapes(config))
  for k, v in (bn_stats or {}).items():
    if k not in out or out[k].shape != np.shape(v):
      raise ValueError(f"batch-norm statistic {k} does not belong to this config's decoder")
    out[k] = np.asarray(v, np.float32)
  return out


def train_args(config: NVAEConfig, **extra) -> argparse.Namespace:
  """An ``argparse.Namespace`` as NVAE's train.py stores it (the fields this port reads, plus encoder ones)."""
  d = dict(config.to_dict())
  d.update(
    num_channels_enc=config.num_channels_dec,
    num_preprocess_cells=2,
    num_cell_per_cond_enc=2,
    res_dist=True,
    batch_size=16,
    epochs=90,
  )
  d.update(extra)
  return argparse.Namespace(**d)


def write_random_checkpoint(
  path, config: NVAEConfig, seed: int = 0, bn_stats: Mapping | None = None, args: argparse.Namespace | None = None
) -> None:
  """``torch.save({'state_dict', 'args', 'epoch', 'global_step'}, path)`` with random decoder weights."""
  import torch  # noqa: PLC0415

  sd = collections.OrderedDict(
    (k, torch.from_numpy(np.array(v))) for k, v in random_state_dict(config, seed, bn_stats).items()
  )
  sd["stem.weight"] = torch.zeros(config.num_channels_dec, 3, 3, 3)  # an encoder tensor: read and dropped
  torch.save({"epoch": 1, "state_dict": sd, "args": args or train_args(config), "global_step": 1}, path)
