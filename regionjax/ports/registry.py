"""Builds a generator from a config's ``model`` block (used by main.py and ``python -m regionjax.check``).

The ports are found by name (:data:`PORTS`: the module to import and the function that reads the model block);
the library below the run layer never imports a port: the pipeline receives :func:`build`.
"""

from __future__ import annotations

import importlib
import sys


def _checkpoint(model_config, port, what: str, help_args: tuple) -> str:
  """``model.checkpoint``, or one ValueError naming the released file and the convert command."""
  if not model_config.checkpoint:
    raise ValueError(
      f"configs/{model_config.name}.py needs {what} converted to Flax: pass --config.model.checkpoint=DIR. "
      + port.checkpoint_help(*help_args)
    )
  return model_config.checkpoint


def _dcgan(model_config, port):
  return port.load(model_config.checkpoint or None)


def _embedded(model_config, port):
  return port.load(truncation=model_config.truncation)


def _biggan(model_config, port):
  ckpt = _checkpoint(model_config, port, "a BigGAN-deep checkpoint", ("biggan-deep-128", "DIR"))
  return port.load(ckpt, truncation=model_config.truncation, remat_blocks=bool(model_config.get("remat_blocks", False)))


def _sid(model_config, port):
  ckpt = _checkpoint(model_config, port, "SiD's FFHQ 64x64 generator", ("DIR",))
  return port.load(ckpt, sigma_init=model_config.get("sigma_init", port.SIGMA_INIT))


def _stylegan2(model_config, port):
  ckpt = _checkpoint(model_config, port, "StyleGAN2-ADA's afhqcat.pkl", ("DIR",))
  return port.load(
    ckpt,
    truncation=model_config.get("truncation", 1.0),
    truncation_cutoff=model_config.get("truncation_cutoff"),  # None: every w (as the reference)
    noise_mode=model_config.get("noise_mode", "const"),
  )


def _nvae(model_config, port):
  ckpt = _checkpoint(model_config, port, "NVAE's CelebA 64 checkpoint.pt", ("DIR",))
  gen = port.load(ckpt, temperature=model_config.get("temperature", 1.0), output=model_config.get("output", "mean"))
  if model_config.get("readjust_bn", False):  # evaluate.py --readjust_bn
    import jax

    gen = gen.readjust_bn(
      jax.random.PRNGKey(model_config.get("readjust_bn_seed", 0)),
      num_samples=model_config.get("readjust_bn_samples", 16),
      iters=model_config.get("readjust_bn_iters", 500),
    )
  return gen


def _planted(model_config, port):
  return port.PlantedGenerator()


#: model.name → (the module imported by name, the function that reads the model block into its generator).
PORTS = {
  "dcgan": ("regionjax.ports.dcgan", _dcgan),
  "embedded": ("regionjax.ports.embedded", _embedded),
  "biggan": ("regionjax.ports.biggan", _biggan),
  "sid": ("regionjax.ports.sid", _sid),
  "stylegan2": ("regionjax.ports.stylegan2", _stylegan2),
  "nvae": ("regionjax.ports.nvae", _nvae),
  "planted": ("regionjax.testing", _planted),
}


def build(model_config):
  """``model_config.name`` selects the family (:data:`PORTS`, ``module:factory`` or ``torch:module:factory``);
  other fields are its options."""
  name = model_config.name
  if name in ("embedded", "planted") and model_config.get("checkpoint"):
    raise ValueError(
      f"model.checkpoint={model_config.checkpoint!r} is not used by model.name {name!r} (its weights ship with "
      f"regionjax); leave model.checkpoint empty, or pick the model whose checkpoint it is"
    )
  if name in PORTS:
    module, make = PORTS[name]
    return make(model_config, importlib.import_module(module))
  if name.startswith("torch:"):  # a PyTorch generator through rj.from_torch: 'torch:package.module:factory'
    return _torch(model_config, _factory(name, name[len("torch:") :]))
  if ":" in name:  # your own generator: 'package.module:factory', called with the model block
    return _call(name, _factory(name, name), model_config)
  raise ValueError(
    f"unknown model.name {name!r}; use {', '.join(map(repr, PORTS))}, 'module:factory' (your own generator, "
    f"docs/adding_a_generator.md) or 'torch:module:factory' (a PyTorch module, docs/torch.md)"
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
