"""Builds a generator from a config's ``model`` block (used by main.py).

``regionjax`` never imports ``ports``: the pipeline receives this function.
"""

from __future__ import annotations

import importlib
import sys


def build(model_config):
  """``model_config.name`` selects the family; other fields are its options."""
  name = model_config.name
  if name in ("embedded", "planted") and model_config.get("checkpoint"):
    raise ValueError(
      f"model.checkpoint={model_config.checkpoint!r} is not used by model.name {name!r} (its weights ship with "
      f"regionjax); leave model.checkpoint empty, or pick the model whose checkpoint it is"
    )
  if name == "dcgan":
    from regionjax.ports import dcgan

    return dcgan.load(model_config.checkpoint or None)
  if name == "embedded":
    from regionjax.ports import embedded

    return embedded.load(truncation=model_config.truncation)
  if name == "biggan":
    from regionjax.ports import biggan

    if not model_config.checkpoint:
      raise ValueError(
        "configs/biggan.py needs a converted BigGAN-deep checkpoint: pass "
        "--config.model.checkpoint=DIR. " + biggan.checkpoint_help("biggan-deep-128", "DIR")
      )
    return biggan.load(
      model_config.checkpoint,
      truncation=model_config.truncation,
      remat_blocks=bool(model_config.get("remat_blocks", False)),
    )
  if name == "sid":
    from regionjax.ports import sid

    if not model_config.checkpoint:
      raise ValueError(
        "configs/sid.py needs SiD's FFHQ 64x64 generator converted to Flax: pass "
        "--config.model.checkpoint=DIR. " + sid.checkpoint_help("DIR")
      )
    return sid.load(model_config.checkpoint, sigma_init=model_config.get("sigma_init", sid.SIGMA_INIT))
  if name == "stylegan2":
    from regionjax.ports import stylegan2

    if not model_config.checkpoint:
      raise ValueError(
        "configs/stylegan2.py needs StyleGAN2-ADA's afhqcat.pkl converted to Flax: pass "
        "--config.model.checkpoint=DIR. " + stylegan2.checkpoint_help("DIR")
      )
    cutoff = model_config.get("truncation_cutoff")  # None: every w (as the reference)
    return stylegan2.load(
      model_config.checkpoint,
      truncation=model_config.get("truncation", 1.0),
      truncation_cutoff=cutoff,
      noise_mode=model_config.get("noise_mode", "const"),
    )
  if name == "nvae":
    from regionjax.ports import nvae

    if not model_config.checkpoint:
      raise ValueError(
        "configs/nvae.py needs NVAE's CelebA 64 checkpoint.pt converted to Flax: pass "
        "--config.model.checkpoint=DIR. " + nvae.checkpoint_help("DIR")
      )
    gen = nvae.load(
      model_config.checkpoint,
      temperature=model_config.get("temperature", 1.0),
      output=model_config.get("output", "mean"),
    )
    if model_config.get("readjust_bn", False):  # evaluate.py --readjust_bn
      import jax

      gen = gen.readjust_bn(
        jax.random.PRNGKey(model_config.get("readjust_bn_seed", 0)),
        num_samples=model_config.get("readjust_bn_samples", 16),
        iters=model_config.get("readjust_bn_iters", 500),
      )
    return gen
  if name == "planted":
    from regionjax import testing

    return testing.PlantedGenerator()
  if name.startswith("torch:"):  # a PyTorch generator through rj.from_torch: 'torch:package.module:factory'
    return _torch(model_config, _factory(name, name[len("torch:") :]))
  if ":" in name:  # your own generator: 'package.module:factory', called with the model block
    return _call(name, _factory(name, name), model_config)
  raise ValueError(
    f"unknown model.name {name!r}; use 'dcgan', 'embedded', 'biggan', 'sid', 'stylegan2', 'nvae', "
    f"'planted', 'module:factory' (your own generator, docs/adding_a_generator.md) or 'torch:module:factory' "
    f"(a PyTorch module, docs/torch.md)"
  )


def _factory(name: str, spec: str):
  """The function ``spec`` = 'package.module:function' names (``name``: the whole model.name, for messages)."""
  module_name, _, attr = spec.partition(":")
  try:
    return getattr(importlib.import_module(module_name), attr)
  except (ImportError, AttributeError, ValueError) as e:
    raise ValueError(
      f"model.name {name!r}: cannot import {attr!r} from {module_name!r} ({e}); the module must be "
      f"importable (PYTHONPATH) and define that function"
    ) from None


def _call(name: str, factory, model_config):
  """``factory(model_config)``; a factory that is not one (``math:sqrt``), or that fails, is one ValueError."""
  if not callable(factory):
    raise ValueError(
      f"model.name {name!r} names a {type(factory).__name__}, not a function; it must name a factory that takes "
      f"the model block and returns a generator (docs/adding_a_generator.md)"
    )
  try:
    return factory(model_config)
  except ImportError as e:  # torch, torchax or the model's package is missing
    raise ValueError(f"model.name {name!r}: {e}") from None
  except (TypeError, ValueError, AttributeError, KeyError) as e:
    raise ValueError(
      f"model.name {name!r}: calling it with the model block failed ({type(e).__name__}: {e}); it must name a "
      f"factory that takes the model block and returns a generator (docs/adding_a_generator.md)"
    ) from None


def _torch(model_config, factory):
  """``model.name = 'torch:package.module:factory'``: ``factory(model_config)`` gives a ``torch.nn.Module``
  (split at ``model.layer``, a module path such as 'main.11'; codes z ~ N(0, I) of shape ``model.input_shape``)
  or a generator it built itself with ``rj.from_torch`` (docs/torch.md)."""
  made = _call(model_config.name, factory, model_config)
  torch = sys.modules.get("torch")
  if torch is None or not isinstance(made, torch.nn.Module):
    return made  # a generator the factory built itself
  from regionjax import torch_bridge

  shape = tuple(model_config.get("input_shape", None) or ())
  if not shape:
    raise ValueError(
      f"model.name {model_config.name!r} gives a {type(made).__name__}: set model.input_shape to the shape of one "
      f"input code without the batch axis (configs/from_torch.py has the knob: --config=configs/from_torch.py "
      f"--config.model.input_shape='(100, 1, 1)'), or return rj.from_torch(...) from the factory"
    )
  try:
    return torch_bridge.from_torch(made, split=model_config.layer, sample_codes=shape)
  except ImportError as e:
    raise ValueError(f"model.name {model_config.name!r}: {e}") from None
