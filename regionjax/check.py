"""Checks a generator before a run: ``python -m regionjax.check --config=configs/X.py``.

Builds the generator of ``config.model`` and prints

* its taps with the feature shape at each (for a :func:`regionjax.from_flax`
  generator, every submodule output of the module, the split points);
* the round trip ``max |decode(encode(z)) − generate(z)|`` at every layer of
  ``gen.layers`` (must be ≤ ``--tolerance``: the explanation is of
  ``x = g(f)``, docs/adding_a_generator.md §The protocol);
* at ``config.model.layer``: the solver's memory per subset (XLA's memory
  analysis of the compiled chunk, as ``solver.memory_budget_gb`` uses) and
  the seconds per projected-Adam step of one subset, measured.

Exit status 0 when the round trip holds, 1 when it does not, 2 for bad input
(one ``error:`` line).
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def round_trip(gen, codes, layers) -> dict:
  """``max |decode(codes, L, encode(codes, L)) − generate(codes)|`` and the feature shape, per layer."""
  x = np.asarray(gen.generate(codes))
  out = {}
  for layer in layers:
    f = gen.encode(codes, layer)
    y = np.asarray(gen.decode(codes, layer, f))
    out[layer] = {
      "shape": tuple(np.shape(f))[1:],
      "max_abs": float(np.max(np.abs(y - x))) if y.shape == x.shape else math.inf,
      "image_shape": tuple(x.shape[1:]),
    }
  return out


def solver_cost(gen, codes, layer: str, *, steps: int = 10, repeats: int = 2) -> dict:
  """Memory per subset (bytes) and seconds per solver step of one subset at ``layer``."""
  import optax

  from regionjax import solver as solver_lib

  codes1 = jax.tree.map(lambda a: a[:1] if getattr(a, "ndim", 0) > 0 else a, codes)
  image = jnp.asarray(gen.generate(codes1))[0]
  f = jnp.asarray(gen.encode(codes1, layer))[0]

  def decode(v):
    return gen.decode(codes1, layer, v[None])[0]

  m1 = solver_lib.chunk_memory_bytes(decode, f, image, 1)
  m3 = solver_lib.chunk_memory_bytes(decode, f, image, 3)
  per_subset = None if m1 is None or m3 is None else max((m3 - m1) / 2, 0.0)
  problem = solver_lib.Problem(
    decode=decode,
    f=f,
    f0=jnp.zeros_like(f),
    target=image,
    masks=jnp.ones((1,) + image.shape[:2], bool),
    lam=100.0,
    optimizer=optax.adam(1e-2),
    steps=int(steps),
  )
  run = jax.jit(lambda a, s: solver_lib.run_chunk(problem, a, s))
  alpha, ids = jnp.ones((1,) + f.shape, f.dtype), jnp.ones((1,), jnp.int32)
  jax.block_until_ready(run(alpha, ids))  # compile
  best = math.inf
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(run(alpha, ids))
    best = min(best, time.perf_counter() - t0)
  return {
    "memory_per_subset": per_subset,
    "memory_one_subset": m1,
    "seconds_per_step": best / steps,
    "feature_size": int(np.size(f)),
  }


def _mib(b) -> str:
  if b is None:
    return "n/a"
  return f"{b / 2**20:.2f} MiB" if b >= 2**20 else f"{b / 2**10:.1f} KiB"


def check(
  gen, layer: str, *, seed: int = 0, num: int = 2, tolerance: float = 1e-4, steps: int = 10, print_fn: Callable = print
) -> bool:
  """Prints the report of the module docstring; True when every round trip is within ``tolerance``."""
  from regionjax.generator import Generator, check_layer

  if not isinstance(gen, Generator):
    raise ValueError(
      f"{type(gen).__name__} does not implement the regionjax.Generator protocol (docs/adding_a_generator.md)"
    )
  check_layer(gen, layer)
  nc = gen.num_classes
  codes = gen.sample_codes(jax.random.PRNGKey(seed), num, classes=np.arange(num) % nc if nc else None)
  taps = getattr(gen, "taps", None)
  if taps:
    print_fn("taps (submodule outputs, forward order; shapes with the batch axis):")
    for path, shape, dtype, calls in taps:
      note = "" if calls == 1 else f"  (called {calls}×: not a split point)"
      print_fn(f"  {path:40s} {str(tuple(shape)):22s} {np.dtype(dtype).name}{note}")
  trips = round_trip(gen, codes, list(gen.layers))
  ok = True
  print_fn(
    f"layers of the generator, round trip max |decode(encode(z)) − generate(z)| over {num} codes "
    f"(tolerance {tolerance:g}):"
  )
  for name, t in trips.items():
    good = t["max_abs"] <= tolerance
    ok &= good
    mark = "ok" if good else "FAILED"
    print_fn(f"  {name:40s} feature {str(t['shape']):22s} {t['max_abs']:.3g}  {mark}")
  print_fn(f"image shape {trips[layer]['image_shape']}")
  if not ok:
    print_fn("solver cost not measured: fix the round trip first")
    return False
  cost = solver_cost(gen, codes, layer, steps=steps)
  print_fn(
    f"solver at {layer!r}: feature size D = {cost['feature_size']}; memory per subset "
    f"{_mib(cost['memory_per_subset'])} (one-subset chunk {_mib(cost['memory_one_subset'])}); "
    f"{cost['seconds_per_step'] * 1e3:.2f} ms per step of one subset on {jax.devices()[0].platform}"
  )
  return ok


def _default_make_generator(model_config):
  """``regionjax.ports.registry.build``, found at run time: ``regionjax`` itself never imports ``ports`` (like main.py)."""
  return importlib.import_module("regionjax.ports.registry").build(model_config)


def main(argv=None, make_generator: Callable | None = None) -> int:
  """``python -m regionjax.check --config=FILE [--config.x=…] [--tolerance=1e-4] [--steps=10]``."""
  from absl import flags
  from ml_collections import config_flags

  from regionjax import cli

  argv = list(sys.argv if argv is None else argv)
  if cli.wants_help(argv):  # as absl's --help: the usage on stdout, exit status 1
    print(cli.help_text(argv, __doc__ + "\nFlags: --config=FILE, --tolerance=1e-4, --steps=10.\n"))
    return 1
  fv = flags.FlagValues()
  config_flag = config_flags.DEFINE_config_file("config", None, "Experiment config.", flag_values=fv)
  flags.DEFINE_float("tolerance", 1e-4, "Largest allowed round-trip difference.", flag_values=fv)
  flags.DEFINE_integer("steps", 10, "Solver steps timed.", flag_values=fv)
  cli.parse_flags(argv, fv)  # a bad flag or config key: one error: line, exit 2
  try:
    config = config_flag.value
    if config is None:
      return cli.error("pass --config=FILE (a config file of configs/, or your own)")
    ok = check(
      (make_generator or _default_make_generator)(config.model),
      config.model.layer,
      seed=config.get("seed", 0),
      tolerance=fv.tolerance,
      steps=fv.steps,
    )
  except (ValueError, OSError, KeyError, AttributeError, flags.Error) as e:
    return cli.error(str(e))
  if not ok:
    print(
      "error: decode(encode(z)) differs from generate(z); see docs/adding_a_generator.md §The protocol", file=sys.stderr
    )
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
