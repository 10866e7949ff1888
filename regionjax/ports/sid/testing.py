"""Random-weight SiD/EDM network pickles in the released format (no torch).

:func:`random_network` builds the module tree an NVlabs/edm ``EDMPrecond``
(``model_type='SongUNet'``) pickles as — every persistent module with the
parameters, buffers, attributes and init kwargs the reference's modules hold
— with random weights, and :func:`write_random_pickle` writes
``{'ema': net}`` through :func:`regionjax.ports.nvlabs_pickle.dump`. The reference's own
``pickle.load`` reads the result (the parity fixtures were made that way).

Weights are N(0, 1/fan_in) (so activations stay O(1)), biases N(0, 0.1²),
group-norm scales 1 + N(0, 0.1²): every layer the reference initialises to
zero (conv1, proj, aux_conv with init_weight 1e-5) gets non-zero weights,
so each one matters to the parity check.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from regionjax.ports import nvlabs_pickle as nvp
from .config import SiDConfig

__all__ = ["random_network", "random_state_dict", "write_random_pickle", "init_kwargs"]


def init_kwargs(config: SiDConfig, dropout: float = 0.05) -> dict:
  """``EDMPrecond`` constructor arguments (sid_train.py's ddpmpp set)."""
  return dict(
    img_resolution=config.img_resolution,
    img_channels=config.img_channels,
    label_dim=0,
    use_fp16=config.use_fp16,
    model_type="SongUNet",
    embedding_type="positional",
    encoder_type="standard",
    decoder_type="standard",
    channel_mult_noise=config.channel_mult_noise,
    resample_filter=[1, 1],
    model_channels=config.model_channels,
    channel_mult=list(config.channel_mult),
    augment_dim=config.augment_dim,
    dropout=dropout,
    channel_mult_emb=config.channel_mult_emb,
    num_blocks=config.num_blocks,
    attn_resolutions=list(config.attn_resolutions),
    sigma_data=config.sigma_data,
  )


class _Rand:
  def __init__(self, seed):
    self.rs = np.random.RandomState(seed)

  def weight(self, shape, fan_in):
    return (self.rs.standard_normal(shape) / math.sqrt(fan_in)).astype(np.float32)

  def bias(self, n):
    return (0.1 * self.rs.standard_normal(n)).astype(np.float32)

  def scale(self, n):
    return (1 + 0.1 * self.rs.standard_normal(n)).astype(np.float32)


_FILTER = np.full((1, 1, 2, 2), 0.25, np.float32)  # [1,1] ⊗ [1,1] / 4


def _linear(r, fin, fout, bias=True):
  params = {"weight": r.weight((fout, fin), fin)}
  attrs = {"in_features": fin, "out_features": fout}
  if bias:
    params["bias"] = r.bias(fout)
  else:
    attrs["bias"] = None
  return nvp.persistent(
    "Linear",
    parameters=params,
    attributes=attrs,
    init_kwargs=dict(in_features=fin, out_features=fout, bias=bias, init_mode="xavier_uniform"),
  )


def _conv(r, cin, cout, kernel, up=False, down=False):
  params, attrs = {}, {"in_channels": cin, "out_channels": cout, "up": up, "down": down, "fused_resample": False}
  if kernel:
    params["weight"] = r.weight((cout, cin, kernel, kernel), cin * kernel * kernel)
    params["bias"] = r.bias(cout)
  else:
    attrs.update(weight=None, bias=None)
  buffers = {"resample_filter": _FILTER.copy() if up or down else None}
  return nvp.persistent(
    "Conv2d",
    parameters=params,
    buffers=buffers,
    attributes=attrs,
    init_kwargs=dict(
      in_channels=cin,
      out_channels=cout,
      kernel=kernel,
      up=up,
      down=down,
      resample_filter=[1, 1],
      init_mode="xavier_uniform",
    ),
  )


def _norm(r, c, eps=1e-6):
  return nvp.persistent(
    "GroupNorm",
    parameters={"weight": r.scale(c), "bias": r.bias(c)},
    attributes={"num_groups": min(32, c // 4), "eps": eps},
    init_kwargs=dict(num_channels=c, eps=eps),
  )


def _block(r, cin, cout, emb, up=False, down=False, attention=False):
  mods = collections.OrderedDict()
  mods["norm0"] = _norm(r, cin)
  mods["conv0"] = _conv(r, cin, cout, 3, up=up, down=down)
  mods["affine"] = _linear(r, emb, cout)
  mods["norm1"] = _norm(r, cout)
  mods["conv1"] = _conv(r, cout, cout, 3)
  attrs = {
    "in_channels": cin,
    "out_channels": cout,
    "emb_channels": emb,
    "num_heads": 1 if attention else 0,
    "dropout": 0.05,
    "skip_scale": np.float64(np.sqrt(0.5)),
    "adaptive_scale": False,
  }
  if cout != cin or up or down:
    mods["skip"] = _conv(r, cin, cout, 1, up=up, down=down)
  else:
    attrs["skip"] = None
  if attention:
    mods["norm2"] = _norm(r, cout)
    mods["qkv"] = _conv(r, cout, 3 * cout, 1)
    mods["proj"] = _conv(r, cout, cout, 1)
  kw = dict(
    in_channels=cin,
    out_channels=cout,
    emb_channels=emb,
    num_heads=1,
    dropout=0.05,
    skip_scale=np.float64(np.sqrt(0.5)),
    eps=1e-6,
    resample_filter=[1, 1],
    resample_proj=True,
    adaptive_scale=False,
    init=dict(init_mode="xavier_uniform"),
    init_zero=dict(init_mode="xavier_uniform", init_weight=1e-5),
    init_attn=dict(init_mode="xavier_uniform", init_weight=np.float64(np.sqrt(0.2))),
  )
  kw.update(up=up, down=down, attention=attention)
  return nvp.persistent("UNetBlock", modules=mods, attributes=attrs, init_kwargs=kw)


def random_network(config: SiDConfig, seed: int = 0, module_src: str = ""):
  """The ``EDMPrecond`` persistent object (for :func:`regionjax.ports.nvlabs_pickle.dump`)."""
  r = _Rand(seed)
  emb, noise = config.emb_channels, config.noise_channels
  enc, dec = collections.OrderedDict(), collections.OrderedDict()
  for part, name, kind, cin, cout, _res, attn in config.blocks():
    target = enc if part == "enc" else dec
    if kind == "conv":
      target[name] = _conv(r, cin, cout, 3)
    else:
      target[name] = _block(r, cin, cout, emb, up=kind == "up", down=kind == "down", attention=attn)
  res = config.img_resolution
  last = config.model_channels * config.channel_mult[0]
  dec[f"{res}x{res}_aux_norm"] = _norm(r, last)
  dec[f"{res}x{res}_aux_conv"] = _conv(r, last, config.img_channels, 3)
  mods = collections.OrderedDict()
  mods["map_noise"] = nvp.persistent(
    "PositionalEmbedding",
    attributes={"num_channels": noise, "max_positions": 10000, "endpoint": True},
    init_kwargs=dict(num_channels=noise, endpoint=True),
  )
  attrs = {"label_dropout": 0, "map_label": None}
  if config.augment_dim:
    mods["map_augment"] = _linear(r, config.augment_dim, noise, bias=False)
  else:
    attrs["map_augment"] = None
  mods["map_layer0"] = _linear(r, noise, emb)
  mods["map_layer1"] = _linear(r, emb, emb)
  mods["enc"] = nvp.container("ModuleDict", enc)
  mods["dec"] = nvp.container("ModuleDict", dec)
  kw = init_kwargs(config)
  unet_kw = {k: v for k, v in kw.items() if k not in ("use_fp16", "model_type", "sigma_data", "img_channels")}
  unet_kw.update(in_channels=config.img_channels, out_channels=config.img_channels)
  unet = nvp.persistent("SongUNet", modules=mods, attributes=attrs, init_kwargs=unet_kw, module_src=module_src)
  net = nvp.persistent(
    "EDMPrecond",
    modules={"model": unet},
    module_src=module_src,
    init_kwargs=kw,
    attributes={
      "img_resolution": config.img_resolution,
      "img_channels": config.img_channels,
      "label_dim": 0,
      "use_fp16": config.use_fp16,
      "sigma_min": 0,
      "sigma_max": float("inf"),
      "sigma_data": config.sigma_data,
    },
  )
  _set_source(net, module_src)
  return net


def _set_source(obj, src):
  """Every persistent module of networks.py carries that module's source."""
  meta = getattr(obj, "meta", None)
  state = meta["state"] if meta is not None else getattr(obj, "state", None)
  if meta is not None:
    meta["module_src"] = src
  for child in (state or {}).get("_modules", {}).values():
    _set_source(child, src)


def write_random_pickle(path, config: SiDConfig, seed: int = 0, module_src: str = "") -> None:
  """Writes ``{'ema': random_network(config, seed)}`` like SiD's snapshots."""
  nvp.dump({"ema": random_network(config, seed, module_src)}, path)


def random_state_dict(config: SiDConfig, seed: int = 0) -> "collections.OrderedDict[str, np.ndarray]":
  """The state dict of :func:`random_network` (``model.enc.…`` names)."""
  return nvp.loads(nvp.dumps(random_network(config, seed))).state_dict()
