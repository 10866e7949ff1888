"""The face GAN through the PyTorch bridge (``rj.from_torch``) against its hand-written Flax port, side by side.

    python -m benchmarks.torch_bridge --mode run --repeats 3     # the default run, end to end (main.py)
    python -m benchmarks.torch_bridge --mode solve --repeats 5   # the solve part only, in this process

Both sides explain the same 64×64 face at the same tap with the same settings:
the Flax port is ``configs/default.py`` (``regionjax/ports/dcgan``, tap ``layer3``); the
bridge is ``configs/from_torch.py`` (the PyTorch module of ``gan-face-generate``
1.1.1 under torchax, split at ``main.11``, the same 32×32×64 output), which
gives the same components (``tests/test_torch_bridge.py``).

``--mode run`` times ``python main.py`` of each config in subprocesses,
interleaved (port, bridge, port, bridge, …), each with a fresh workdir: the
whole wall time (start-up, generator, baseline, solve, metrics, report) and
the time main.py reports after start-up. ``--mode solve`` builds both
generators and each one's problem (baseline f0, target, the 9 central cells)
in this process, solves once to compile, then times
``solve_minimal_features`` with the default config's solver settings,
interleaved. Medians over ``--repeats``, with min–max; the ratio is bridge
over port (> 1: the bridge is slower). ``--set key=value`` (repeatable)
overrides config knobs on both sides (tiny settings for a smoke test).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.common import fmt_s, machine, table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIDES = (
  ("Flax port (configs/default.py)", "configs/default.py"),
  ("bridge (configs/from_torch.py)", "configs/from_torch.py"),
)


def _stats(times: list[float]) -> tuple[float, str]:
  t = sorted(times)
  return t[len(t) // 2], f"{fmt_s(t[0])} – {fmt_s(t[-1])}"


def _overrides(settings: list[str]) -> list[str]:
  out = []
  for s in settings:
    if "=" not in s:
      raise SystemExit(f"error: --set takes key=value (a config knob), got {s!r}")
    out.append(f"--config.{s}")
  return out


def time_runs(repeats: int, settings: list[str]) -> list[tuple[str, list[float], list[float]]]:
  """``(side, wall seconds, seconds after start-up)`` of ``repeats`` interleaved main.py runs per side."""
  walls: dict[str, list] = {c: [] for _, c in SIDES}
  inner: dict[str, list] = {c: [] for _, c in SIDES}
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", ""))
  with tempfile.TemporaryDirectory(prefix="torch_bridge_bench_") as tmp:
    for r in range(repeats):
      for _, config in SIDES:
        workdir = os.path.join(tmp, f"{os.path.basename(config)[:-3]}_{r}")
        cmd = [sys.executable, "main.py", f"--config={config}", f"--config.workdir={workdir}", *_overrides(settings)]
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        walls[config].append(time.perf_counter() - t)
        if proc.returncode != 0:
          raise SystemExit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        m = re.search(r"wall time ([0-9.]+) s \(after start-up", proc.stdout)
        inner[config].append(float(m.group(1)) if m else float("nan"))
        print(f"  repeat {r + 1}/{repeats} {config}: {walls[config][-1]:.1f} s", flush=True)
  return [(name, walls[c], inner[c]) for name, c in SIDES]


def _problem(config):
  """The generator of ``config`` and its first target's solver problem, as the pipeline builds them."""
  import jax

  from regionjax.ports import registry
  from regionjax import patches as patches_lib
  from regionjax import pipeline
  from regionjax import solver as solver_lib

  gen = registry.build(config.model)
  layer = config.model.layer
  f0 = pipeline.compute_baseline(
    gen, layer, config.baseline.num_codes, config.baseline.batch_size, jax.random.PRNGKey(config.baseline.seed), None
  )
  codes = gen.sample_codes(jax.random.PRNGKey(config.target.seed), 1)
  target = pipeline.prepare_target(gen, codes, 0, layer, f0)
  p = config.patches
  cells = patches_lib.patch_masks(target.image.shape[0], target.image.shape[1], p.rows, p.cols)
  players = np.sort(patches_lib.center_cells(p.rows, p.cols)[: p.n])
  options = solver_lib.SolverOptions.from_config(config.solver)
  return (target.decode, target.f, f0, target.image, cells[players], options)


def _load_config(path: str, settings: list[str]):
  """``configs/<name>.py``'s config with the ``key=value`` overrides (values as Python literals)."""
  import ast
  import importlib

  config = importlib.import_module(f"configs.{os.path.basename(path)[:-3]}").get_config()
  for s in settings:
    key, _, value = s.partition("=")
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass  # a string
    config.update_from_flattened_dict({key: value})
  return config


def time_solves(repeats: int, settings: list[str]) -> list[tuple[str, list[float], float]]:
  """``(side, seconds per solve, first solve with compilation)`` of interleaved solves per side."""
  from benchmarks.common import block
  from regionjax import solver as solver_lib

  problems, first = {}, {}
  for name, path in SIDES:
    problems[name] = _problem(_load_config(path, settings))
    t = time.perf_counter()
    block(solver_lib.solve_minimal_features(*problems[name]).u)
    first[name] = time.perf_counter() - t
  times: dict[str, list] = {name: [] for name, _ in SIDES}
  for r in range(repeats):
    for name, _ in SIDES:
      t = time.perf_counter()
      block(solver_lib.solve_minimal_features(*problems[name]).u)
      times[name].append(time.perf_counter() - t)
      print(f"  repeat {r + 1}/{repeats} {name}: {times[name][-1]:.2f} s", flush=True)
  u = [np.asarray(solver_lib.solve_minimal_features(*problems[name]).u) for name, _ in SIDES]
  print(f"max |u_bridge − u_port| = {float(np.abs(u[1] - u[0]).max()):.3g} (the same minimal features)")
  return [(name, times[name], first[name]) for name, _ in SIDES]


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--mode", choices=("run", "solve"), default="run")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override on both sides")
  args = ap.parse_args(argv)
  print(machine())
  print(f"mode {args.mode}, {args.repeats} interleaved repeats, overrides {args.set or 'none'}")
  if args.mode == "run":
    rows, medians = [], []
    for name, walls, inner in time_runs(args.repeats, args.set):
      med, spread = _stats(walls)
      medians.append(med)
      rows.append([name, fmt_s(med), spread, fmt_s(float(np.median(inner)))])
    print(table(["side", "wall (median)", "min – max", "after start-up (median)"], rows))
  else:
    rows, medians = [], []
    for name, times, first in time_solves(args.repeats, args.set):
      med, spread = _stats(times)
      medians.append(med)
      rows.append([name, fmt_s(med), spread, fmt_s(first)])
    print(table(["side", "solve (median)", "min – max", "first solve (compiles)"], rows))
  print(f"bridge / port = ratio of medians {medians[1] / medians[0]:.2f}× (> 1: the bridge is slower)")


if __name__ == "__main__":
  main()
