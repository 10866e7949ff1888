"""The state-dict layout of NVAE's generation path (the reference's module names and tensor shapes).

:func:`decoder_modules` lists every parametrised module of ``prior_ftr0``, ``dec_tower``,
``dec_sampler``, ``post_process`` and ``image_conditional`` of an ``AutoEncoder`` built
from a config, as ``(prefix, kind, shape info)``; :func:`state_dict_shapes` expands them
into the reference's ``state_dict()`` keys and shapes. The converter checks a
checkpoint against it; ``regionjax.ports.nvae.testing`` fills it with random weights.
"""

from __future__ import annotations

import collections

from .config import CHANNEL_MULT, NVAEConfig

__all__ = ["decoder_modules", "state_dict_shapes", "DECODER_PREFIXES", "ENCODER_PREFIXES"]

#: Top-level module names of the generation path, and of the encoder (read and ignored).
DECODER_PREFIXES = ("prior_ftr0", "dec_tower", "dec_sampler", "post_process", "image_conditional")
ENCODER_PREFIXES = (
  "stem",
  "pre_process",
  "enc_tower",
  "enc0",
  "enc_sampler",
  "nf_cells",
  "enc_kv",
  "dec_kv",
  "query",
  "stem_decoder",
)

# Module = (prefix, kind, args): kind 'conv' args (cin, cout, k, groups, bias, weight_norm);
# 'bn' args (c,) for nn.BatchNorm inside NVAE's SyncBatchNorm wrapper (keys prefix.bn.*);
# 'bnswish' args (c,) for SyncBatchNormSwish (keys prefix.*); 'linear' args (cin, cout); 'prior' args (C, h, w).
Module = tuple[str, str, tuple]


def _inverted_residual(prefix: str, cin: int, cout: int, upsample: bool, ex: int, k: int, g: int) -> list[Module]:
  o = 1 if upsample else 0
  hidden = int(round(cin * ex))
  groups = hidden if g == 0 else g
  return [
    (f"{prefix}.{o}", "bn", (cin,)),
    (f"{prefix}.{o + 1}.conv.0", "conv", (cin, hidden, 1, 1, False, False)),
    (f"{prefix}.{o + 1}.conv.1", "bnswish", (hidden,)),
    (f"{prefix}.{o + 2}.conv.0", "conv", (hidden, hidden, k, groups, False, False)),
    (f"{prefix}.{o + 2}.conv.1", "bnswish", (hidden,)),
    (f"{prefix}.{o + 3}", "conv", (hidden, cout, 1, 1, False, False)),
    (f"{prefix}.{o + 4}", "bn", (cout,)),
  ]


def _cell(config: NVAEConfig, prefix: str, kind: str, cin: int, cout: int, cell_type: str) -> list[Module]:
  mods = []
  if kind == "up":  # get_skip_connection(stride −1): Sequential(UpSample(), Conv2D(C, C/2, 1)) (no bias)
    mods.append((f"{prefix}.skip.1", "conv", (cin, cin // CHANNEL_MULT, 1, 1, False, True)))
  ex, k, g = config.cell_op(cell_type)
  mods += _inverted_residual(f"{prefix}._ops.0.conv", cin, cout, kind == "up", ex, k, g)
  if config.use_se:
    hidden = max(cout // 16, 4)
    mods += [(f"{prefix}.se.se.0", "linear", (cout, hidden)), (f"{prefix}.se.se.2", "linear", (hidden, cout))]
  return mods


def decoder_modules(config: NVAEConfig) -> list[Module]:
  h, w, c = config.prior_shape
  mods: list[Module] = [("prior_ftr0", "prior", (c, h, w))]
  latent = config.num_latent_per_group
  for i, m in enumerate(config.tower()):
    p = f"dec_tower.{i}"
    if m.kind == "combiner":  # DecCombinerCell: Conv2D(C + L, C, 1, bias)
      mods.append((f"{p}.conv", "conv", (m.cin + latent, m.cout, 1, 1, True, True)))
    else:
      mods += _cell(config, p, m.kind, m.cin, m.cout, "up_dec" if m.kind == "up" else "normal_dec")
  for m in config.tower():
    if m.kind == "combiner" and m.group > 0:  # Sequential(ELU, Conv2D(C, 2L, 1, bias))
      mods.append((f"dec_sampler.{m.group - 1}.1", "conv", (m.cin, 2 * latent, 1, 1, True, True)))
  post = config.post_process()
  for j, m in enumerate(post):
    mods += _cell(config, f"post_process.{j}", m.kind, m.cin, m.cout, "up_post" if m.kind == "up" else "normal_post")
  cin = post[-1].cout if post else config.tower()[-1].cout
  mods.append(("image_conditional.1", "conv", (cin, 10 * config.num_mixture_dec, 3, 1, True, True)))
  return mods


def state_dict_shapes(config: NVAEConfig) -> dict[str, tuple]:
  """The reference ``AutoEncoder.state_dict()`` keys of the generation path and their shapes."""
  out: dict[str, tuple] = collections.OrderedDict()
  for prefix, kind, a in decoder_modules(config):
    if kind == "prior":
      out[prefix] = a
    elif kind == "conv":
      cin, cout, k, groups, bias, wn = a
      out[f"{prefix}.weight"] = (cout, cin // groups, k, k)
      if bias:
        out[f"{prefix}.bias"] = (cout,)
      if wn:
        out[f"{prefix}.log_weight_norm"] = (cout, 1, 1, 1)
    elif kind in ("bn", "bnswish"):
      base = f"{prefix}.bn" if kind == "bn" else prefix
      for leaf in ("weight", "bias", "running_mean", "running_var"):
        out[f"{base}.{leaf}"] = a
      out[f"{base}.num_batches_tracked"] = ()
    elif kind == "linear":
      cin, cout = a
      out[f"{prefix}.weight"] = (cout, cin)
      out[f"{prefix}.bias"] = (cout,)
  return out
