"""Random-weight StyleGAN2-ADA generator pickles in the released format (no torch).

:func:`random_generator` builds the module tree an NVlabs/stylegan2-ada-pytorch
``Generator`` pickles as — every persistent module (``Generator``,
``SynthesisNetwork``, ``SynthesisBlock``, ``SynthesisLayer``, ``ToRGBLayer``,
``MappingNetwork``, ``FullyConnectedLayer``) with the parameters, buffers,
plain attributes and init kwargs the reference's modules hold — with random
weights, and :func:`write_random_pickle` writes ``{'G': …, 'D': None,
'G_ema': …, 'augment_pipe': None, 'training_set_kwargs': None}`` (the keys of
the released snapshots) through :func:`regionjax.ports.nvlabs_pickle.dump`. The
reference's own ``pickle.load`` reads the result (the parity fixtures were
made that way).

The weights are stored as the reference stores them (before the
equalised-learning-rate gains): conv/FC weights N(0, 1) (mapping layers
N(0, 1)/lr_multiplier), biases N(0, 0.1²) (affine biases 1 + N(0, 0.1²),
mapping biases N(0, 0.1²)/lr_multiplier), noise strengths U(0.1, 0.5),
``noise_const`` and ``const`` N(0, 1), ``w_avg`` N(0, 0.5²): every value the
reference initialises to zero or one is perturbed, so each one matters to
the parity check.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from regionjax.ports import nvlabs_pickle as nvp
from .config import StyleGAN2Config

__all__ = ["random_generator", "write_random_pickle", "random_state_dict", "init_kwargs"]

_FILTER = [1, 3, 3, 1]


def _filter():
  k = np.array(_FILTER, np.float32)
  f = np.outer(k, k)
  return (f / f.sum()).astype(np.float32)


def init_kwargs(config: StyleGAN2Config) -> dict:
  """``Generator`` constructor arguments (train.py's, with this config's values)."""
  return dict(
    z_dim=config.z_dim,
    c_dim=0,
    w_dim=config.w_dim,
    img_resolution=config.img_resolution,
    img_channels=config.img_channels,
    mapping_kwargs=dict(num_layers=config.mapping_layers, lr_multiplier=config.mapping_lr_multiplier),
    synthesis_kwargs=dict(
      channel_base=config.channel_base,
      channel_max=config.channel_max,
      num_fp16_res=config.num_fp16_res,
      conv_clamp=config.conv_clamp,
    ),
  )


class _Rand:
  def __init__(self, seed):
    self.rs = np.random.RandomState(seed)

  def normal(self, shape, scale=1.0, loc=0.0):
    return (loc + scale * self.rs.standard_normal(shape)).astype(np.float32)

  def uniform(self, lo, hi, shape=()):
    return np.asarray(self.rs.uniform(lo, hi, shape), np.float32)


def _fc(r, fin, fout, activation="linear", lr_multiplier=1.0, bias_init=0.0):
  lr = float(lr_multiplier)
  params = {
    "weight": r.normal((fout, fin)) / np.float32(lr),
    "bias": (r.normal((fout,), 0.1, bias_init) / np.float32(lr)).astype(np.float32),
  }
  attrs = {"activation": activation, "weight_gain": lr / np.sqrt(fin), "bias_gain": lr}
  return nvp.persistent(
    "FullyConnectedLayer",
    parameters=params,
    attributes=attrs,
    init_kwargs=dict(
      in_features=fin, out_features=fout, activation=activation, lr_multiplier=lr_multiplier, bias_init=bias_init
    ),
  )


def _layer(r, cin, cout, w_dim, res, up, conv_clamp, channels_last=False):
  mods = collections.OrderedDict(affine=_fc(r, w_dim, cin, bias_init=1))
  params = collections.OrderedDict(
    weight=r.normal((cout, cin, 3, 3)), noise_strength=r.uniform(0.1, 0.5), bias=r.normal((cout,), 0.1)
  )
  buffers = collections.OrderedDict(resample_filter=_filter(), noise_const=r.normal((res, res)))
  attrs = {
    "resolution": res,
    "up": up,
    "use_noise": True,
    "activation": "lrelu",
    "conv_clamp": conv_clamp,
    "padding": 1,
    "act_gain": float(np.sqrt(2)),
  }
  kw = dict(w_dim=w_dim, resolution=res, conv_clamp=conv_clamp, channels_last=channels_last)
  if up != 1:
    kw.update(up=up, resample_filter=list(_FILTER))
  return nvp.persistent(
    "SynthesisLayer",
    parameters=params,
    buffers=buffers,
    modules=mods,
    attributes=attrs,
    init_args=(cin, cout),
    init_kwargs=kw,
  )


def _torgb(r, cin, cout, w_dim, conv_clamp, channels_last=False):
  mods = collections.OrderedDict(affine=_fc(r, w_dim, cin, bias_init=1))
  params = collections.OrderedDict(weight=r.normal((cout, cin, 1, 1)), bias=r.normal((cout,), 0.1))
  return nvp.persistent(
    "ToRGBLayer",
    parameters=params,
    modules=mods,
    attributes={"conv_clamp": conv_clamp, "weight_gain": 1 / np.sqrt(cin)},
    init_args=(cin, cout),
    init_kwargs=dict(w_dim=w_dim, conv_clamp=conv_clamp, channels_last=channels_last),
  )


def _block(r, config: StyleGAN2Config, res):
  ch = config.channels()
  cin = ch[res // 2] if res > 4 else 0
  cout = ch[res]
  is_last = res == config.img_resolution
  use_fp16 = res in config.fp16_resolutions()
  clamp = config.conv_clamp
  mods = collections.OrderedDict()
  params = collections.OrderedDict()
  if cin == 0:
    params["const"] = r.normal((cout, res, res))
  else:
    mods["conv0"] = _layer(r, cin, cout, config.w_dim, res, 2, clamp)
  mods["conv1"] = _layer(r, cout, cout, config.w_dim, res, 1, clamp)
  mods["torgb"] = _torgb(r, cout, config.img_channels, config.w_dim, clamp)
  attrs = {
    "in_channels": cin,
    "w_dim": config.w_dim,
    "resolution": res,
    "img_channels": config.img_channels,
    "is_last": is_last,
    "architecture": "skip",
    "use_fp16": use_fp16,
    "channels_last": False,
    "num_conv": 1 if cin == 0 else 2,
    "num_torgb": 1,
  }
  kw = dict(
    w_dim=config.w_dim,
    resolution=res,
    img_channels=config.img_channels,
    is_last=is_last,
    use_fp16=use_fp16,
    conv_clamp=clamp,
  )
  return nvp.persistent(
    "SynthesisBlock",
    parameters=params,
    buffers={"resample_filter": _filter()},
    modules=mods,
    attributes=attrs,
    init_args=(cin, cout),
    init_kwargs=kw,
  )


def random_generator(config: StyleGAN2Config, seed: int = 0, module_src: str = ""):
  """The ``Generator`` persistent object (for :func:`regionjax.ports.nvlabs_pickle.dump`)."""
  if not isinstance(config, StyleGAN2Config):
    raise TypeError("config must be a StyleGAN2Config")
  r = _Rand(seed)
  blocks = collections.OrderedDict((f"b{res}", _block(r, config, res)) for res in config.resolutions)
  kw = init_kwargs(config)
  log2 = int(math.log2(config.img_resolution))
  synthesis = nvp.persistent(
    "SynthesisNetwork",
    modules=blocks,
    init_kwargs=dict(
      w_dim=config.w_dim,
      img_resolution=config.img_resolution,
      img_channels=config.img_channels,
      **kw["synthesis_kwargs"],
    ),
    attributes={
      "w_dim": config.w_dim,
      "img_resolution": config.img_resolution,
      "img_resolution_log2": log2,
      "img_channels": config.img_channels,
      "block_resolutions": list(config.resolutions),
      "num_ws": config.num_ws,
    },
  )
  fcs = collections.OrderedDict(
    (f"fc{i}", _fc(r, config.z_dim if i == 0 else config.w_dim, config.w_dim, "lrelu", config.mapping_lr_multiplier))
    for i in range(config.mapping_layers)
  )
  mapping = nvp.persistent(
    "MappingNetwork",
    modules=fcs,
    buffers={"w_avg": r.normal((config.w_dim,), 0.5)},
    init_kwargs=dict(z_dim=config.z_dim, c_dim=0, w_dim=config.w_dim, num_ws=config.num_ws, **kw["mapping_kwargs"]),
    attributes={
      "z_dim": config.z_dim,
      "c_dim": 0,
      "w_dim": config.w_dim,
      "num_ws": config.num_ws,
      "num_layers": config.mapping_layers,
      "w_avg_beta": 0.995,
    },
  )
  gen = nvp.persistent(
    "Generator",
    modules=collections.OrderedDict(synthesis=synthesis, mapping=mapping),
    init_kwargs=kw,
    attributes={
      "z_dim": config.z_dim,
      "c_dim": 0,
      "w_dim": config.w_dim,
      "img_resolution": config.img_resolution,
      "img_channels": config.img_channels,
      "num_ws": config.num_ws,
    },
  )
  _set_source(gen, module_src)
  return gen


def _set_source(obj, src):
  """Every persistent module of networks.py carries that module's source."""
  meta = getattr(obj, "meta", None)
  if meta is None:
    return
  meta["module_src"] = src
  for child in meta["state"].get("_modules", {}).values():
    _set_source(child, src)


def write_random_pickle(path, config: StyleGAN2Config, seed: int = 0, module_src: str = "") -> None:
  """Writes a snapshot-like dict with ``G_ema = random_generator(config, seed)``."""
  g = random_generator(config, seed, module_src)
  nvp.dump({"G": None, "D": None, "G_ema": g, "augment_pipe": None, "training_set_kwargs": None}, path)


def random_state_dict(config: StyleGAN2Config, seed: int = 0) -> "collections.OrderedDict[str, np.ndarray]":
  """The state dict of :func:`random_generator` (``synthesis.b4.const`` … names)."""
  return nvp.loads(nvp.dumps(random_generator(config, seed))).state_dict()
