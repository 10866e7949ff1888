"""``StyleGAN2Generator``: StyleGAN2-ADA behind the generator protocol (docs/adding_a_generator.md).

Codes are ``{'z': (B, z_dim) float32, 'noise_seed': (B,) int32,
'truncation': ψ (float, shared by the batch), 'noise_mode': 'const' | 'none' |
'random' (shared)}``; z ~ N(0, I) as the reference's ``generate.py`` draws
it; ``noise_seed`` only matters for 'random' noise (our own per-code noise,
so that a code still determines its image). The image is
``synthesis(truncate(mapping(z), ψ, cutoff), noise_mode)``; the truncation
cutoff is the generator's (``truncation_cutoff``, None = every w).

Taps, in execution order: ``b4.conv1``, ``b4``, ``b8.conv0``, ``b8.conv1``,
``b8``, …, ``b{res}`` — each synthesis layer's output and each block's
feature output (in the 'skip' architecture the block's feature output is its
conv1's, so ``b{res}`` and ``b{res}.conv1`` hold the same tensor) — and
``layer{i}`` = ``b{4·2^i}`` (layer0 = b4). ``decode`` from a tap recomputes
the w vectors and the RGB running sum entering the tap's block from the codes,
then runs the rest of the block (its ToRGB sees the features) and the later
blocks. Images are the network's output, which lies in [-1, 1] up to
overshoots (the reference clips only when it writes PNGs).
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .config import StyleGAN2Config
from .model import NOISE_MODES, StyleGAN2

__all__ = ["StyleGAN2Generator"]


class StyleGAN2Generator:
  """Args:
  config: ``StyleGAN2Config``.
  variables: ``{'params': …}`` of ``StyleGAN2(config)``.
  truncation: ψ for :meth:`sample_codes` (1 = none).
  truncation_cutoff: truncate the first this many w vectors (None = all).
  noise_mode: :meth:`sample_codes`'s noise mode ('const', as generate.py).
  precision: matmul/conv precision ('highest' = float32 as the reference).
  """

  def __init__(
    self,
    config: StyleGAN2Config,
    variables: Mapping[str, Any],
    *,
    truncation: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
    precision: str | None = "highest",
  ):
    if not isinstance(config, StyleGAN2Config):
      config = StyleGAN2Config.from_dict(dict(config))
    self.config = config
    self.truncation = self._psi(truncation)
    if truncation_cutoff is not None and (
      isinstance(truncation_cutoff, bool) or int(truncation_cutoff) != truncation_cutoff or truncation_cutoff < 0
    ):
      raise ValueError(f"truncation_cutoff must be None or an integer >= 0, got {truncation_cutoff!r}")
    self.truncation_cutoff = None if truncation_cutoff is None else int(truncation_cutoff)
    self.noise_mode = self._mode(noise_mode)
    self.variables = jax.tree.map(jnp.asarray, {"params": variables["params"]})
    self.module = StyleGAN2(config, precision=precision)
    self.block_names = config.tap_names
    self.aliases = {f"layer{i}": f"b{r}" for i, r in enumerate(config.resolutions)}
    self.layers = self.block_names + tuple(self.aliases)
    m, cut = self.module, self.truncation_cutoff
    self._ws = jax.jit(lambda v, z, psi: m.apply(v, z, psi, cut, method=StyleGAN2.ws))
    self._ws_exact = jax.jit(lambda v, z: m.apply(v, z, 1.0, cut, method=StyleGAN2.ws))

    def synth(v, ws, seed, mode, start, f, img, stop, until, taps):
      return m.apply(
        v,
        ws,
        mode,
        seed,
        start=start,
        features=f,
        img=img,
        stop=stop,
        until_res=until,
        return_taps=taps,
        method=StyleGAN2.synthesis,
      )

    self._synth = jax.jit(synth, static_argnums=(3, 4, 7, 8, 9))

  # ------------------------------------------------------------- properties
  @property
  def image_shape(self):
    r = self.config.img_resolution
    return (r, r, self.config.img_channels)

  def tap_index(self, layer) -> int:
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and 0 <= layer < len(self.block_names):
      return int(layer)
    if isinstance(layer, str):
      name = self.aliases.get(layer, layer)
      if name in self.block_names:
        return self.block_names.index(name)
    raise ValueError(
      f"unknown layer {layer!r}: this StyleGAN2 generator's taps are {self.block_names[0]} … "
      f"{self.block_names[-1]} (b{{res}}, b{{res}}.conv0, b{{res}}.conv1) or layer0 … "
      f"layer{len(self.aliases) - 1} (= b4 … b{self.config.img_resolution})"
    )

  def feature_shape(self, layer) -> tuple:
    _, res, _, ch = self.config.taps()[self.tap_index(layer)]
    return (res, res, ch)

  # ------------------------------------------------------------------ codes
  num_classes = None  # unconditional

  @staticmethod
  def _psi(psi):
    try:
      v = float(psi)
    except (TypeError, ValueError):
      raise ValueError(f"truncation ψ must be a number, got {psi!r}") from None
    if not (np.isfinite(v) and 0 <= v <= 10):
      raise ValueError(f"truncation ψ must be finite and in [0, 10], got {psi!r}")
    return v

  @staticmethod
  def _mode(mode):
    if mode not in NOISE_MODES:
      raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {mode!r}")
    return str(mode)

  def sample_codes(self, rng, num: int, classes=None) -> dict:
    """``num`` codes z ~ N(0, I) with this generator's ψ and noise mode; unconditional: no classes."""
    if classes is not None:
      raise ValueError("this StyleGAN2 generator is unconditional: it takes no classes")
    num = int(num)
    if num < 1:
      raise ValueError(f"num must be positive, got {num}")
    kz, ks = jax.random.split(rng)
    return {
      "z": jax.random.normal(kz, (num, self.config.z_dim), jnp.float32),
      "noise_seed": jax.random.randint(ks, (num,), 0, 2**31 - 1, jnp.int32),
      "truncation": self.truncation,
      "noise_mode": self.noise_mode,
    }

  def class_of(self, codes):
    del codes
    return None

  def _parse(self, codes):
    """(z, noise_seed, ψ, noise_mode) of ``codes``; ψ and the mode resolved on the host."""
    if not isinstance(codes, Mapping) or "z" not in codes:
      raise ValueError("codes must be a dict with 'z' (and optionally 'noise_seed', 'truncation', 'noise_mode')")
    z = jnp.asarray(codes["z"], jnp.float32)
    if z.ndim != 2 or z.shape[1] != self.config.z_dim:
      raise ValueError(f"codes['z'] must be (B, {self.config.z_dim}), got {tuple(z.shape)}")
    psi = self._psi(codes.get("truncation", 1.0))
    mode = self._mode(codes.get("noise_mode", "const"))
    seed = codes.get("noise_seed")
    if seed is None:
      if mode == "random":
        raise ValueError("noise_mode 'random' needs codes['noise_seed'] (B,) integers")
      seed = jnp.zeros((z.shape[0],), jnp.int32)
    seed = jnp.asarray(seed, jnp.int32)
    if seed.shape != (z.shape[0],):
      raise ValueError(f"codes['noise_seed'] must be ({z.shape[0]},), got {tuple(seed.shape)}")
    return z, seed, psi, mode

  def ws(self, codes):
    """(B, num_ws, w_dim): mapping and truncation (ψ = 1: none, as the reference)."""
    z, _, psi, _ = self._parse(codes)
    return self._ws_exact(self.variables, z) if psi == 1 else self._ws(self.variables, z, np.float32(psi))

  # --------------------------------------------------------------- protocol
  def generate(self, codes) -> jnp.ndarray:
    """(B, H, W, C) images."""
    z, seed, _, mode = self._parse(codes)
    return self._synth(self.variables, self.ws(codes), seed, mode, None, None, None, None, None, False)

  def encode(self, codes, layer) -> jnp.ndarray:
    z, seed, _, mode = self._parse(codes)
    return self._synth(self.variables, self.ws(codes), seed, mode, None, None, None, self.tap_index(layer), None, False)

  def decode(self, codes, layer, features) -> jnp.ndarray:
    """The rest of the network after ``layer`` on ``features``; pure in
    ``features`` (jit / vmap / grad freely)."""
    i = self.tap_index(layer)
    raw = codes.get("z") if isinstance(codes, Mapping) else None
    # Codes fixed while features vary (the solver): compute w and the RGB sum
    # now, even under an outer jit, so that XLA does not constant-fold the
    # earlier blocks at compile time.
    eager = raw is not None and not isinstance(raw, jax.core.Tracer)
    with jax.ensure_compile_time_eval() if eager else contextlib.nullcontext():
      z, seed, _, mode = self._parse(codes)
      shape = (z.shape[0],) + self.feature_shape(i)
      if tuple(jnp.shape(features)) != shape:
        raise ValueError(
          f"features for {self.block_names[i]} must have shape {shape}, got {tuple(jnp.shape(features))}"
        )
      ws = self.ws(codes)
      res = self.config.taps()[i][1]
      img = None if res == 4 else self._synth(self.variables, ws, seed, mode, None, None, None, None, res, False)
    return self._synth(self.variables, ws, seed, mode, i, features, img, None, None, False)

  def generate_with_taps(self, codes):
    """(images, {tap name: features}) from one forward pass."""
    z, seed, _, mode = self._parse(codes)
    x, taps = self._synth(self.variables, self.ws(codes), seed, mode, None, None, None, None, None, True)
    return x, dict(zip(self.block_names, taps))

  def __repr__(self):
    return (
      f"StyleGAN2Generator({self.config.img_resolution}×{self.config.img_resolution}, "
      f"{len(self.block_names)} taps, ψ={self.truncation}, cutoff={self.truncation_cutoff}, "
      f"noise={self.noise_mode})"
    )
