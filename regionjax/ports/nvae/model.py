"""NVAE's generation path in JAX: ``prior_ftr0`` → ``dec_tower`` → ``post_process`` → logits.

Written from NVlabs/NVAE ``model.py`` (``AutoEncoder.sample``), ``neural_operations.py``
and ``distributions.py``; channels last (NHWC) throughout. The variables are
``{'params': …, 'batch_stats': …}`` nested by the reference's module names
(``params['dec_tower']['3']['_ops']['0']['conv']['1']['bn']``), with weight
normalisation folded into the kernels by the converter.

Generation (``AutoEncoder.sample(num, t)`` with the noise given):

* s₀ = prior_ftr0; for every module of ``dec_tower``: a cell s ← cell(s); a
  combiner of group g: z_g = μ_g + σ_g·ε_g with (μ_g, log σ_g) = the prior
  ``dec_sampler[g−1](s)`` for g > 0 and (0, 0) for g = 0, then s ← conv1×1([s, z_g]);
* ``Normal``: μ = 5·tanh(μ̂/5), σ = (exp(5·tanh(log σ̂/5)) + 10⁻²)·t;
* a cell: skip(s) + 0.1·SE(op(s)); an up cell's skip is a bilinear ×2
  (align_corners=True) and a 1×1 conv, its op an inverted residual behind a
  nearest ×2;
* the inverted residual: BN → 1×1 conv → BN → swish → depthwise k×k conv → BN →
  swish → 1×1 conv → BN;
* logits = conv3×3(elu(post_process(s))), read as a discretised logistic
  mixture (``DiscMixLogistic``): :func:`mixture_mean` and :func:`mixture_sample`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .config import NVAEConfig

__all__ = [
  "NVAEDecoder",
  "BN_EPS",
  "bilinear_up2",
  "nearest_up2",
  "soft_clamp5",
  "prior_params",
  "tower",
  "head",
  "mixture_mean",
  "mixture_sample",
  "generate",
]

#: neural_operations.BN_EPS (every batch norm of the generation path uses 1e-5).
BN_EPS = 1e-5


def _get(tree: Mapping, path: str):
  for part in path.split("."):
    tree = tree[part]
  return tree


class _Ctx:
  """Variables, precision and the batch-norm mode of one forward pass."""

  def __init__(self, variables: Mapping, precision, train: bool = False):
    self.params = variables["params"]
    self.stats = variables.get("batch_stats", {})
    self.precision = precision
    self.train = train
    self.batch_stats = {}  # path -> (mean, unbiased var) of this batch, when train

  def p(self, path):
    return _get(self.params, path)


# ------------------------------------------------------------------- ops
def soft_clamp5(x):
  """distributions.soft_clamp5: 5·tanh(x/5)."""
  return 5.0 * jnp.tanh(x / 5.0)


def swish(x):
  return x * jax.nn.sigmoid(x)


def nearest_up2(x):
  """``nn.UpsamplingNearest2d(scale_factor=2)`` (NHWC)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _interp_matrix(n: int) -> np.ndarray:
  """(2n, n) weights of linear interpolation with align_corners=True: output i samples the input at
  i·(n − 1)/(2n − 1)."""
  m = np.zeros((2 * n, n), np.float64)
  if n == 1:
    m[:, 0] = 1.0
    return m.astype(np.float32)
  scale = (n - 1) / (2 * n - 1)
  for i in range(2 * n):
    src = i * scale
    i0 = min(int(np.floor(src)), n - 1)
    i1 = min(i0 + 1, n - 1)
    w1 = src - i0
    m[i, i0] += 1.0 - w1
    m[i, i1] += w1
  return m.astype(np.float32)


def bilinear_up2(x, precision=lax.Precision.HIGHEST):
  """``F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=True)`` (NHWC).

  Separable: y = A_h · x · A_wᵀ with A_n the (2n, n) linear-interpolation matrix whose row i
  samples the input at i·(n − 1)/(2n − 1) (align_corners=True keeps the corner pixels fixed).
  ``jax.image.resize`` uses half-pixel centres (align_corners=False), hence this function.
  """
  ah = jnp.asarray(_interp_matrix(x.shape[1]))
  aw = jnp.asarray(_interp_matrix(x.shape[2]))
  y = jnp.einsum("ih,bhwc->biwc", ah, x, precision=precision)
  return jnp.einsum("jw,biwc->bijc", aw, y, precision=precision)


def _conv(ctx: _Ctx, x, path: str, padding: int = 0, groups: int = 1):
  p = ctx.p(path)
  y = lax.conv_general_dilated(
    x,
    p["kernel"],
    (1, 1),
    [(padding, padding)] * 2,
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=groups,
    precision=ctx.precision,
  )
  if "bias" in p:
    y = y + p["bias"]
  return y


def _bn(ctx: _Ctx, x, path: str):
  """Batch norm: the stored statistics, or (train, as NVAE's ``readjust_bn``) the batch's."""
  p = ctx.p(path)
  if ctx.train:
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    n = x.shape[0] * x.shape[1] * x.shape[2]
    ctx.batch_stats[path] = (mean, var * n / max(n - 1, 1))
  else:
    st = _get(ctx.stats, path)
    mean, var = st["mean"], st["var"]
  return (x - mean) * lax.rsqrt(var + BN_EPS) * p["scale"] + p["bias"]


def _se(ctx: _Ctx, x, path: str):
  """neural_operations.SE: x · sigmoid(W₂ relu(W₁ mean_hw(x) + b₁) + b₂)."""
  h = jnp.mean(x, axis=(1, 2))
  p0, p2 = ctx.p(path + ".0"), ctx.p(path + ".2")
  h = jax.nn.relu(jnp.dot(h, p0["kernel"], precision=ctx.precision) + p0["bias"])
  h = jax.nn.sigmoid(jnp.dot(h, p2["kernel"], precision=ctx.precision) + p2["bias"])
  return x * h[:, None, None, :]


def _inverted_residual(ctx: _Ctx, x, path: str, upsample: bool, k: int, g: int):
  """neural_operations.InvertedResidual (stride 1 or −1): [nearest ×2] BN, 1×1 conv BN swish, k×k
  (depthwise when g = 0) conv BN swish, 1×1 conv, BN. No residual inside: the cell adds the skip."""
  o = 1 if upsample else 0
  if upsample:
    x = nearest_up2(x)
  x = _bn(ctx, x, f"{path}.{o}.bn")
  x = swish(_bn(ctx, _conv(ctx, x, f"{path}.{o + 1}.conv.0"), f"{path}.{o + 1}.conv.1"))
  hidden = x.shape[-1]
  x = _conv(ctx, x, f"{path}.{o + 2}.conv.0", padding=(k - 1) // 2, groups=hidden if g == 0 else g)
  x = swish(_bn(ctx, x, f"{path}.{o + 2}.conv.1"))
  x = _conv(ctx, x, f"{path}.{o + 3}")
  return _bn(ctx, x, f"{path}.{o + 4}.bn")


def _cell(ctx: _Ctx, config: NVAEConfig, x, path: str, kind: str, cell_type: str):
  """model.Cell: skip(s) + 0.1·SE(op(s)); skip is the identity or (up) bilinear ×2 and a 1×1 conv."""
  up = kind == "up"
  skip = _conv(ctx, bilinear_up2(x, ctx.precision), f"{path}.skip.1") if up else x
  _, k, g = config.cell_op(cell_type)
  s = _inverted_residual(ctx, x, f"{path}._ops.0.conv", up, k, g)
  if config.use_se:
    s = _se(ctx, s, f"{path}.se.se")
  return skip + 0.1 * s


def prior_params(ctx: _Ctx, s, group: int):
  """(μ, σ/t) of latent group ``group`` > 0: ``dec_sampler[group − 1]`` = conv1×1(elu(s)), then Normal's
  soft clamps: μ = 5·tanh(μ̂/5), σ = exp(5·tanh(log σ̂/5)) + 10⁻²."""
  param = _conv(ctx, jax.nn.elu(s), f"dec_sampler.{group - 1}.1")
  mu, log_sigma = jnp.split(param, 2, axis=-1)
  return soft_clamp5(mu), jnp.exp(soft_clamp5(log_sigma)) + 1e-2


def _latent(ctx: _Ctx, s, group: int, eps, t):
  """z_g = μ_g + σ_g·t·ε_g (distributions.Normal(μ, log σ, t).sample_given_eps); group 0: μ = 0, log σ = 0."""
  if group == 0:
    return (1.0 + 1e-2) * t * eps
  mu, sigma = prior_params(ctx, s, group)
  return eps * (sigma * t) + mu


def tower(ctx: _Ctx, config: NVAEConfig, s, eps: Sequence, t, start: int, stop: int):
  """Runs ``dec_tower[start:stop]`` on s (s = the output of module start − 1, or prior_ftr0 for start 0)."""
  mods = config.tower()
  for i in range(start, stop):
    m = mods[i]
    path = f"dec_tower.{i}"
    if m.kind == "combiner":
      z = _latent(ctx, s, m.group, eps[m.group], t)
      s = _conv(ctx, jnp.concatenate([s, z.astype(s.dtype)], axis=-1), f"{path}.conv")
    else:
      s = _cell(ctx, config, s, path, m.kind, "up_dec" if m.kind == "up" else "normal_dec")
  return s


def head(ctx: _Ctx, config: NVAEConfig, s):
  """post_process cells, then image_conditional = conv3×3(elu(s)): the (B, H, W, 10·M) logits."""
  for j, m in enumerate(config.post_process()):
    s = _cell(ctx, config, s, f"post_process.{j}", m.kind, "up_post" if m.kind == "up" else "normal_post")
  return _conv(ctx, jax.nn.elu(s), "image_conditional.1", padding=1)


def prior_ftr0(ctx: _Ctx, batch: int):
  s = ctx.p("prior_ftr0")
  return jnp.broadcast_to(s[None], (batch,) + s.shape)


def _split_logits(logits, num_mix: int):
  """DiscMixLogistic's parameters from NHWC logits: channel M + c·3M + j holds (mean, log scale, coeff)[j]
  of colour c (the reference views channels M… as (3, 3M))."""
  b, h, w, _ = logits.shape
  logit_probs = logits[..., :num_mix]
  l = logits[..., num_mix:].reshape(b, h, w, 3, 3 * num_mix)
  means = l[..., :num_mix]
  log_scales = jnp.maximum(l[..., num_mix : 2 * num_mix], -7.0)
  coeffs = jnp.tanh(l[..., 2 * num_mix :])
  return logit_probs, means, log_scales, coeffs


def _autoregress(x, coeffs):
  """x0 = clip(x0), x1 = clip(x1 + c0·x0), x2 = clip(x2 + c1·x0 + c2·x1) on [−1, 1]."""
  x0 = jnp.clip(x[..., 0], -1.0, 1.0)
  x1 = jnp.clip(x[..., 1] + coeffs[..., 0] * x0, -1.0, 1.0)
  x2 = jnp.clip(x[..., 2] + coeffs[..., 1] * x0 + coeffs[..., 2] * x1, -1.0, 1.0)
  return jnp.stack([x0, x1, x2], axis=-1)


def mixture_mean(logits, num_mix: int):
  """``DiscMixLogistic.mean()`` in [−1, 1] (the reference returns (x + 1)/2): the softmax-weighted
  component means and coefficients, then the colour autoregression with clipping."""
  logit_probs, means, _, coeffs = _split_logits(logits, num_mix)
  sel = jax.nn.softmax(logit_probs, axis=-1)[..., None, :]
  return _autoregress(jnp.sum(means * sel, -1), jnp.sum(coeffs * sel, -1))


def mixture_sample(logits, num_mix: int, u_mix, u_logistic, t: float = 1.0):
  """``DiscMixLogistic.sample(t)`` in [−1, 1] with its uniforms given: the component
  argmax(logit π/t − log(−log u_mix)) (Gumbel-max), x = μ + exp(log s)/t · (log u − log(1 − u)), then the
  colour autoregression with clipping. ``u_mix`` (B, H, W, M) and ``u_logistic`` (B, H, W, 3) in (0, 1)."""
  logit_probs, means, log_scales, coeffs = _split_logits(logits, num_mix)
  gumbel = -jnp.log(-jnp.log(u_mix))
  sel = jax.nn.one_hot(jnp.argmax(logit_probs / t + gumbel, axis=-1), num_mix, dtype=logits.dtype)[..., None, :]
  mu = jnp.sum(means * sel, -1)
  ls = jnp.sum(log_scales * sel, -1)
  co = jnp.sum(coeffs * sel, -1)
  x = mu + jnp.exp(ls) / t * (jnp.log(u_logistic) - jnp.log(1.0 - u_logistic))
  return _autoregress(x, co)


def generate(
  variables: Mapping,
  config: NVAEConfig,
  eps: Sequence,
  t,
  *,
  start: int = 0,
  features: Any | None = None,
  stop: int | None = None,
  precision=lax.Precision.HIGHEST,
  return_taps: bool = False,
  train: bool = False,
):
  """The generation path from tap ``start − 1`` (``features``; prior_ftr0 when start = 0) to tap ``stop``
  (its output) or, when stop is None, to the logits. With ``return_taps``: (out, [taps start…]).
  With ``train``: (out, {bn path: (batch mean, unbiased batch var)}) — NVAE's BN in training mode."""
  ctx = _Ctx(variables, precision, train)
  n = len(config.tower())
  batch = eps[0].shape[0]
  s = prior_ftr0(ctx, batch) if start == 0 else features
  taps = []
  end = n if stop is None else stop + 1
  if return_taps:
    for i in range(start, end):
      s = tower(ctx, config, s, eps, t, i, i + 1)
      taps.append(s)
  else:
    s = tower(ctx, config, s, eps, t, start, end)
  out = head(ctx, config, s) if stop is None else s
  if return_taps:
    return out, taps
  if train:
    return out, ctx.batch_stats
  return out


class NVAEDecoder(nn.Module):
  """The generation path as a Flax module. Its variables are the converter's tree: ``params`` with the
  top-level entries ``prior_ftr0``, ``dec_tower``, ``dec_sampler``, ``post_process``, ``image_conditional``
  (each a pytree nested by the reference's module names) and ``batch_stats`` (``dec_tower``,
  ``post_process``). ``__call__`` is :func:`generate`; ``init`` gives N(0, 0.02²) weights and (0, 1)
  statistics (use the converter for real weights)."""

  config: NVAEConfig
  precision: Any = lax.Precision.HIGHEST

  def _variables(self):
    from .convert import abstract_variables  # noqa: PLC0415 (convert imports no model code)

    shapes = abstract_variables(self.config)

    def init(rng, s):
      leaves, tree = jax.tree.flatten(s)
      keys = jax.random.split(rng, len(leaves))
      return jax.tree.unflatten(tree, [0.02 * jax.random.normal(k, a.shape, jnp.float32) for k, a in zip(keys, leaves)])

    params = {k: self.param(k, init, s) for k, s in shapes["params"].items()}
    stats = {}
    for k, s in shapes["batch_stats"].items():
      init = lambda s=s: jax.tree_util.tree_map_with_path(
        lambda path, a: (jnp.ones if path[-1].key == "var" else jnp.zeros)(a.shape, jnp.float32), s
      )
      stats[k] = self.variable("batch_stats", k, init).value
    return {"params": params, "batch_stats": stats}

  @nn.compact
  def __call__(
    self,
    eps: Sequence,
    t,
    start: int = 0,
    features=None,
    stop: int | None = None,
    return_taps: bool = False,
    train: bool = False,
  ):
    return generate(
      self._variables(),
      self.config,
      eps,
      t,
      start=start,
      features=features,
      stop=stop,
      precision=self.precision,
      return_taps=return_taps,
      train=train,
    )
