"""The problems the benchmarks solve: BigGAN-deep (random weights) and the planted generator.

``biggan_problem`` builds the reference BigGAN-deep of pytorch-pretrained-biggan
with random initialisation (``BigGAN(BigGANConfig(...))``, eval mode), converts
its state dict with ``regionjax.ports.biggan.state_dict_to_variables`` into the Flax port,
so both frameworks run *the same weights*, and splits the generator at a tap:
``f = layer{k}`` output of one code, ``f0`` = the mean of that tap over
``baseline`` other codes, ``x = g(f)`` the target, and ``n`` player patches of
a 6×6 grid (the central cells). The torch side gets the same arrays (NCHW).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import regionjax as rj

# central cells of a 6 × 6 grid, row-major: rows 1-4 × cols 1-4 first
_CENTRAL = [14, 15, 20, 21, 8, 9, 26, 27, 13, 16, 19, 22, 7, 10, 25, 28]


@dataclasses.dataclass
class BigGANProblem:
  config: Any  # regionjax.ports.biggan.BigGANConfig
  layer: str
  decode: Callable  # Flax: one feature (H, W, C) -> one image (128, 128, 3)
  f: np.ndarray  # (H, W, C)
  f0: np.ndarray
  target: np.ndarray  # (128, 128, 3), = decode(f)
  masks: np.ndarray  # (n, 128, 128)
  variables: Any
  cond: Any  # (1, condition_dim) jnp
  pos: Any  # StatsPosition
  torch_model: Any = None  # pytorch_pretrained_biggan.BigGAN in eval mode
  torch_cond: Any = None  # (1, condition_dim) torch tensor
  truncation: float = 0.4
  generator: Any = None  # regionjax.ports.biggan.BigGANGenerator of these weights (encode other codes)
  class_id: int = 0

  def decode_with(self, variables, *, remat_blocks: bool = False):
    """The decode function with other variables (e.g. cast to bfloat16), or with each block rematerialised."""
    return _flax_decode(self.config, variables, self.cond, self.pos, self.layer, remat_blocks=remat_blocks)

  def torch_decode(self, u):
    """Reference decode: generator.layers[k+1:], bn, relu, conv_to_rgb, tanh (NCHW)."""
    gen = self.torch_model.generator
    z = u
    k = int(self.layer[5:])
    for layer in gen.layers[k + 1 :]:
      if type(layer).__name__ == "GenBlock":
        z = layer(z, self.torch_cond, self.truncation)
      else:
        z = layer(z)
    z = gen.bn(z, self.truncation)
    z = gen.relu(z)
    z = gen.conv_to_rgb(z)
    return gen.tanh(z[:, :3, ...])


def _flax_decode(config, variables, cond, pos, layer, *, remat_blocks: bool = False):
  from regionjax.ports.biggan import BigGANDeep, tap_index

  module = BigGANDeep(config, precision="highest", remat_blocks=remat_blocks)
  start = tap_index(config, layer)

  def decode(u):
    dtype = u.dtype
    # start_after only uses z for the condition vector: pass cond via z/class with an identity embedding is
    # not possible, so run the module's layers directly.
    return module.apply(variables, u[None], cond.astype(dtype), pos, method=_rest, start=start)[0]

  return decode


def _rest(module, h, cond, pos, start):
  """The module's network after tap ``start`` from a precomputed condition vector."""
  from regionjax.ports.biggan.model import GenBlock
  import flax.linen as nn

  for layer in module.layers[start + 1 :]:
    h = layer(h, cond, pos, False, None) if isinstance(layer, GenBlock) else layer(h)  # all five: remat_blocks
  h = nn.relu(module.bn(h, pos, None))
  return jnp.tanh(module.conv_to_rgb(h)[..., :3])


def _converge_spectral_norms(model, iterations: int = 50) -> None:
  """Power-iterates every spectral-normed weight's stored (u, v) to convergence.

  Fresh from random init, (u, v) are random, so in eval mode σ = uᵀWv is far
  below the top singular value and W/σ explodes the activations (~1e30 after
  three blocks). The released checkpoints hold converged (u, v); so do these.
  """
  import torch
  import torch.nn.functional as F

  with torch.no_grad():
    for mod in model.modules():
      if hasattr(mod, "weight_u") and hasattr(mod, "weight_orig"):
        w = mod.weight_orig.reshape(mod.weight_orig.shape[0], -1)
        u, v = mod.weight_u, mod.weight_v
        for _ in range(iterations):
          v.copy_(F.normalize(w.t() @ u, dim=0, eps=1e-12))
          u.copy_(F.normalize(w @ v, dim=0, eps=1e-12))


def biggan_problem(
  *,
  channel_width: int = 128,
  layer: str = "layer6",
  n: int = 9,
  seed: int = 0,
  truncation: float = 0.4,
  baseline: int = 8,
  with_torch: bool = True,
) -> BigGANProblem:
  import torch
  from pytorch_pretrained_biggan import BigGAN, BigGANConfig as TorchConfig
  import regionjax.ports.biggan as pb

  torch.manual_seed(seed)
  cfg = pb.RELEASED_CONFIGS["biggan-deep-128"]
  cfg = dataclasses.replace(cfg, channel_width=channel_width)
  tcfg = TorchConfig(
    output_dim=cfg.output_dim,
    z_dim=cfg.z_dim,
    class_embed_dim=cfg.class_embed_dim,
    channel_width=cfg.channel_width,
    num_classes=cfg.num_classes,
    layers=[list(l) for l in cfg.layers],
    attention_layer_position=cfg.attention_layer_position,
    eps=cfg.eps,
    n_stats=cfg.n_stats,
  )
  tmodel = BigGAN(tcfg).eval()
  with torch.no_grad():  # the reference leaves the final norm's affine uninitialised (torch.Tensor(n))
    tmodel.generator.bn.weight.fill_(1.0)
    tmodel.generator.bn.bias.zero_()
    _converge_spectral_norms(tmodel)
  sd = {k: v.detach().cpu().numpy() for k, v in tmodel.state_dict().items()}
  variables = jax.tree.map(jnp.asarray, pb.state_dict_to_variables(sd, cfg))
  gen = pb.BigGANGenerator(cfg, variables, truncation=truncation)
  codes = gen.sample_codes(jax.random.PRNGKey(seed), 1 + baseline, classes=[seed % 1000] * (1 + baseline))
  feats = np.asarray(gen.encode(codes, layer))
  f, f0 = feats[0], feats[1:].mean(0)
  module = pb.BigGANDeep(cfg, precision="highest")
  cond = module.apply(variables, codes["z"][:1], codes["class_vector"][:1], method=lambda m, z, c: m.condition(z, c))
  pos = pb.stats_position(truncation, cfg.n_stats)
  decode = _flax_decode(cfg, variables, cond, pos, layer)
  target = np.asarray(jax.jit(decode)(jnp.asarray(f)))
  cells = rj.patch_masks(cfg.output_dim, cfg.output_dim, 6, 6)
  masks = cells[np.asarray(_CENTRAL[:n])]
  prob = BigGANProblem(
    config=cfg,
    layer=layer,
    decode=decode,
    f=f,
    f0=f0,
    target=target,
    masks=masks,
    variables=variables,
    cond=cond,
    pos=pos,
    truncation=truncation,
    generator=gen,
    class_id=seed % 1000,
  )
  if with_torch:
    prob.torch_cond = torch.from_numpy(np.array(cond))
    prob.torch_model = tmodel
  return prob


def planted_problem(*, n: int = 9, dim: int = 4096, size: int = 36, seed: int = 0):
  """The planted generator scaled up: n players, a feature of about ``dim`` numbers."""
  from regionjax import testing

  rng = np.random.default_rng(seed)
  num_blocks = 12
  fields = [tuple(sorted(rng.choice(n, size=rng.integers(1, 3), replace=False).tolist())) for _ in range(num_blocks)]
  block = max(1, (dim // 2) // num_blocks)
  grid = 3 if n <= 9 else 4 if n <= 16 else 5
  p = testing.planted_generator(
    fields, n=n, block_dim=block, inert_dim=dim - block * num_blocks, size=size, grid=grid, seed=seed
  )
  return p
