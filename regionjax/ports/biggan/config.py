"""BigGAN-deep configuration, mirroring the reference `BigGANConfig`.

The fields and their meaning are those of pytorch-pretrained-biggan's
`config.py` (and of the `config.json` files published beside the released
`pytorch_model.bin`). The released configurations are spelled out in
`RELEASED_CONFIGS`; they are the values of `BigGAN128/256/512` at the bottom of
the reference's `convert_tf_to_pytorch.py`.

Two generalisations, both identical to the reference for every released
configuration, let the same code build small models trained from scratch:

* the class embedding has `class_embed_dim` outputs (the reference uses
  `z_dim`; the released configs have `class_embed_dim == z_dim == 128`), so the
  condition vector has `z_dim + class_embed_dim` entries;
* the 4×4 seed has `channel_width * layers[0][1]` channels and the output
  head `channel_width * layers[-1][2]` (the reference hard-codes 16 and 1,
  which is what every released config has).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

__all__ = ["BigGANConfig", "RELEASED_CONFIGS"]

_FIELDS = (
  "output_dim",
  "z_dim",
  "class_embed_dim",
  "channel_width",
  "num_classes",
  "layers",
  "attention_layer_position",
  "eps",
  "n_stats",
)


@dataclasses.dataclass(frozen=True)
class BigGANConfig:
  """Architecture of a BigGAN-deep generator (hashable, immutable).

  Attributes mirror the reference: `layers` is a sequence of
  `(up_sample, in_mult, out_mult)`; block `i` maps
  `channel_width*in_mult` to `channel_width*out_mult` channels and doubles
  the resolution when `up_sample`. A self-attention layer is inserted *before*
  block `attention_layer_position` (so it takes that index in the list of
  taps, and later blocks shift by one). `eps` is the batch-norm epsilon;
  `n_stats` the number of stored running statistics, for truncations
  `0, 1/(n_stats-1), …, 1`.
  """

  output_dim: int = 128
  z_dim: int = 128
  class_embed_dim: int = 128
  channel_width: int = 128
  num_classes: int = 1000
  layers: tuple = (
    (False, 16, 16),
    (True, 16, 16),
    (False, 16, 16),
    (True, 16, 8),
    (False, 8, 8),
    (True, 8, 4),
    (False, 4, 4),
    (True, 4, 2),
    (False, 2, 2),
    (True, 2, 1),
  )
  attention_layer_position: int = 8
  eps: float = 1e-4
  n_stats: int = 51

  def __post_init__(self):
    from regionjax.ports.checkpoint import check_magnitudes  # noqa: PLC0415

    check_magnitudes(self)  # before anything is built from it (a hostile config.json)
    try:
      layers = tuple((bool(u), int(i), int(o)) for u, i, o in self.layers)
    except (TypeError, ValueError) as e:
      raise ValueError(
        f"BigGANConfig.layers must be a list of (up_sample, in_mult, out_mult), got {self.layers!r}"
      ) from e
    object.__setattr__(self, "layers", layers)
    for name in (
      "output_dim",
      "z_dim",
      "class_embed_dim",
      "channel_width",
      "num_classes",
      "attention_layer_position",
      "n_stats",
    ):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"BigGANConfig.{name} must be an integer, got {value!r}")
    object.__setattr__(self, "eps", float(self.eps))
    self.validate()

  # ------------------------------------------------------------------ checks
  def validate(self) -> None:
    """Raises ValueError when the fields do not describe a buildable model."""
    if not self.layers:
      raise ValueError("BigGANConfig.layers is empty")
    for name in ("z_dim", "class_embed_dim", "channel_width", "num_classes"):
      if getattr(self, name) < 1:
        raise ValueError(f"BigGANConfig.{name} must be positive, got {getattr(self, name)}")
    if self.n_stats < 2:
      raise ValueError(f"BigGANConfig.n_stats must be at least 2, got {self.n_stats}")
    if not 0 <= self.attention_layer_position <= len(self.layers):
      raise ValueError(
        f"BigGANConfig.attention_layer_position={self.attention_layer_position} is outside 0..{len(self.layers)}"
      )
    for k, (up, i, o) in enumerate(self.layers):
      if i < 1 or o < 1:
        raise ValueError(f"BigGANConfig.layers[{k}] has a non-positive multiplier: {(up, i, o)}")
      if o > i:
        raise ValueError(
          f"BigGANConfig.layers[{k}]={(up, i, o)}: a block cannot widen its channels (the skip path drops channels)"
        )
      if (self.channel_width * i) // 4 < 1:
        raise ValueError(f"BigGANConfig.layers[{k}]: channel_width*in_mult must be >= 4")
      if k > 0 and self.layers[k - 1][2] != i:
        raise ValueError(
          f"BigGANConfig.layers[{k}] takes {i}x channels but layers[{k - 1}] gives {self.layers[k - 1][2]}x"
        )
    if self.attention_layer_position < len(self.layers):
      att_ch = self.channel_width * self.layers[self.attention_layer_position][1]
      if att_ch < 8:
        raise ValueError("the self-attention layer needs at least 8 channels")
      res = 4 * 2 ** sum(u for u, _, _ in self.layers[: self.attention_layer_position])
      if res % 2:
        raise ValueError("the self-attention layer needs an even resolution")
    if self.channel_width * self.layers[-1][2] < 3:
      raise ValueError("the output head needs at least 3 channels")
    expected = 4 * 2**self.num_upsamples
    if self.output_dim != expected:
      raise ValueError(
        f"BigGANConfig.output_dim={self.output_dim} but the layers up-sample 4x4 "
        f"{self.num_upsamples} times, giving {expected}"
      )

  # --------------------------------------------------------------- derived
  @property
  def num_upsamples(self) -> int:
    return sum(1 for u, _, _ in self.layers if u)

  @property
  def condition_dim(self) -> int:
    return self.z_dim + self.class_embed_dim

  @property
  def num_taps(self) -> int:
    """Entries of the reference's `generator.layers` (blocks + attention)."""
    return len(self.layers) + (1 if self.attention_layer_position < len(self.layers) else 0)

  @property
  def tap_names(self) -> tuple:
    return tuple(f"layer{i}" for i in range(self.num_taps))

  def stages(self) -> tuple:
    """The reference's `generator.layers`, in order: ('attention', ch) or
    ('block', (up, in_ch, out_ch))."""
    ch = self.channel_width
    out = []
    for i, (up, a, b) in enumerate(self.layers):
      if i == self.attention_layer_position:
        out.append(("attention", ch * a))
      out.append(("block", (up, ch * a, ch * b)))
    return tuple(out)

  # ------------------------------------------------------------- serialise
  def to_dict(self) -> dict:
    """JSON-ready dict in the reference's `config.json` format."""
    d = {name: getattr(self, name) for name in _FIELDS}
    d["layers"] = [list(layer) for layer in self.layers]
    return d

  def to_json_string(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], *, source: str = "config") -> "BigGANConfig":
    """Builds a config from a dict with exactly the reference's nine keys."""
    if not isinstance(d, Mapping):
      raise ValueError(f"{source} is not a BigGAN config: expected a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_FIELDS))
    missing = [k for k in _FIELDS if k not in d]
    if unknown or missing:
      raise ValueError(
        f"{source} is not a pytorch-pretrained-biggan BigGAN config: "
        + (f"missing keys {missing}" if missing else "")
        + ("; " if missing and unknown else "")
        + (f"unknown keys {unknown}" if unknown else "")
      )
    try:
      return cls(**{k: d[k] for k in _FIELDS})
    except (TypeError, ValueError) as e:
      raise ValueError(f"{source}: invalid BigGAN config: {e}") from e

  @classmethod
  def from_json(cls, path: str | os.PathLike) -> "BigGANConfig":
    """Reads a reference `config.json` (e.g. biggan-deep-128-config.json)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
      raise FileNotFoundError(f"BigGAN config file not found: {path}")
    try:
      with open(path, "r", encoding="utf-8") as f:
        d = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise ValueError(f"{path} is not a BigGAN config.json (not valid JSON: {e})") from e
    return cls.from_dict(d, source=path)

  def to_json(self, path: str | os.PathLike) -> None:
    with open(path, "w", encoding="utf-8") as f:
      f.write(self.to_json_string())


def _released(output_dim, layers):
  return BigGANConfig(
    output_dim=output_dim,
    z_dim=128,
    class_embed_dim=128,
    channel_width=128,
    num_classes=1000,
    layers=layers,
    attention_layer_position=8,
    eps=1e-4,
    n_stats=51,
  )


_L128 = (
  (False, 16, 16),
  (True, 16, 16),
  (False, 16, 16),
  (True, 16, 8),
  (False, 8, 8),
  (True, 8, 4),
  (False, 4, 4),
  (True, 4, 2),
  (False, 2, 2),
  (True, 2, 1),
)
_L256 = (
  (False, 16, 16),
  (True, 16, 16),
  (False, 16, 16),
  (True, 16, 8),
  (False, 8, 8),
  (True, 8, 8),
  (False, 8, 8),
  (True, 8, 4),
  (False, 4, 4),
  (True, 4, 2),
  (False, 2, 2),
  (True, 2, 1),
)
_L512 = _L256 + ((False, 1, 1), (True, 1, 1))

#: The released BigGAN-deep configs (pytorch-pretrained-biggan
#: convert_tf_to_pytorch.py, `BigGAN128`, `BigGAN256`, `BigGAN512`; the same
#: values as the published `biggan-deep-*-config.json`).
RELEASED_CONFIGS = {
  "biggan-deep-128": _released(128, _L128),
  "biggan-deep-256": _released(256, _L256),
  "biggan-deep-512": _released(512, _L512),
}
