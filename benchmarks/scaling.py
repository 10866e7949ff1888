"""Benchmark d: solver time against the number of subsets 2^n and the feature size D.

    python benchmarks/scaling.py                         # n = 4 … 10 at D = 4096; D = 1k … 64k at n = 6
    python benchmarks/scaling.py --max-n 12 --steps 100

Decoder: a small random conv net, feature (16, 16, C) → conv3×3(C→32) → ReLU
→ ×2 nearest → conv3×3(32→3) → tanh → (32, 32, 3), so D = 256·C and the
decoder's cost grows with D; n player patches of a 6×6 grid. Everything but
the swept quantity is fixed; each row is a full ``solve_minimal_features``
(all 2^n subsets, chunks of --chunk-size), wall time with compilation shown
apart (a first solve of 1 step compiles; the timed solve reuses nothing else).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import regionjax as rj  # noqa: E402
from benchmarks.common import machine, table  # noqa: E402


def conv_problem(n: int, channels: int, seed: int = 0):
  k = jax.random.split(jax.random.PRNGKey(seed), 4)
  w1 = jax.random.normal(k[0], (3, 3, channels, 32)) / np.sqrt(9 * channels)
  w2 = jax.random.normal(k[1], (3, 3, 32, 3)) / np.sqrt(9 * 32)
  dn = ("NHWC", "HWIO", "NHWC")

  def decode(v):
    h = jax.lax.conv_general_dilated(v[None], w1.astype(v.dtype), (1, 1), "SAME", dimension_numbers=dn)
    h = jnp.repeat(jnp.repeat(jax.nn.relu(h), 2, 1), 2, 2)
    h = jax.lax.conv_general_dilated(h, w2.astype(v.dtype), (1, 1), "SAME", dimension_numbers=dn)
    return jnp.tanh(h[0])

  f = np.asarray(jax.random.normal(k[2], (16, 16, channels)))
  f0 = np.asarray(0.3 * jax.random.normal(k[3], (16, 16, channels)))
  target = np.asarray(jax.jit(decode)(jnp.asarray(f)))
  masks = rj.patch_masks(32, 32, 6, 6)[:n]
  return decode, f, f0, target, masks


def timed_solve(n, channels, steps, chunk_size):
  args = conv_problem(n, channels)
  kw = dict(lam=500.0, learning_rate=1e-2, chunk_size=chunk_size)
  t = time.perf_counter()
  rj.solve_minimal_features(*args, steps=steps, **kw)  # compiles (same shapes and steps as the timed run)
  first = time.perf_counter() - t
  t = time.perf_counter()
  res = rj.solve_minimal_features(*args, steps=steps, **kw)
  jax.block_until_ready(res.u)
  run = time.perf_counter() - t
  return first - run, run


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--min-n", type=int, default=4)
  ap.add_argument("--max-n", type=int, default=10)
  ap.add_argument("--n-channels", type=int, default=16, help="C for the sweep over n (D = 256·C)")
  ap.add_argument("--d-n", type=int, default=6, help="n for the sweep over D")
  ap.add_argument("--channels", type=int, nargs="+", default=[4, 16, 64, 256])
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--chunk-size", type=int, default=256)
  args = ap.parse_args(argv)
  print(
    f"# benchmark d: solver time vs 2^n and vs D; {args.steps} Adam steps per subset, chunks of "
    f"{args.chunk_size}; conv decoder 16×16×C → 32×32×3"
  )
  print(f"# machine: {machine()}")
  rows = []
  base = None
  for n in range(args.min_n, args.max_n + 1):
    comp, run = timed_solve(n, args.n_channels, args.steps, args.chunk_size)
    work = ((1 << n) - 1) * args.steps  # all subsets but ∅ are optimised
    base = base or run / work
    rows.append((n, 1 << n, f"{run:.2f}", f"{max(comp, 0):.1f}", f"{work / run:,.0f}", f"{run / work / base:.2f}"))
    print(f"  n={n} done", file=sys.stderr, flush=True)
  print(f"## against n (D = {256 * args.n_channels})")
  print(table(("n", "2^n subsets", "solve s", "compile s", "subset-steps/s", "time per subset-step (rel.)"), rows))
  rows = []
  base = None
  for c in args.channels:
    comp, run = timed_solve(args.d_n, c, args.steps, args.chunk_size)
    work = ((1 << args.d_n) - 1) * args.steps
    base = base or run
    rows.append((256 * c, f"{run:.2f}", f"{max(comp, 0):.1f}", f"{work / run:,.0f}", f"{run / base:.2f}"))
    print(f"  C={c} done", file=sys.stderr, flush=True)
  print(f"## against D (n = {args.d_n}, {1 << args.d_n} subsets)")
  print(table(("D", "solve s", "compile s", "subset-steps/s", "time (rel.)"), rows))


if __name__ == "__main__":
  main()
