"""The paper-scale BigGAN-deep-128 run in one command: 512 subsets × 1000 steps at layer6 (random weights).

    python -m benchmarks.paper_scale                       # on an accelerator: the full run, timed
    python -m benchmarks.paper_scale --plan-only           # chunk sizes from XLA's memory analysis, no solve
    python -m benchmarks.paper_scale --channel-width 16 --steps 2 --max-subsets 16   # a CPU smoke run

The reference BigGAN-deep-128 (pytorch-pretrained-biggan's architecture, random
init with spectral norms power-iterated, converted into the Flax port), split at
layer6; 9 central cells of a 6×6 grid; the paper's procedure (v2 App. E, Table
2: projected gradient descent, learning rate 1e-4, 1000 steps, λ = 500), all
2^9 − 1 subsets solved independently, every chunk sharded over the local
devices. The chunk size is the largest that fits ``--memory-gib`` per device by
XLA's memory analysis (default: 90% of the device's memory where jax reports
it, else 20 GiB). Printed: the device, the chunk, the wall time of the first
chunk (compile included) and of the rest, subset-steps per second, and the
FLOP rate achieved against the 27.96 GFLOP per subset-step of
``benchmarks/flops.py``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import models
from benchmarks.common import machine, table
from regionjax import distributed
from regionjax import solver as solver_lib

GFLOP_PER_SUBSET_STEP = 27.96  # benchmarks/flops.py, BigGAN-deep-128 layer6 (channel width 128)


def _device_memory_gib() -> float | None:
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:  # noqa: BLE001 - backends without memory stats
    return None
  if not stats or "bytes_limit" not in stats:
    return None
  return stats["bytes_limit"] / 2**30


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--channel-width", type=int, default=128)
  ap.add_argument("--layer", default="layer6")
  ap.add_argument("--steps", type=int, default=1000)
  ap.add_argument("--memory-gib", type=float, default=None)
  ap.add_argument("--decode-dtype", choices=("float32", "bfloat16"), default="float32")
  ap.add_argument("--max-subsets", type=int, default=None, help="solve only the first this many (smoke runs)")
  ap.add_argument("--plan-only", action="store_true", help="print the chunk sizes and stop")
  ap.add_argument("--remat-blocks", action="store_true", help="rematerialise each residual block (model.remat_blocks)")
  args = ap.parse_args()

  devices = jax.local_device_count()
  mem = args.memory_gib or (0.9 * (_device_memory_gib() or 20.0 / 0.9))
  prob = models.biggan_problem(channel_width=args.channel_width, layer=args.layer, n=9, with_torch=False)
  ddtype = jnp.bfloat16 if args.decode_dtype == "bfloat16" else None
  variables = prob.variables if ddtype is None else jax.tree.map(lambda a: a.astype(ddtype), prob.variables)
  decode = prob.decode_with(variables, remat_blocks=args.remat_blocks)
  print(
    f"# paper-scale run: BigGAN-deep-128 (channel width {args.channel_width}) at {args.layer}, "
    f"random weights; {machine()}"
  )
  t0 = time.perf_counter()
  chunk = solver_lib.chunk_size_for_budget(
    decode, prob.f, prob.target, budget_bytes=mem * 2**30, devices=devices, decode_dtype=ddtype
  )
  per1 = solver_lib.chunk_memory_bytes(decode, prob.f, prob.target, 1, decode_dtype=ddtype)
  print(
    table(
      ["memory per device", "peak, 1 subset (XLA)", "largest chunk", "devices", "planning s"],
      [
        [
          f"{mem:.1f} GiB",
          "—" if per1 is None else f"{per1 / 2**30:.2f} GiB",
          chunk,
          devices,
          f"{time.perf_counter() - t0:.1f}",
        ]
      ],
    )
  )
  if args.plan_only:
    return
  options = solver_lib.SolverOptions(
    lam=500.0,
    learning_rate=1e-4,
    steps=args.steps,
    optimizer="gd",
    composition="independent",
    chunk_size=chunk,
    decode_dtype=ddtype,
    steps_per_call=0 if jax.default_backend() != "cpu" else None,
  )
  mesh = distributed.local_mesh() if devices > 1 else None
  setup = solver_lib.prepare(decode, prob.f, prob.f0, prob.target, prob.masks, options, mesh=mesh)
  plan = setup.plan if args.max_subsets is None else _truncate(setup.plan, args.max_subsets)
  times, solved = [], 0
  alpha_n = None
  for index, ids in enumerate(plan):
    t = time.perf_counter()
    start = jnp.ones(np.shape(prob.f), jnp.float32) if index == 0 else alpha_n
    out = solver_lib.solve_chunk(setup, index, start, ids=ids)
    times.append(time.perf_counter() - t)
    solved += ids.size
    if index == 0:
      alpha_n = out.alpha[0]
    print(f"# chunk {index + 1}/{len(plan)}: {ids.size} subsets in {times[-1]:.1f} s", flush=True)
  rest = sum(times[1:])
  total = sum(times)
  rate = solved * args.steps / total
  print(
    table(
      ["subsets", "steps", "wall s (all)", "N (compile incl.)", "rest s", "subset-steps/s", "achieved TFLOP/s"],
      [
        [
          solved,
          args.steps,
          f"{total:.1f}",
          f"{times[0]:.1f}",
          f"{rest:.1f}",
          f"{rate:.1f}",
          f"{rate * GFLOP_PER_SUBSET_STEP / 1e3:.2f}"
          if args.channel_width == 128 and args.layer == "layer6"
          else "— (flops.py counts width 128, layer6)",
        ]
      ],
    )
  )


def _truncate(plan, limit):
  out, left = [], limit
  for ids in plan:
    if left <= 0:
      break
    out.append(ids[:left])
    left -= ids[:left].size
  return out


if __name__ == "__main__":
  main()
