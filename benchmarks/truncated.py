"""Components up to order k: problems solved and seconds against n, on the face DCGAN.

For n = 9, 16 and 36 central cells of the 6×6 grid (36 = every cell) and
k = 2, solves the C(n, ≤k) minimal features u(N∖T), |T| ≤ k, that the
components of order ≤ k need (``regionjax.truncated.solve_truncated``) with
``composition='max'`` (N and the n singletons optimised, the rest composed)
and, for n = 9 only, ``'independent'`` (all C(n, ≤k) optimised). The solver
settings are those of ``configs/default.py`` / ``configs/grid.py`` (λ = 200,
Adam, lr 0.01 cosine, 200 steps, τ = 0.1) without the λ continuation, so the
number of problems is fixed. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from regionjax.ports import dcgan  # noqa: E402
from regionjax import patches as patches_lib  # noqa: E402
from regionjax import pipeline  # noqa: E402
from regionjax import truncated as truncated_lib  # noqa: E402


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--runs", default="9:max,16:max,36:max,9:independent", help="n:composition, comma-separated")
  ap.add_argument("--k", type=int, default=2)
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--lam", type=float, default=200.0)
  ap.add_argument("--chunk-size", type=int, default=16)
  args = ap.parse_args()

  t0 = time.perf_counter()
  gen, layer = dcgan.load(), "layer2"
  f0 = pipeline.compute_baseline(gen, layer, 1000, 250, jax.random.PRNGKey(1), None)
  codes = gen.sample_codes(jax.random.PRNGKey(0), 1)
  target = pipeline.prepare_target(gen, codes, 0, layer, f0)
  cells = patches_lib.patch_masks(64, 64, 6, 6)
  print("# benchmark: components up to order k from C(n, ≤k) minimal features (regionjax.truncated)")
  print(f"# machine: {common.machine()}")
  print(
    f"# model: face DCGAN at {layer}, feature {tuple(target.f.shape)}, target seed 0; k = {args.k}; "
    f"λ = {args.lam}, Adam lr 0.01 cosine, {args.steps} steps, τ = 0.1, chunk {args.chunk_size}, no λ continuation; "
    f"set-up {time.perf_counter() - t0:.0f} s"
  )
  rows = []
  for run in args.runs.split(","):
    n_str, composition = run.split(":")
    n = int(n_str)
    players = np.sort(patches_lib.center_cells(6, 6)[:n])
    t = time.perf_counter()
    res = truncated_lib.solve_truncated(
      target.decode,
      target.f,
      f0,
      target.image,
      cells[players],
      max_order=args.k,
      lam=args.lam,
      learning_rate=0.01,
      schedule="cosine",
      steps=args.steps,
      tau=0.1,
      chunk_size=args.chunk_size,
      composition=composition,
    )
    seconds = time.perf_counter() - t
    rt = common.timeit(lambda: truncated_lib.or_components(res.u, f0, n, res.max_order), repeats=3)
    rows.append(
      [
        n,
        res.max_order,
        composition,
        int(res.problems.size),
        truncated_lib.num_sets(n, args.k),
        f"2^{n} = {2**n:,}",
        f"{seconds:.1f}",
        f"{rt * 1e3:.1f}",
        f"{res.residual['relative']:.4f}",
        f"{int((~res.unmet).sum())}/{res.family.size}",
      ]
    )
    print(f"# done n={n} {composition}: {seconds:.1f} s", flush=True)
  print(
    common.table(
      [
        "n",
        "k",
        "composition",
        "problems solved",
        "minimal features used",
        "full method needs",
        "solve s",
        "transform ms",
        "residual",
        "met τ",
      ],
      rows,
    )
  )
  print(f"# process peak RSS {common.peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
  main()
