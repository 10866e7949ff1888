"""``NVAEGenerator``: NVAE's generation path behind the generator protocol (docs/adding_a_generator.md).

Codes are ``{'eps': (ε₀, …, ε_{G−1}), 't': temperature}``: the standard-normal noise of every latent
group in decoding order, ε_g of shape (B, h_g, w_g, num_latent_per_group), and the sampling temperature
t (a float shared by the batch, NVAE evaluate.py's ``--temp``). Latent g is z_g = μ_g(s) + σ_g(s)·t·ε_g with
(μ_g, σ_g) the prior that ``dec_sampler[g − 1]`` computes from the decoder state s (group 0: μ = 0,
σ = 1.01); so ``decode`` from a tap re-samples every later latent from the feature-dependent prior with
the same ε. With ``output='sample'`` the codes also hold the uniforms of ``DiscMixLogistic.sample()``:
``u_mix`` (B, H, W, M) and ``u_logistic`` (B, H, W, 3).

Taps: ``layer{i}``, the output of ``dec_tower[i]`` (counted from 0), NHWC. Images:
``DiscMixLogistic.mean()`` (default) or ``.sample()``, in [−1, 1].
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from . import model as M
from .config import NVAEConfig

__all__ = ["NVAEGenerator", "OUTPUTS", "bn_update", "readjust_bn"]

OUTPUTS = ("mean", "sample")


class NVAEGenerator:
  """Args:
  config: ``NVAEConfig``.
  variables: ``{'params': …, 'batch_stats': …}`` from ``regionjax.ports.nvae.convert``.
  temperature: t of :meth:`sample_codes` (NVAE evaluate.py's default ``--temp`` is 0.7).
  output: 'mean' (``DiscMixLogistic.mean()``) or 'sample' (``.sample()`` with the codes' uniforms).
  precision: matmul/conv precision ('highest' = float32 as the reference).
  """

  num_classes = None  # unconditional

  def __init__(
    self,
    config: NVAEConfig,
    variables: Mapping[str, Any],
    *,
    temperature: float = 1.0,
    output: str = "mean",
    precision: str | None = "highest",
  ):
    if not isinstance(config, NVAEConfig):
      config = NVAEConfig.from_dict(dict(config))
    self.config = config
    self.temperature = self._t(temperature)
    if output not in OUTPUTS:
      raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    self.output = output
    self.variables = jax.tree.map(jnp.asarray, {"params": variables["params"], "batch_stats": variables["batch_stats"]})
    self.precision = precision
    self.layers = config.tap_names
    self._group_shapes = config.group_shapes()
    cfg = config
    self.module = M.NVAEDecoder(config, precision=precision)
    m = self.module
    self._run = jax.jit(
      lambda v, eps, t, f, start, stop, taps: m.apply(v, eps, t, start=start, features=f, stop=stop, return_taps=taps),
      static_argnums=(4, 5, 6),
    )
    self._mean = jax.jit(lambda logits: M.mixture_mean(logits, cfg.num_mixture_dec))
    self._sample = jax.jit(lambda logits, um, ul: M.mixture_sample(logits, cfg.num_mixture_dec, um, ul))

  # ------------------------------------------------------------- properties
  @property
  def image_shape(self):
    r = self.config.image_resolution
    return (r, r, 3)

  def tap_index(self, layer) -> int:
    n = len(self.layers)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and 0 <= layer < n:
      return int(layer)
    if isinstance(layer, str) and layer.startswith("layer") and layer[5:].isdigit() and int(layer[5:]) < n:
      return int(layer[5:])
    raise ValueError(
      f"unknown layer {layer!r}: this NVAE generator's taps are layer0 … layer{n - 1} "
      f"(the outputs of dec_tower[0 … {n - 1}])"
    )

  def feature_shape(self, layer) -> tuple:
    m = self.config.tower()[self.tap_index(layer)]
    return (m.res, m.res, m.cout)

  def module_of(self, layer) -> str:
    """The reference module a tap is the output of, e.g. 'dec_tower[44] (up cell, 256→128, 32×32)'."""
    i = self.tap_index(layer)
    m = self.config.tower()[i]
    what = {"combiner": f"combiner of latent group {m.group}", "up": "up cell", "normal": "normal cell"}[m.kind]
    return f"dec_tower[{i}] ({what}, {m.cin}→{m.cout} channels, {m.res}×{m.res})"

  # ------------------------------------------------------------------ codes
  @staticmethod
  def _t(t) -> float:
    try:
      t = float(t)
    except (TypeError, ValueError):
      raise ValueError(f"temperature t must be a number, got {t!r}") from None
    if not (np.isfinite(t) and 0 < t <= 10):
      raise ValueError(f"temperature t must be finite and in (0, 10], got {t!r}")
    return t

  def sample_codes(self, rng, num: int, classes=None) -> dict:
    """``num`` codes: ε of every group ~ N(0, I), t = the generator's temperature (and the output uniforms)."""
    if classes is not None:
      raise ValueError("this NVAE generator is unconditional: it takes no classes")
    num = int(num)
    if num < 1:
      raise ValueError(f"num must be positive, got {num}")
    keys = jax.random.split(rng, len(self._group_shapes) + 2)
    codes = {
      "eps": tuple(jax.random.normal(k, (num,) + s, jnp.float32) for k, s in zip(keys, self._group_shapes)),
      "t": self.temperature,
    }
    if self.output == "sample":
      h, w, _ = self.image_shape
      lo, hi = 1e-5, 1.0 - 1e-5  # the reference's uniform_(1e-5, 1 - 1e-5)
      codes["u_mix"] = jax.random.uniform(keys[-2], (num, h, w, self.config.num_mixture_dec), jnp.float32, lo, hi)
      codes["u_logistic"] = jax.random.uniform(keys[-1], (num, h, w, 3), jnp.float32, lo, hi)
    return codes

  def class_of(self, codes):
    del codes
    return None

  def _codes(self, codes):
    if not isinstance(codes, Mapping) or "eps" not in codes:
      raise ValueError("codes must be a dict with 'eps' (the ε of every latent group) and 't'")
    eps = codes["eps"]
    if not isinstance(eps, (tuple, list)) or len(eps) != len(self._group_shapes):
      raise ValueError(f"codes['eps'] must be a sequence of {len(self._group_shapes)} arrays (one per latent group)")
    eps = tuple(jnp.asarray(e, jnp.float32) for e in eps)
    b = eps[0].shape[0] if eps[0].ndim else -1
    for g, (e, s) in enumerate(zip(eps, self._group_shapes)):
      if e.shape != (b,) + s:
        raise ValueError(
          f"codes['eps'][{g}] must be (B, {', '.join(map(str, s))}) with the batch of eps[0], got {tuple(e.shape)}"
        )
    t = self._t(codes.get("t", self.temperature))
    return eps, t

  def _image(self, logits, codes):
    if self.output == "mean":
      return self._mean(logits)
    try:
      um, ul = jnp.asarray(codes["u_mix"], jnp.float32), jnp.asarray(codes["u_logistic"], jnp.float32)
    except KeyError:
      raise ValueError("output='sample' needs codes['u_mix'] and codes['u_logistic'] (see sample_codes)") from None
    b, h, w, _ = logits.shape
    if um.shape != (b, h, w, self.config.num_mixture_dec) or ul.shape != (b, h, w, 3):
      raise ValueError(
        f"codes['u_mix'] must be {(b, h, w, self.config.num_mixture_dec)} and codes['u_logistic'] "
        f"{(b, h, w, 3)}, got {tuple(um.shape)} and {tuple(ul.shape)}"
      )
    return self._sample(logits, um, ul)

  # --------------------------------------------------------------- protocol
  def logits(self, codes) -> jnp.ndarray:
    """(B, H, W, 10·M) logits of the discretised logistic mixture."""
    eps, t = self._codes(codes)
    return self._run(self.variables, eps, t, None, 0, None, False)

  def generate(self, codes) -> jnp.ndarray:
    """(B, H, W, 3) images in [−1, 1]."""
    return self._image(self.logits(codes), codes)

  def encode(self, codes, layer) -> jnp.ndarray:
    eps, t = self._codes(codes)
    return self._run(self.variables, eps, t, None, 0, self.tap_index(layer), False)

  def decode(self, codes, layer, features) -> jnp.ndarray:
    """The rest of the network after ``layer`` on ``features`` (later latents re-sampled from their
    feature-dependent prior with the codes' ε); pure in ``features``."""
    i = self.tap_index(layer)
    eps, t = self._codes(codes)
    shape = (eps[0].shape[0],) + self.feature_shape(i)
    if tuple(jnp.shape(features)) != shape:
      raise ValueError(f"features for layer{i} must have shape {shape}, got {tuple(jnp.shape(features))}")
    logits = self._run(self.variables, eps, t, jnp.asarray(features, jnp.float32), i + 1, None, False)
    return self._image(logits, codes)

  def generate_with_taps(self, codes):
    """(logits, {layer name: features}) from one forward pass."""
    eps, t = self._codes(codes)
    logits, taps = self._run(self.variables, eps, t, None, 0, None, True)
    return logits, dict(zip(self.layers, taps))

  def readjust_bn(
    self, rng, *, num_samples: int = 16, iters: int = 500, momentum: float = 0.05, temperature: float | None = None
  ) -> "NVAEGenerator":
    """A copy whose batch-norm statistics are re-estimated as NVAE evaluate.py's ``--readjust_bn``."""
    stats = readjust_bn(
      self.variables,
      self.config,
      rng,
      num_samples=num_samples,
      iters=iters,
      momentum=momentum,
      t=self.temperature if temperature is None else temperature,
      precision=self.precision,
    )
    return NVAEGenerator(
      self.config,
      {"params": self.variables["params"], "batch_stats": stats},
      temperature=self.temperature,
      output=self.output,
      precision=self.precision,
    )

  def __repr__(self):
    return (
      f"NVAEGenerator({self.config.dataset}, {len(self.layers)} taps, {self.config.num_groups} latent groups, "
      f"t={self.temperature}, output={self.output!r})"
    )


def bn_update(variables: Mapping, config: NVAEConfig, eps, t, *, momentum: float = 0.05, precision="highest") -> dict:
  """One step of NVAE's BN re-estimation: sample with the ε given and every batch norm in training mode
  (normalising by the batch's own statistics), then r ← (1 − m)·r + m·(batch mean, unbiased batch variance),
  torch's running-statistics update. Returns the new ``batch_stats``."""
  _, batch = M.generate(variables, config, tuple(eps), t, precision=precision, train=True)
  new = jax.tree.map(lambda a: a, dict(variables["batch_stats"]))
  for path, (mean, var) in batch.items():
    d = new
    for part in path.split("."):
      d = d[part]
    d["mean"] = (1 - momentum) * d["mean"] + momentum * mean
    d["var"] = (1 - momentum) * d["var"] + momentum * var
  return new


def readjust_bn(
  variables: Mapping,
  config: NVAEConfig,
  rng,
  *,
  num_samples: int = 16,
  iters: int = 500,
  momentum: float = 0.05,
  t: float = 1.0,
  precision="highest",
) -> dict:
  """NVAE evaluate.py ``set_bn(model, bn_eval_mode=False, num_samples, t, iter)`` (its ``--readjust_bn``):
  ``iters`` steps of :func:`bn_update`, each on ``num_samples`` fresh samples at temperature t. Returns the new
  ``batch_stats``."""
  shapes = config.group_shapes()
  params = variables["params"]

  def step(stats, key):
    keys = jax.random.split(key, len(shapes))
    eps = tuple(jax.random.normal(k, (num_samples,) + s, jnp.float32) for k, s in zip(keys, shapes))
    return bn_update(
      {"params": params, "batch_stats": stats}, config, eps, t, momentum=momentum, precision=precision
    ), None

  stats = jax.tree.map(jnp.asarray, dict(variables["batch_stats"]))
  stats, _ = jax.lax.scan(step, stats, jax.random.split(rng, int(iters)))
  return stats


def load(directory, **generator_kwargs) -> NVAEGenerator:
  """A directory written by :func:`regionjax.ports.nvae.convert.save` / the CLI -> ``NVAEGenerator`` (no torch)."""
  from . import convert  # noqa: PLC0415 (lazy: `python -m regionjax.ports.nvae.convert` must not find it imported)

  config, variables = convert.checkpoint.load(
    directory,
    family="NVAE",
    config_cls=NVAEConfig,
    abstract=convert.abstract_variables,
    help_text=convert.checkpoint_help(directory),
  )
  return NVAEGenerator(config, variables, **generator_kwargs)
