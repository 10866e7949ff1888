"""Architecture of a StyleGAN2-ADA generator (NVlabs/stylegan2-ada-pytorch ``Generator``).

The fields are the constructor arguments of ``training/networks.py``
``Generator`` (with ``mapping_kwargs`` / ``synthesis_kwargs`` flattened) and
their defaults there. A pickle records them as ``G_ema._init_kwargs``;
:meth:`StyleGAN2Config.from_init_kwargs` reads them. Supported is the
variant every released StyleGAN2-ADA generator uses: 'skip' architecture,
``resample_filter=[1,3,3,1]``, leaky-ReLU activations, 3×3 convolutions,
noise inputs, unconditional (``c_dim=0``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

__all__ = ["StyleGAN2Config", "RELEASED_CONFIGS", "RELEASED_INIT_KWARGS"]

_FIELDS = (
  "z_dim",
  "c_dim",
  "w_dim",
  "img_resolution",
  "img_channels",
  "mapping_layers",
  "mapping_lr_multiplier",
  "channel_base",
  "channel_max",
  "num_fp16_res",
  "conv_clamp",
)

# MappingNetwork / SynthesisNetwork / SynthesisBlock / SynthesisLayer defaults
# (stylegan2-ada-pytorch training/networks.py).
_MAPPING_DEFAULTS = dict(
  num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01, w_avg_beta=0.995
)
_SYNTHESIS_DEFAULTS = dict(
  channel_base=32768,
  channel_max=512,
  num_fp16_res=0,
  conv_clamp=None,
  architecture="skip",
  resample_filter=[1, 3, 3, 1],
  use_noise=True,
  activation="lrelu",
  kernel_size=3,
)
# The only values of the variant this port implements.
_REQUIRED_SYNTHESIS = dict(
  architecture="skip", resample_filter=[1, 3, 3, 1], use_noise=True, activation="lrelu", kernel_size=3
)
_REQUIRED_MAPPING = dict(activation="lrelu", embed_features=None)


@dataclasses.dataclass(frozen=True)
class StyleGAN2Config:
  """Generator hyper-parameters (hashable)."""

  z_dim: int = 512
  c_dim: int = 0
  w_dim: int = 512
  img_resolution: int = 512
  img_channels: int = 3
  mapping_layers: int = 8
  mapping_lr_multiplier: float = 0.01
  channel_base: int = 32768
  channel_max: int = 512
  num_fp16_res: int = 0
  conv_clamp: Any = None  # None or a float

  def __post_init__(self):
    for name in (
      "z_dim",
      "c_dim",
      "w_dim",
      "img_resolution",
      "img_channels",
      "mapping_layers",
      "channel_base",
      "channel_max",
      "num_fp16_res",
    ):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"StyleGAN2Config.{name} must be a non-negative integer, got {v!r}")
    if self.c_dim:
      raise ValueError(
        f"c_dim={self.c_dim}: class-conditional generators are not supported by regionjax.ports.stylegan2"
      )
    if self.z_dim < 1 or self.w_dim < 1 or self.mapping_layers < 1 or self.img_channels < 1:
      raise ValueError("StyleGAN2Config needs z_dim, w_dim, mapping_layers and img_channels >= 1")
    r = self.img_resolution
    if r < 4 or r & (r - 1):
      raise ValueError(f"img_resolution must be a power of two >= 4, got {r}")
    object.__setattr__(self, "mapping_lr_multiplier", float(self.mapping_lr_multiplier))
    if self.conv_clamp is not None:
      c = float(self.conv_clamp)
      if not (c >= 0 and math.isfinite(c)):
        raise ValueError(f"conv_clamp must be None or a finite number >= 0, got {self.conv_clamp!r}")
      object.__setattr__(self, "conv_clamp", c)
    if min(self.channels().values()) < 1:
      raise ValueError("every block needs at least one channel (channel_base too small)")

  # ----------------------------------------------------------------- derived
  @property
  def resolutions(self) -> tuple:
    """b4, b8, …, b{img_resolution}."""
    return tuple(2**i for i in range(2, int(math.log2(self.img_resolution)) + 1))

  def channels(self) -> dict:
    """Output channels of each block: min(channel_base // res, channel_max)."""
    return {r: min(self.channel_base // r, self.channel_max) for r in self.resolutions}

  @property
  def num_ws(self) -> int:
    """One w per synthesis layer plus one for the last ToRGB (b4: 1 conv, others 2)."""
    return 1 + 2 * (len(self.resolutions) - 1) + 1

  def w_index(self, res: int) -> int:
    """Index of the first w block ``res`` uses (its ToRGB uses the next block's first)."""
    return 0 if res == 4 else 1 + 2 * (self.resolutions.index(res) - 1)

  def fp16_resolutions(self) -> tuple:
    """The blocks the release runs in float16 (num_fp16_res highest, at least 8×8)."""
    lo = max(2 ** (int(math.log2(self.img_resolution)) + 1 - self.num_fp16_res), 8)
    return tuple(r for r in self.resolutions if r >= lo) if self.num_fp16_res else ()

  def taps(self) -> tuple:
    """Every tap in execution order: ``(name, res, op, channels)``; op is
    'conv0', 'conv1' (a synthesis layer's output) or 'block' (the block's
    feature output, the same tensor as its conv1)."""
    out = []
    ch = self.channels()
    for r in self.resolutions:
      if r != 4:
        out.append((f"b{r}.conv0", r, "conv0", ch[r]))
      out.append((f"b{r}.conv1", r, "conv1", ch[r]))
      out.append((f"b{r}", r, "block", ch[r]))
    return tuple(out)

  @property
  def tap_names(self) -> tuple:
    return tuple(t[0] for t in self.taps())

  # ------------------------------------------------------------- serialise
  def to_dict(self) -> dict:
    return {k: getattr(self, k) for k in _FIELDS}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> "StyleGAN2Config":
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
      raise ValueError(f"{source} is not a regionjax.ports.stylegan2 config: unknown keys {unknown}")
    try:
      return cls(**dict(d))
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: invalid StyleGAN2 config: {e}") from e

  def to_json(self, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
      json.dump(self.to_dict(), f, indent=2, sort_keys=True)
      f.write("\n")

  @classmethod
  def from_json(cls, path) -> "StyleGAN2Config":
    path = os.fspath(path)
    try:
      with open(path, encoding="utf-8") as f:
        d = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"{path} is not a regionjax.ports.stylegan2 config.json ({e})") from e
    if not isinstance(d, Mapping):
      raise ValueError(f"{path} is not a regionjax.ports.stylegan2 config.json")
    return cls.from_dict(d, source=path)

  @classmethod
  def from_init_kwargs(cls, kwargs: Mapping[str, Any], source: str = "the network") -> "StyleGAN2Config":
    """The ``Generator`` constructor arguments recorded in an NVlabs pickle."""
    kw = dict(kwargs)
    for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
      if k not in kw:
        raise ValueError(f"{source} does not record {k} in its constructor arguments")
    mk = dict(_MAPPING_DEFAULTS)
    mk.update(kw.get("mapping_kwargs") or {})
    sk = dict(_SYNTHESIS_DEFAULTS)
    sk.update(kw.get("synthesis_kwargs") or {})
    for k, want in _REQUIRED_SYNTHESIS.items():
      got = sk.get(k)
      if (list(got) if isinstance(got, (list, tuple)) else got) != want:
        raise ValueError(
          f"{source} is a StyleGAN2 generator with synthesis {k}={got!r}; regionjax.ports.stylegan2 supports "
          "the released variant (skip architecture, [1,3,3,1] filter, lrelu, 3×3 kernels, noise)"
        )
    for k, want in _REQUIRED_MAPPING.items():
      if mk.get(k) != want:
        raise ValueError(f"{source} has mapping {k}={mk.get(k)!r}; regionjax.ports.stylegan2 supports {k}={want!r}")
    if mk.get("layer_features") not in (None, kw["w_dim"]):
      raise ValueError(f"{source} has mapping layer_features={mk['layer_features']!r} != w_dim")
    if kw.get("c_dim"):
      raise ValueError(
        f"{source} is class-conditional (c_dim={kw['c_dim']}); regionjax.ports.stylegan2 supports "
        "unconditional generators such as StyleGAN2-ADA's afhqcat.pkl"
      )
    try:
      return cls(
        z_dim=kw["z_dim"],
        c_dim=kw["c_dim"],
        w_dim=kw["w_dim"],
        img_resolution=kw["img_resolution"],
        img_channels=kw["img_channels"],
        mapping_layers=mk["num_layers"],
        mapping_lr_multiplier=mk["lr_multiplier"],
        channel_base=sk["channel_base"],
        channel_max=sk["channel_max"],
        num_fp16_res=sk["num_fp16_res"],
        conv_clamp=sk["conv_clamp"],
      )
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: unsupported Generator arguments: {e}") from e


#: StyleGAN2-ADA's AFHQ cat 512×512 generator (afhqcat.pkl): train.py's
#: 'paper512' spec (fmaps=1 → channel_base 32768, channel_max 512, map=8) with
#: the mixed-precision settings train.py always adds (num_fp16_res 4,
#: conv_clamp 256); z_dim = w_dim = 512, unconditional.
RELEASED_CONFIGS = {
  "afhqcat": StyleGAN2Config(
    z_dim=512,
    c_dim=0,
    w_dim=512,
    img_resolution=512,
    img_channels=3,
    mapping_layers=8,
    mapping_lr_multiplier=0.01,
    channel_base=32768,
    channel_max=512,
    num_fp16_res=4,
    conv_clamp=256.0,
  ),
}

#: ``G_ema._init_kwargs`` as train.py builds them for --cfg=paper512.
RELEASED_INIT_KWARGS = {
  "afhqcat": dict(
    z_dim=512,
    w_dim=512,
    c_dim=0,
    img_resolution=512,
    img_channels=3,
    mapping_kwargs=dict(num_layers=8),
    synthesis_kwargs=dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256),
  ),
}
