"""Item 5: FLOPs of one solver step on BigGAN-deep-128 at layer6, and the projection to accelerators.

    python benchmarks/flops.py                   # compile only (no run): ~1 min on a CPU
    python benchmarks/flops.py --util 0.3

XLA's cost analysis (``jax.jit(f).lower(...).compile().cost_analysis()``) of

  forward  = decode(u) (the generator after layer6, one image)
  step     = value_and_grad of the objective + Adam update + clamp, one subset

then the paper's full run, 512 subsets × 1000 steps, is ``512·1000·step`` FLOPs,
projected onto public peak numbers at an assumed utilisation:

  H100 SXM  989.4 TFLOP/s dense BF16 (494.7 TF32, 66.9 FP32)  — NVIDIA H100 Tensor Core GPU datasheet
  TPU v4    275 TFLOP/s BF16 per chip; a v4-8 slice has 4 chips — Google Cloud TPU v4 documentation
  paper     ~30 min for 512 minimal features on four RTX 3080 Ti (v2, App. E)
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from benchmarks import models  # noqa: E402
from benchmarks.common import machine, table  # noqa: E402
from regionjax import solver as solver_lib  # noqa: E402

PEAKS = {  # TFLOP/s, dense
  "1 × H100 SXM (BF16)": 989.4,
  "1 × H100 SXM (TF32)": 494.7,
  "TPU v4-8 (4 chips, BF16)": 4 * 275.0,
}


def flops_of(fn, *args) -> float:
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost["flops"])


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--layer", default="layer6")
  ap.add_argument("--subsets", type=int, default=512)
  ap.add_argument("--steps", type=int, default=1000)
  ap.add_argument("--util", type=float, default=0.4, help="assumed fraction of peak reached")
  ap.add_argument("--paper-minutes", type=float, default=30.0)
  args = ap.parse_args(argv)
  prob = models.biggan_problem(channel_width=128, layer=args.layer, with_torch=False, baseline=2)
  problem = solver_lib.Problem(
    decode=prob.decode,
    f=jnp.asarray(prob.f),
    f0=jnp.asarray(prob.f0),
    target=jnp.asarray(prob.target),
    masks=jnp.asarray(prob.masks),
    lam=500.0,
    optimizer=optax.adam(1e-4),
    steps=1,
  )
  u = jnp.asarray(prob.f)
  alpha = jnp.ones_like(u)
  opt_state = problem.optimizer.init(alpha)

  def step(alpha, opt_state, s):
    (loss, _), grad = jax.value_and_grad(solver_lib.objective, argnums=1, has_aux=True)(problem, alpha, s)
    updates, opt_state = problem.optimizer.update(grad, opt_state, alpha)
    return jnp.clip(optax.apply_updates(alpha, updates), 0.0, 1.0), opt_state, loss

  fwd = flops_of(prob.decode, u)
  stp = flops_of(step, alpha, opt_state, jnp.int32(5))
  total = args.subsets * args.steps * stp
  print(f"# item 5: FLOPs of BigGAN-deep-128 decode from {args.layer} (XLA cost analysis); machine: {machine()}")
  print(
    table(
      ("quantity", "GFLOP"),
      [
        ("decode forward, 1 image", f"{fwd / 1e9:.2f}"),
        ("solver step (fwd + bwd + Adam), 1 subset", f"{stp / 1e9:.2f}"),
        ("step / forward", f"{stp / fwd:.2f}×"),
        (f"full run: {args.subsets} subsets × {args.steps} steps", f"{total / 1e9:,.0f}"),
      ],
    )
  )
  rows = []
  for name, peak in PEAKS.items():
    sec = total / (peak * 1e12 * args.util)
    rows.append(
      (
        name,
        f"{peak:,.1f}",
        f"{args.util:.0%}",
        f"{sec:.1f} s",
        f"{sec / 60:.2f} min",
        f"{args.paper_minutes * 60 / sec:.0f}×",
      )
    )
  rows.append(
    ("paper: 4 × RTX 3080 Ti", "—", "—", f"{args.paper_minutes * 60:.0f} s", f"{args.paper_minutes:.0f} min", "1×")
  )
  print(table(("hardware", "peak TFLOP/s", "assumed util.", "projected", "minutes", "vs paper"), rows))
  print(
    f"# arithmetic: {args.subsets} × {args.steps} × {stp / 1e9:.2f} GFLOP = {total / 1e15:.2f} PFLOP; "
    f"time = FLOPs / (peak × {args.util})"
  )


if __name__ == "__main__":
  main()
