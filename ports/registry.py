"""Builds a generator from a config's ``model`` block (used by main.py).

``regionjax`` never imports ``ports``: the pipeline receives this function.
"""

from __future__ import annotations


def build(model_config):
  """``model_config.name`` selects the family; other fields are its options."""
  name = model_config.name
  if name == "embedded":
    from ports import embedded
    return embedded.load(truncation=model_config.truncation)
  if name == "biggan":
    from ports import biggan
    return biggan.from_config(model_config)
  if name == "planted":
    from regionjax import testing
    return testing.PlantedGenerator()
  raise ValueError(f"unknown model.name {name!r}; use 'embedded', 'biggan' or 'planted'")
