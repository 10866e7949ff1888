"""The whole config checked before anything is written or computed.

One table, :data:`SCHEMA`, maps every knob (dotted key) to a :class:`Check`:
a predicate on its value and the words that say what it must be. Checks that
involve several knobs (``patches.n`` against the grid, ``patches.indices``
against ``patches.n``) come after, in :data:`CROSS_CHECKS`.
:func:`validate` runs both and raises :class:`ConfigError` (a ValueError) with
one line naming the knob, what it must be and what it got; a config key the
table does not know is an error too (a typo in a config file must not be
ignored).

Adding a knob to a config file: add one line to :data:`SCHEMA`, e.g.::

    "solver.momentum": number(lo=0, hi=1, hi_open=True),

``tests/test_config_check.py`` loads every file in ``configs/`` and fails,
naming the key, for any knob without a line here.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any, Callable, Iterator, Mapping

from regionjax import subsets as subsets_lib


class ConfigError(ValueError):
  """A config value that cannot work; the message is one line naming the knob."""


@dataclasses.dataclass(frozen=True)
class Check:
  """``ok(value)`` is True for good values; ``expect`` completes "KEY must be …"."""

  ok: Callable[[Any], bool]
  expect: str


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool)


def integer(lo: int | None = None, hi: int | None = None, expect: str | None = None) -> Check:
  """An integer (not a bool) in ``lo … hi`` (inclusive; None = unbounded)."""
  if expect is None:
    if lo is not None and hi is not None:
      expect = f"an integer in {lo} … {hi}"
    elif lo is not None:
      expect = f"an integer >= {lo}"
    else:
      expect = "an integer"
  return Check(lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), expect)


def number(
  lo: float | None = None,
  hi: float | None = None,
  *,
  lo_open: bool = False,
  hi_open: bool = False,
  expect: str | None = None,
) -> Check:
  """A finite real number (int or float, not a bool, not NaN/inf) in the given range."""
  if expect is None:
    parts = []
    if lo is not None:
      parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
      parts.append(f"{'<' if hi_open else '<='} {hi}")
    expect = "a finite number" + (" " + " and ".join(parts) if parts else "")

  def ok(v):
    if not _is_real(v) or not math.isfinite(float(v)):
      return False
    v = float(v)
    if lo is not None and (v <= lo if lo_open else v < lo):
      return False
    if hi is not None and (v >= hi if hi_open else v > hi):
      return False
    return True

  return Check(ok, expect)


def choice(*options) -> Check:
  """One of ``options`` (compared with ==, type included: True is not 1)."""
  return Check(
    lambda v: any(type(v) is type(o) and v == o for o in options), "one of " + ", ".join(repr(o) for o in options)
  )


def boolean() -> Check:
  return Check(lambda v: isinstance(v, bool), "True or False")


def string(nonempty: bool = False, expect: str | None = None) -> Check:
  return Check(
    lambda v: isinstance(v, str) and (bool(v.strip()) or not nonempty) and "\x00" not in v,
    expect or ("a non-empty string" if nonempty else "a string"),
  )


def int_sequence(expect: str = "a tuple of integers") -> Check:
  return Check(lambda v: isinstance(v, (tuple, list)) and all(_is_int(i) for i in v), expect)


def any_of(*checks: Check, expect: str) -> Check:
  return Check(lambda v: any(c.ok(v) for c in checks), expect)


def _host_port(v: str) -> bool:
  """'host:port' (an IPv6 host in brackets) with a port in 1 … 65535."""
  host, sep, port = v.rpartition(":")
  return bool(sep and host.strip() and port.isdigit() and 1 <= int(port) <= 65535 and " " not in v)


SEED = integer(0, 2**31 - 1)  # jax.random.PRNGKey and numpy's generators; offsets are added to it
COUNT = 10**7  # generous upper bounds: a typo such as 1e9 steps fails at once, not after hours

# Every knob of configs/*.py. Keep it sorted by block; one line per knob.
SCHEMA: dict[str, Check] = {
  "workdir": string(nonempty=True, expect="a directory path (pass --config.workdir=DIR)"),
  "seed": SEED,
  "overwrite": boolean(),
  "model.name": string(
    nonempty=True,
    expect="a generator name ('dcgan', 'embedded', 'biggan', 'sid', 'stylegan2', 'nvae', 'planted', "
    "'module:factory' or 'torch:module:factory')",
  ),
  "model.checkpoint": string(),
  "model.layer": string(nonempty=True, expect="the name of one of the generator's layers"),
  "model.truncation": number(0, 10, lo_open=True),
  "baseline.num_codes": integer(1, COUNT),
  "baseline.batch_size": integer(1, 10**5),
  "baseline.seed": SEED,
  "target.seed": SEED,
  "target.class_id": any_of(
    integer(-1, 10**6), choice(None), expect="a class id >= 0, or -1 for a random class per image"
  ),
  "target.num_images": integer(1, 10**4),
  "target.codes_file": string(expect="a path to an .npz of the codes' leaves with a leading image axis, or ''"),
  "target.images_per_step": integer(0, 10**4),
  "patches.rows": integer(1, 4096),
  "patches.cols": integer(1, 4096),
  "patches.n": integer(1, 62),  # ≤ subsets.MAX_PLAYERS unless solver.max_order > 0 (cross check)
  "patches.method": choice("indices", "difference", "random", "center", "mask", "saliency", "regions"),
  "patches.regions_path": string(expect="a path to a JSON file of named regions (method 'regions'), or ''"),
  "patches.mask_path": string(expect="a path to a PNG mask (method 'mask'), or ''"),
  "patches.indices": int_sequence("a tuple of grid cell indices, e.g. (0,1,2)"),
  "patches.foreground_fraction": number(0, 1, lo_open=True),
  "patches.seed": SEED,
  "patches.shared": boolean(),
  "solver.lam": number(0, 1e9, lo_open=True, expect="> 0 and at most 1e9 (the paper uses 200 … 1000)"),
  "solver.learning_rate": number(0, 1e3, lo_open=True, expect="> 0 and at most 1000 (the default is 0.01)"),
  "solver.steps": integer(1, 10**6, expect="a positive integer (at most 1000000)"),
  "solver.tau": number(0, lo_open=True, expect="> 0 and finite (an RMSE bound on the pixels of S)"),
  "solver.chunk_size": integer(1, 2**20),
  "solver.schedule": choice("constant", "cosine"),
  "solver.dtype": choice("float32", "float64"),
  "solver.decode_dtype": choice(None, "float32", "bfloat16", "float16"),
  "solver.remat": any_of(boolean(), choice("dots", "nothing"), expect="True, False, 'dots' or 'nothing'"),
  "solver.memory_budget_gb": any_of(
    number(0, 1e6, lo_open=True), choice(None), expect="None (use solver.chunk_size) or a finite number of GiB > 0"
  ),
  "solver.steps_per_call": any_of(
    integer(0, 10**6), choice(None), expect="None (5 on CPU, all on accelerators) or an integer >= 0"
  ),
  "solver.subsets_per_call": any_of(
    integer(0, 10**6), choice(None), expect="None (1 on one CPU device, else 0), 0 (one vmap) or an integer >= 1"
  ),
  "solver.stop_tol": any_of(
    number(0, 1, lo_open=True, hi_open=True),
    choice(None),
    expect="None (no early stopping) or a relative change in (0, 1)",
  ),
  "solver.shard": boolean(),
  "solver.optimizer": choice("adam", "gd"),
  "solver.composition": choice("independent", "max"),
  "solver.lam_max": any_of(
    number(0, 1e9, lo_open=True), choice(None), expect="None (no λ continuation) or a number in (0, 1e9]"
  ),
  "solver.lam_growth": number(1, 1e6, lo_open=True),
  "solver.refine_steps": integer(0, 10**6),
  "solver.l1_distance_weight": number(0, 1e6, expect="a finite number >= 0 (0 = the paper's objective)"),
  "solver.keep_outside": boolean(),
  "solver.max_order": integer(0, 62),
  "distributed.coordinator_address": Check(
    lambda v: isinstance(v, str) and (v == "" or _host_port(v)), "'' or 'host:port' with a port in 1 … 65535"
  ),
  "distributed.num_processes": integer(1, 10**5),
  "distributed.process_id": integer(0, 10**5),
  "distributed.auto": boolean(),
  "distributed.timeout_s": integer(1, 86400),
  "metrics.top_k": integer(1, COUNT),
  "metrics.salient_fraction": number(0, 1, lo_open=True),
  "metrics.salient_rel_tol": number(0, lo_open=True),
  "metrics.sparsity_eps": number(0, 1, lo_open=True),
  "metrics.consistency_contexts": integer(1, 10**4),
  "metrics.consistency_top": integer(1, COUNT),
  "metrics.transfer_k": integer(1, COUNT),
  "metrics.decode_batch": integer(1, 10**5),
  "denoise.enabled": boolean(),
  "denoise.tau_q_relative": number(0, 1, lo_open=True, expect="a fraction of max|f − f0| in (0, 1]"),
  "denoise.steps": integer(1, 10**6),
  "report.interactive": boolean(),
  "report.thumbnail_size": integer(8, 1024),
  "report.thumbnail_format": choice("jpeg", "png"),
  "report.baselines": boolean(),
  "report.baselines_codes": integer(2, 10**6),
  "report.dense_components": boolean(),
  "cache.dir": string(expect="a directory path, 'auto' (the user's cache directory) or '' (no cache)"),
}


#: Knobs only some configs have (a port's own options); absent is fine.
OPTIONAL = {
  "model.sigma_init",
  "model.truncation_cutoff",
  "model.noise_mode",
  "model.temperature",
  "model.output",
  "model.readjust_bn",
  "model.readjust_bn_iters",
  "model.readjust_bn_samples",
  "model.readjust_bn_seed",
  "model.remat_blocks",
  "model.input_shape",
}
SCHEMA["model.sigma_init"] = number(0, 1e3, lo_open=True, expect="SiD's input noise level σ_init > 0 (2.5)")
SCHEMA["model.truncation_cutoff"] = any_of(
  integer(0, 64), choice(None), expect="None (truncate every w) or the number of w vectors to truncate"
)
SCHEMA["model.noise_mode"] = choice("const", "none", "random")
SCHEMA["model.remat_blocks"] = boolean()
SCHEMA["model.temperature"] = number(0, 10, lo_open=True, expect="NVAE's sampling temperature t in (0, 10] (0.7)")
SCHEMA["model.output"] = choice("mean", "sample")
SCHEMA["model.readjust_bn"] = boolean()
SCHEMA["model.readjust_bn_iters"] = integer(1, COUNT)
SCHEMA["model.readjust_bn_samples"] = integer(1, 4096)
SCHEMA["model.readjust_bn_seed"] = SEED
SCHEMA["model.input_shape"] = int_sequence("the shape of one input code of a torch: model, e.g. (100, 1, 1), or ()")


# ------------------------------------------------------------- cross checks
def _grid(c):
  p = c.patches
  if p.method == "regions":  # the players are the named regions, not grid cells
    return None
  cells = p.rows * p.cols
  if p.n > cells:
    return (
      f"patches.n={p.n} but the {p.rows}×{p.cols} grid has only {cells} cells; use a finer grid or a smaller patches.n"
    )
  return None


def _indices(c):
  p = c.patches
  if p.method != "indices":
    return None
  idx = list(p.indices)
  if len(idx) != p.n:
    return f"patches.indices lists {len(idx)} cells but patches.n={p.n}"
  cells = p.rows * p.cols
  bad = [i for i in idx if not 0 <= i < cells]
  if bad:
    return f"patches.indices {bad} out of range: the {p.rows}×{p.cols} grid has cells 0 … {cells - 1}"
  if len(set(idx)) != len(idx):
    return f"patches.indices {idx} lists a cell twice; each player is a different cell"
  return None


def _processes(c):
  d = c.distributed
  if not d.process_id < d.num_processes:
    return f"distributed.process_id={d.process_id} is outside 0 … {d.num_processes - 1} (distributed.num_processes)"
  return None


def _players(c):
  p = c.patches
  if not c.solver.get("max_order", 0) and p.n > subsets_lib.MAX_PLAYERS:
    return (
      f"patches.n={p.n}: all 2**n minimal features of more than {subsets_lib.MAX_PLAYERS} players do not fit; "
      f"use fewer patches or solver.max_order = k (components up to order k)"
    )
  return None


def _solver(c):
  s, p = c.solver, c.patches
  if s.lam_max is not None and s.lam_max < s.lam:
    return f"solver.lam_max={s.lam_max} must be None or >= solver.lam = {s.lam}"
  if p.method == "regions" and not p.get("regions_path"):
    return "patches.method='regions' needs --config.patches.regions_path=FILE.json (named polygons or masks)"
  if p.method == "mask" and not p.mask_path:
    return "patches.method='mask' needs --config.patches.mask_path=FILE.png (white = object)"
  return None


def _dataset(c):
  t = c.get("target")
  if t is None:
    return None
  path = t.get("codes_file", "")
  if path and not os.path.isfile(path):
    return f"target.codes_file {path!r} is not a file; pass an .npz of the codes' leaves or '' for seeded codes"
  if t.get("images_per_step", 1) != 1 and c.solver.get("stop_tol") is not None:
    return "target.images_per_step batches whole images; early stopping (solver.stop_tol) needs images_per_step=1"
  return None


CROSS_CHECKS: list[Callable[[Any], str | None]] = [_grid, _indices, _processes, _players, _solver, _dataset]


# ------------------------------------------------------------------ driver
def leaves(config, prefix: str = "") -> Iterator[tuple[str, Any]]:
  """(dotted key, value) of every leaf of a (nested) ConfigDict or mapping."""
  items = config.items() if hasattr(config, "items") else ()
  for key, value in items:
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) or hasattr(value, "to_dict"):
      yield from leaves(value, name + ".")
    else:
      yield name, value


def _show(v) -> str:
  text = repr(v)
  return text if len(text) <= 80 else text[:77] + "…"


def problems(config, schema: Mapping[str, Check] = SCHEMA) -> list[str]:
  """Every problem of ``config`` as one line each ([] if none)."""
  out = []
  seen = set()
  for key, value in leaves(config):
    seen.add(key)
    check = schema.get(key)
    if check is None:
      out.append(f"unknown config key {key!r}: no such knob (known: see regionjax/config_check.py SCHEMA)")
    elif not check.ok(value):
      out.append(f"{key} must be {check.expect}, got {_show(value)}")
  for key in sorted(set(schema) - seen - OPTIONAL):
    out.append(f"config key {key!r} is missing; start the config file from configs/default.py")
  if not out:
    for cross in CROSS_CHECKS:
      msg = cross(config)
      if msg:
        out.append(msg)
  return out


def validate(config) -> None:
  """Raises :class:`ConfigError`: one line with the problems of ``config``
  (the first three, and how many more), each naming its knob."""
  found = problems(config)
  if found:
    more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
    raise ConfigError("; ".join(found[:3]) + more)
