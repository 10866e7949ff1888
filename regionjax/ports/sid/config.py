"""Architecture of an EDM DDPM++ network (``EDMPrecond`` around ``SongUNet``).

The fields are the constructor arguments of NVlabs/edm ``training/networks.py``
``EDMPrecond`` and ``SongUNet`` (SiD's ``training/networks.py`` is the same
file), with ``SongUNet``'s defaults. A pickle records them as the
``EDMPrecond`` object's ``_init_kwargs``; :meth:`SiDConfig.from_init_kwargs`
reads them. Supported is the DDPM++ variant SiD's FFHQ/AFHQ/CIFAR-10
generators use: positional noise embedding, 'standard' encoder and decoder,
``resample_filter=[1, 1]``, no class labels.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

__all__ = ["SiDConfig", "RELEASED_CONFIGS", "SIGMA_INIT"]

#: SiD's one-step generator input noise level σ_init (run_sid.sh
#: `--init_sigma 2.5` for every dataset; generate_onestep.py `--sigma_G` 2.5).
SIGMA_INIT = 2.5

_FIELDS = (
  "img_resolution",
  "img_channels",
  "model_channels",
  "channel_mult",
  "channel_mult_emb",
  "num_blocks",
  "attn_resolutions",
  "channel_mult_noise",
  "augment_dim",
  "label_dim",
  "sigma_data",
  "use_fp16",
)

# SongUNet's constructor defaults (NVlabs/edm training/networks.py).
_SONGUNET_DEFAULTS = dict(
  model_channels=128,
  channel_mult=[1, 2, 2, 2],
  channel_mult_emb=4,
  num_blocks=4,
  attn_resolutions=[16],
  dropout=0.10,
  label_dropout=0,
  embedding_type="positional",
  channel_mult_noise=1,
  encoder_type="standard",
  decoder_type="standard",
  resample_filter=[1, 1],
  augment_dim=0,
  label_dim=0,
)
# The only values of the variant this port implements.
_REQUIRED = dict(
  model_type="SongUNet",
  embedding_type="positional",
  encoder_type="standard",
  decoder_type="standard",
  resample_filter=[1, 1],
)


@dataclasses.dataclass(frozen=True)
class SiDConfig:
  """EDMPrecond(SongUNet) hyper-parameters (hashable)."""

  img_resolution: int = 64
  img_channels: int = 3
  model_channels: int = 128
  channel_mult: tuple = (1, 2, 2, 2)
  channel_mult_emb: int = 4
  num_blocks: int = 4
  attn_resolutions: tuple = (16,)
  channel_mult_noise: int = 1
  augment_dim: int = 9
  label_dim: int = 0
  sigma_data: float = 0.5
  use_fp16: bool = False

  def __post_init__(self):
    object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
    object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
    object.__setattr__(self, "sigma_data", float(self.sigma_data))
    object.__setattr__(self, "use_fp16", bool(self.use_fp16))
    for name in (
      "img_resolution",
      "img_channels",
      "model_channels",
      "channel_mult_emb",
      "num_blocks",
      "channel_mult_noise",
      "augment_dim",
      "label_dim",
    ):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"SiDConfig.{name} must be a non-negative integer, got {v!r}")
    if self.label_dim:
      raise ValueError(
        f"label_dim={self.label_dim}: class-conditional networks are not supported by regionjax.ports.sid"
      )
    if not self.channel_mult or min(self.channel_mult) < 1 or self.model_channels < 1 or self.num_blocks < 1:
      raise ValueError("SiDConfig needs channel_mult >= 1, model_channels >= 1 and num_blocks >= 1")
    if self.img_resolution % (2 ** (len(self.channel_mult) - 1)):
      raise ValueError(f"img_resolution={self.img_resolution} does not halve {len(self.channel_mult) - 1} times")
    for c in self.channels():
      if c // 4 < 1:
        raise ValueError("every feature needs at least 4 channels (group norm)")
    if (self.model_channels * self.channel_mult_noise) % 2:
      raise ValueError("the noise embedding needs an even number of channels")

  # ----------------------------------------------------------------- derived
  @property
  def emb_channels(self) -> int:
    return self.model_channels * self.channel_mult_emb

  @property
  def noise_channels(self) -> int:
    return self.model_channels * self.channel_mult_noise

  def channels(self):
    return [self.model_channels * m for m in self.channel_mult]

  def blocks(self) -> tuple:
    """Every encoder/decoder module in execution order:
    ``(part, name, kind, in_ch, out_ch, resolution, attention)`` with part
    'enc'/'dec' and kind 'conv', 'down', 'block', 'in', 'up' (the names are
    the reference's ``model.enc`` / ``model.dec`` keys)."""
    out = []
    cout = self.img_channels
    skips = []
    for level, mult in enumerate(self.channel_mult):
      res = self.img_resolution >> level
      if level == 0:
        cin, cout = cout, self.model_channels
        out.append(("enc", f"{res}x{res}_conv", "conv", cin, cout, res, False))
      else:
        out.append(("enc", f"{res}x{res}_down", "down", cout, cout, res, False))
      skips.append(cout)
      for idx in range(self.num_blocks):
        cin, cout = cout, self.model_channels * mult
        out.append(("enc", f"{res}x{res}_block{idx}", "block", cin, cout, res, res in self.attn_resolutions))
        skips.append(cout)
    for level, mult in reversed(list(enumerate(self.channel_mult))):
      res = self.img_resolution >> level
      if level == len(self.channel_mult) - 1:
        out.append(("dec", f"{res}x{res}_in0", "in", cout, cout, res, True))
        out.append(("dec", f"{res}x{res}_in1", "in", cout, cout, res, False))
      else:
        out.append(("dec", f"{res}x{res}_up", "up", cout, cout, res, False))
      for idx in range(self.num_blocks + 1):
        cin, cout = cout + skips.pop(), self.model_channels * mult
        out.append(
          (
            "dec",
            f"{res}x{res}_block{idx}",
            "block",
            cin,
            cout,
            res,
            idx == self.num_blocks and res in self.attn_resolutions,
          )
        )
    return tuple(out)

  @property
  def tap_names(self) -> tuple:
    """``enc/64x64_conv`` … ``dec/64x64_block4`` in execution order."""
    return tuple(f"{p}/{n}" for p, n, *_ in self.blocks())

  # ------------------------------------------------------------- serialise
  def to_dict(self) -> dict:
    d = {k: getattr(self, k) for k in _FIELDS}
    d["channel_mult"] = list(self.channel_mult)
    d["attn_resolutions"] = list(self.attn_resolutions)
    return d

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], source: str = "config") -> "SiDConfig":
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
      raise ValueError(f"{source} is not a regionjax.ports.sid config: unknown keys {unknown}")
    try:
      return cls(**dict(d))
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: invalid SiD config: {e}") from e

  def to_json(self, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
      json.dump(self.to_dict(), f, indent=2, sort_keys=True)
      f.write("\n")

  @classmethod
  def from_json(cls, path) -> "SiDConfig":
    path = os.fspath(path)
    try:
      with open(path, encoding="utf-8") as f:
        d = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"{path} is not a regionjax.ports.sid config.json ({e})") from e
    if not isinstance(d, Mapping):
      raise ValueError(f"{path} is not a regionjax.ports.sid config.json")
    return cls.from_dict(d, source=path)

  @classmethod
  def from_init_kwargs(cls, kwargs: Mapping[str, Any], source: str = "the network") -> "SiDConfig":
    """The ``EDMPrecond`` constructor arguments recorded in an NVlabs pickle."""
    kw = dict(_SONGUNET_DEFAULTS)
    kw.update(kwargs)
    kw.setdefault("model_type", "DhariwalUNet")  # EDMPrecond's default
    for k, want in _REQUIRED.items():
      got = kw.get(k)
      if (list(got) if isinstance(got, (list, tuple)) else got) != want:
        raise ValueError(
          f"{source} is an EDMPrecond with {k}={got!r}; regionjax.ports.sid supports the DDPM++ network "
          f"(SongUNet, positional embedding, standard encoder/decoder, resample_filter [1, 1])"
        )
    if kw.get("label_dim"):
      raise ValueError(
        f"{source} is class-conditional (label_dim={kw['label_dim']}); regionjax.ports.sid supports "
        "unconditional networks such as SiD's FFHQ 64×64 generator"
      )
    for k in ("img_resolution", "img_channels"):
      if k not in kw:
        raise ValueError(f"{source} does not record {k} in its constructor arguments")
    try:
      return cls(**{k: kw[k] for k in _FIELDS if k in kw})
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: unsupported EDMPrecond arguments: {e}") from e


#: SiD's FFHQ 64×64 generator: the EDM network it was distilled from,
#: edm-ffhq-64x64-uncond-vp (SiD run_sid.sh `ffhq64`: --arch ddpmpp --cres 1,2,2,2
#: --augment 0.15 --fp16 1; sid_train.py ddpmpp: model_channels 128,
#: channel_mult_noise 1, resample_filter [1,1]; SongUNet defaults: 4 blocks,
#: attention at 16×16; augmentation → augment_dim 9).
RELEASED_CONFIGS = {
  "sid-ffhq64": SiDConfig(
    img_resolution=64,
    img_channels=3,
    model_channels=128,
    channel_mult=(1, 2, 2, 2),
    channel_mult_emb=4,
    num_blocks=4,
    attn_resolutions=(16,),
    channel_mult_noise=1,
    augment_dim=9,
    label_dim=0,
    sigma_data=0.5,
    use_fp16=True,
  ),
}

#: The released FFHQ init kwargs (EDMPrecond) as sid_train.py builds them.
RELEASED_INIT_KWARGS = {
  "sid-ffhq64": dict(
    img_resolution=64,
    img_channels=3,
    label_dim=0,
    use_fp16=True,
    model_type="SongUNet",
    embedding_type="positional",
    encoder_type="standard",
    decoder_type="standard",
    channel_mult_noise=1,
    resample_filter=[1, 1],
    model_channels=128,
    channel_mult=[1, 2, 2, 2],
    augment_dim=9,
    dropout=0.05,
  ),
}
