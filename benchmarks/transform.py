"""Benchmark c: the fast Möbius transform against a dense 2^n × 2^n matrix.

    python benchmarks/transform.py                 # n = 8 … 20, D = 1
    python benchmarks/transform.py --dim 64 --max-dense-gib 4

The fast transform (regionjax.mobius, O(n·2^n) per trailing element) runs for
every n; the dense transform multiplies by the Möbius matrix
M[S, T] = (−1)^{|S|−|T|}·[T ⊆ S] (the n-fold Kronecker power of [[1,0],[−1,1]],
float32, 4^n·4 bytes) for every n whose matrix fits --max-dense-gib. Both are
jit-compiled; times are medians after a warm-up; the answers are compared.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import regionjax as rj  # noqa: E402
from benchmarks.common import fmt_s, machine, table, timeit  # noqa: E402


def mobius_matrix(n: int) -> np.ndarray:
  m = np.ones((1, 1), np.float32)
  k = np.array([[1, 0], [-1, 1]], np.float32)
  for _ in range(n):
    m = np.kron(k, m)  # bit i of the index is the i-th Kronecker factor from the right
  return m


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--min-n", type=int, default=8)
  ap.add_argument("--max-n", type=int, default=20)
  ap.add_argument("--dim", type=int, default=1, help="trailing feature size D per subset")
  ap.add_argument("--max-dense-gib", type=float, default=1.0, help="largest dense matrix to build")
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args(argv)
  print(f"# benchmark c: fast Möbius transform vs dense matrix, D = {args.dim}")
  print(f"# machine: {machine()}")
  rows = []
  for n in range(args.min_n, args.max_n + 1):
    v = jax.random.normal(jax.random.PRNGKey(n), (1 << n, args.dim), jnp.float32)
    t_fast = timeit(lambda: rj.mobius(v), repeats=args.repeats)
    dense_bytes = 4**n * 4
    if dense_bytes <= args.max_dense_gib * 2**30:
      mat = jnp.asarray(mobius_matrix(n))
      dense = jax.jit(lambda m, x: jnp.dot(m, x, precision="highest"))
      t_dense = timeit(lambda: dense(mat, v), repeats=args.repeats)
      err = float(jnp.max(jnp.abs(dense(mat, v) - rj.mobius(v))) / (jnp.max(jnp.abs(v)) * 2 ** (n / 2)))
      rows.append(
        (
          n,
          1 << n,
          fmt_s(t_fast),
          fmt_s(t_dense),
          f"{t_dense / t_fast:.1f}×",
          f"{dense_bytes / 2**20:.0f} MiB",
          f"{err:.1e}",
        )
      )
      del mat
    else:
      rows.append((n, 1 << n, fmt_s(t_fast), "—", "—", f"{dense_bytes / 2**30:.0f} GiB (skipped)", "—"))
    print(f"  n={n} done", file=sys.stderr, flush=True)
  print(table(("n", "2^n", "fast (butterfly)", "dense matmul", "dense / fast", "matrix", "rel. diff"), rows))


if __name__ == "__main__":
  main()
