"""Builds a generator from a config's ``model`` block (used by main.py).

``regionjax`` never imports ``ports``: the pipeline receives this function.
"""

from __future__ import annotations

import importlib


def build(model_config):
  """``model_config.name`` selects the family; other fields are its options."""
  name = model_config.name
  if name == "dcgan":
    from ports import dcgan

    return dcgan.load(model_config.checkpoint or None)
  if name == "embedded":
    from ports import embedded

    return embedded.load(truncation=model_config.truncation)
  if name == "biggan":
    from ports import biggan

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
    from ports import sid

    if not model_config.checkpoint:
      raise ValueError(
        "configs/sid.py needs SiD's FFHQ 64x64 generator converted to Flax: pass "
        "--config.model.checkpoint=DIR. " + sid.checkpoint_help("DIR")
      )
    return sid.load(model_config.checkpoint, sigma_init=model_config.get("sigma_init", sid.SIGMA_INIT))
  if name == "stylegan2":
    from ports import stylegan2

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
    from ports import nvae

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
  if ":" in name:  # your own generator: 'package.module:factory', called with the model block
    module_name, _, attr = name.partition(":")
    try:
      factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
      raise ValueError(
        f"model.name {name!r}: cannot import {attr!r} from {module_name!r} ({e}); the module must be "
        f"importable (PYTHONPATH) and define that function"
      ) from None
    return factory(model_config)
  raise ValueError(
    f"unknown model.name {name!r}; use 'dcgan', 'embedded', 'biggan', 'sid', 'stylegan2', 'nvae', "
    f"'planted' or 'module:factory' (your own generator, docs/adding_a_generator.md)"
  )
