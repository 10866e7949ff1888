"""Architecture of NVAE's generation path, read from the ``args`` of a checkpoint.

The fields are the training arguments of NVlabs/NVAE ``train.py`` that shape the
decoder (``AutoEncoder.__init__`` in its ``model.py``). A released
``checkpoint.pt`` stores them as ``args`` (an ``argparse.Namespace``);
:meth:`NVAEConfig.from_args` reads them, filling the arguments older checkpoints
lack the way NVAE's ``evaluate.py`` does (``ada_groups=False``,
``min_groups_per_scale=1``, ``num_mixture_dec=10``).

:meth:`NVAEConfig.tower` lists the modules of ``dec_tower`` in order — the
taps ``layer0 … layerK`` of this port — with their kind, channels, resolution
and latent group.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Mapping

__all__ = ["NVAEConfig", "CELEBA64", "CHANNEL_MULT", "TowerModule"]

#: NVAE model.py CHANNEL_MULT: channels double at every down cell and halve at every up cell.
CHANNEL_MULT = 2

# evaluate.py fills these when a checkpoint's args lack them ("old model").
_EVAL_DEFAULTS = dict(ada_groups=False, min_groups_per_scale=1, num_mixture_dec=10)

_FIELDS = (
  "dataset",
  "num_channels_dec",
  "num_latent_scales",
  "num_groups_per_scale",
  "num_latent_per_group",
  "num_cell_per_cond_dec",
  "num_preprocess_blocks",
  "num_postprocess_blocks",
  "num_postprocess_cells",
  "num_mixture_dec",
  "ada_groups",
  "min_groups_per_scale",
  "use_se",
  "arch_instance",
  "num_x_bits",
  "num_nf",
)

# The decoder cells of NVAE utils.get_arch_cells(arch_instance) for the instances whose decoder uses the
# inverted-residual ('mconv_e{ex}k{k}g{g}') cells; the encoder-side entries do not enter the generation path.
_DEC_ARCH = {
  "res_mbconv": dict(
    normal_dec="mconv_e6k5g0", up_dec="mconv_e6k5g0", normal_post="mconv_e3k5g0", up_post="mconv_e3k5g0"
  ),
  "res53_mbconv": dict(
    normal_dec="mconv_e6k5g0", up_dec="mconv_e6k5g0", normal_post="mconv_e3k5g0", up_post="mconv_e3k5g0"
  ),
  "res35_mbconv": dict(
    normal_dec="mconv_e6k5g0", up_dec="mconv_e6k5g0", normal_post="mconv_e3k5g0", up_post="mconv_e3k5g0"
  ),
  "res55_mbconv": dict(
    normal_dec="mconv_e6k5g0", up_dec="mconv_e6k5g0", normal_post="mconv_e3k5g0", up_post="mconv_e3k5g0"
  ),
  "mbconv_sep": dict(
    normal_dec="mconv_e6k5g0", up_dec="mconv_e6k5g0", normal_post="mconv_e3k5g0", up_post="mconv_e3k5g0"
  ),
  "mbconv_sep11": dict(
    normal_dec="mconv_e6k11g0", up_dec="mconv_e6k11g0", normal_post="mconv_e3k5g0", up_post="mconv_e3k5g0"
  ),
}
_MCONV = re.compile(r"^mconv_e(\d+)k(\d+)g(\d+)$")


@dataclasses.dataclass(frozen=True)
class TowerModule:
  """One module of ``dec_tower`` (or ``post_process``): ``kind`` is 'normal', 'up' or 'combiner'."""

  kind: str
  cin: int
  cout: int
  res: int  # output resolution
  group: int = -1  # latent group of a combiner (0 = the first, fixed N(0, t²) group), else -1


@dataclasses.dataclass(frozen=True)
class NVAEConfig:
  """Decoder hyper-parameters of an NVAE ``AutoEncoder`` (hashable)."""

  dataset: str = "celeba_64"
  num_channels_dec: int = 64
  num_latent_scales: int = 3
  num_groups_per_scale: int = 20
  num_latent_per_group: int = 20
  num_cell_per_cond_dec: int = 2
  num_preprocess_blocks: int = 1
  num_postprocess_blocks: int = 1
  num_postprocess_cells: int = 2
  num_mixture_dec: int = 10
  ada_groups: bool = True
  min_groups_per_scale: int = 1
  use_se: bool = True
  arch_instance: str = "res_mbconv"
  num_x_bits: int = 8
  num_nf: int = 1

  def __post_init__(self):
    from regionjax.ports.checkpoint import check_magnitudes  # noqa: PLC0415

    check_magnitudes(self)  # before anything is built from it (a hostile config.json)
    for name in (
      "num_channels_dec",
      "num_latent_scales",
      "num_groups_per_scale",
      "num_latent_per_group",
      "num_cell_per_cond_dec",
      "num_preprocess_blocks",
      "num_postprocess_blocks",
      "num_postprocess_cells",
      "num_mixture_dec",
      "min_groups_per_scale",
      "num_x_bits",
      "num_nf",
    ):
      v = getattr(self, name)
      if isinstance(v, bool) or int(v) != v or int(v) < 0:
        raise ValueError(f"NVAE args: {name} must be a non-negative integer, got {v!r}")
      object.__setattr__(self, name, int(v))
    for name in ("ada_groups", "use_se"):
      object.__setattr__(self, name, bool(getattr(self, name)))
    if self.arch_instance not in _DEC_ARCH:
      raise ValueError(
        f"NVAE args: arch_instance {self.arch_instance!r} is not supported; this port implements the "
        f"inverted-residual decoders {sorted(_DEC_ARCH)}"
      )
    if self.num_latent_scales < 1 or self.num_groups_per_scale < 1 or self.num_latent_per_group < 1:
      raise ValueError("NVAE args: num_latent_scales, num_groups_per_scale and num_latent_per_group must be >= 1")
    if self.num_latent_scales == 1 and self.num_groups_per_scale == 1:
      raise ValueError("NVAE args: the 'vanilla VAE' (one scale, one group) has no decoder tower to explain")
    if self.num_mixture_dec < 2:
      raise ValueError("this port implements the discretised logistic mixture output (num_mixture_dec >= 2)")
    res = self.input_size
    if res % self.spatial_scaling or res < self.spatial_scaling:
      raise ValueError(f"NVAE args: input size {res} is not divisible by the spatial scaling {self.spatial_scaling}")
    if (
      self.num_channels_dec
      * self.c_scaling
      % (CHANNEL_MULT ** (self.num_latent_scales - 1 + self.num_postprocess_blocks))
    ):
      raise ValueError("NVAE args: num_channels_dec does not halve evenly through the up cells")

  # ---------------------------------------------------------------- derived
  @property
  def input_size(self) -> int:
    """NVAE utils.get_input_size for the image datasets (celeba_N, imagenet_N, lsun_*_N, cifar10, ffhq)."""
    d = self.dataset
    if d == "cifar10":
      return 32
    if d == "ffhq":
      return 256
    if d.startswith(("celeba", "imagenet", "lsun")):
      try:
        return int(d.split("_")[-1])
      except ValueError:
        pass
    raise ValueError(
      f"NVAE args: dataset {d!r} is not an RGB image dataset this port knows "
      "(celeba_N, imagenet_N, lsun_*_N, cifar10, ffhq)"
    )

  @property
  def c_scaling(self) -> int:
    return CHANNEL_MULT ** (self.num_preprocess_blocks + self.num_latent_scales - 1)

  @property
  def spatial_scaling(self) -> int:
    return 2 ** (self.num_preprocess_blocks + self.num_latent_scales - 1)

  @property
  def groups_per_scale(self) -> tuple:
    """NVAE utils.groups_per_scale: groups of the encoder's scales (finest first); halved per scale with ada_groups."""
    g, n = [], self.num_groups_per_scale
    for _ in range(self.num_latent_scales):
      g.append(n)
      if self.ada_groups:
        n = max(self.min_groups_per_scale, n // 2)
    return tuple(g)

  @property
  def prior_shape(self) -> tuple:
    """(h, w, C) of ``prior_ftr0`` (NHWC)."""
    r = self.input_size // self.spatial_scaling
    return (r, r, self.c_scaling * self.num_channels_dec)

  @property
  def num_groups(self) -> int:
    return sum(self.groups_per_scale)

  def group_shapes(self) -> tuple:
    """(h, w, num_latent_per_group) of each latent group's ε, in decoding order."""
    r0 = self.input_size // self.spatial_scaling
    out = []
    for s in range(self.num_latent_scales):
      r = r0 * 2**s
      out += [(r, r, self.num_latent_per_group)] * self.groups_per_scale[self.num_latent_scales - s - 1]
    return tuple(out)

  def cell_op(self, cell_type: str) -> tuple:
    """(ex, k, g) of the inverted-residual op of a decoder cell type."""
    m = _MCONV.match(_DEC_ARCH[self.arch_instance][cell_type])
    return tuple(int(v) for v in m.groups())

  def tower(self) -> tuple:
    """The modules of ``dec_tower`` in order (AutoEncoder.init_decoder_tower)."""
    mods = []
    c = self.prior_shape[2]
    r = self.prior_shape[0]
    group = 0
    for s in range(self.num_latent_scales):
      for g in range(self.groups_per_scale[self.num_latent_scales - s - 1]):
        if not (s == 0 and g == 0):
          mods += [TowerModule("normal", c, c, r)] * self.num_cell_per_cond_dec
        mods.append(TowerModule("combiner", c, c, r, group))
        group += 1
      if s < self.num_latent_scales - 1:
        mods.append(TowerModule("up", c, c // CHANNEL_MULT, 2 * r))
        c, r = c // CHANNEL_MULT, 2 * r
    return tuple(mods)

  def post_process(self) -> tuple:
    """The cells of ``post_process`` (AutoEncoder.init_post_process)."""
    c, r = self.tower()[-1].cout, self.tower()[-1].res
    mods = []
    for _ in range(self.num_postprocess_blocks):
      for j in range(self.num_postprocess_cells):
        if j == 0:
          mods.append(TowerModule("up", c, c // CHANNEL_MULT, 2 * r))
          c, r = c // CHANNEL_MULT, 2 * r
        else:
          mods.append(TowerModule("normal", c, c, r))
    return tuple(mods)

  @property
  def image_resolution(self) -> int:
    return self.post_process()[-1].res if self.post_process() else self.tower()[-1].res

  @property
  def tap_names(self) -> tuple:
    return tuple(f"layer{i}" for i in range(len(self.tower())))

  # ------------------------------------------------------------------ I/O
  @classmethod
  def from_args(cls, args: Any, source: str = "the checkpoint") -> "NVAEConfig":
    """From ``checkpoint['args']`` (a Namespace or a mapping); missing args filled as evaluate.py does."""
    d = dict(args) if isinstance(args, Mapping) else dict(vars(args))
    for k, v in _EVAL_DEFAULTS.items():
      d.setdefault(k, v)
    if d.get("dataset") in ("mnist", "omniglot", "stacked_mnist"):
      raise ValueError(
        f"{source}: an NVAE trained on {d['dataset']} (Bernoulli output); this port implements the "
        "RGB models with the logistic mixture output"
      )
    missing = [k for k in _FIELDS if k not in d]
    if missing:
      raise ValueError(f"{source}: its args lack {missing}; it is not an NVAE train.py checkpoint")
    try:
      return cls(**{k: d[k] for k in _FIELDS})
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: {e}") from None

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Mapping) -> "NVAEConfig":
    return cls(**{k: d[k] for k in d if k in {f.name for f in dataclasses.fields(cls)}})

  def to_json(self, path) -> None:
    with open(os.fspath(path), "w", encoding="utf-8") as f:
      json.dump(self.to_dict(), f, indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, path) -> "NVAEConfig":
    with open(os.fspath(path), encoding="utf-8") as f:
      return cls.from_dict(json.load(f))


#: The released CelebA 64×64 model: the training command of NVlabs/NVAE README.md ("CelebA 64"):
#: --dataset celeba_64 --num_channels_enc 64 --num_channels_dec 64 --num_postprocess_cells 2
#: --num_preprocess_cells 2 --num_latent_scales 3 --num_latent_per_group 20 --num_cell_per_cond_enc 2
#: --num_cell_per_cond_dec 2 --num_preprocess_blocks 1 --num_postprocess_blocks 1 --num_groups_per_scale 20
#: --num_nf 1 --ada_groups --use_se --res_dist (arch_instance: train.py's default 'res_mbconv').
CELEBA64 = NVAEConfig()
