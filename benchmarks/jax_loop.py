"""Benchmark b: the batched solver against per-subset loops, all in JAX (batching vs framework).

    python benchmarks/jax_loop.py                             # BigGAN-deep, channel_width 32, 8 subsets × 10 steps
    python benchmarks/jax_loop.py --channel-width 128 --subsets 8 --steps 5    # the full BigGAN-deep-128

Same model (BigGAN-deep-128 architecture at --channel-width, random weights, split
at --layer), same objective, same subsets, same steps, three ways:

  loop (paper):   for each subset, a Python loop of jit-compiled steps (value_and_grad + Adam + clamp)
  loop + scan:    for each subset, one jit-compiled call: its steps in lax.scan (batch of 1)
  batched, scan:  all subsets in one jit-compiled vmap, steps in lax.scan (regionjax on accelerators)
  batched, blocks: all subsets vmapped, steps in compiled blocks of --steps-per-call unrolled steps
                  (regionjax's default on CPU, where XLA runs while-loop bodies 3–5× slower)

Each is run once first (compilation + one run, shown apart), then timed on a second run.
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
import optax  # noqa: E402

from benchmarks import models  # noqa: E402
from benchmarks.common import machine, table  # noqa: E402
from regionjax import solver as solver_lib  # noqa: E402


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--subsets", type=int, default=8)
  ap.add_argument("--steps", type=int, default=10)
  ap.add_argument("--channel-width", type=int, default=32)
  ap.add_argument("--layer", default="layer6")
  ap.add_argument("--lam", type=float, default=500.0)
  ap.add_argument("--lr", type=float, default=1e-4)
  ap.add_argument("--steps-per-call", type=int, default=5)
  args = ap.parse_args(argv)
  prob = models.biggan_problem(channel_width=args.channel_width, layer=args.layer, with_torch=False)
  k, steps = args.subsets, args.steps
  subsets = np.arange(1, k + 1, dtype=np.int32)
  kw = dict(lam=args.lam, learning_rate=args.lr, steps=steps, chunk_size=k)
  setup = solver_lib.prepare(
    prob.decode, prob.f, prob.f0, prob.target, prob.masks, steps_per_call=0, subsets_per_call=0, **kw
  )
  blocked = solver_lib.prepare(
    prob.decode, prob.f, prob.f0, prob.target, prob.masks, steps_per_call=args.steps_per_call, subsets_per_call=0, **kw
  )
  problem = setup.problem
  opt = optax.adam(args.lr)
  ones = jnp.ones(prob.f.shape, jnp.float32)

  @jax.jit
  def step(alpha, opt_state, s):
    (loss, _), grad = jax.value_and_grad(solver_lib.objective, argnums=1, has_aux=True)(problem, alpha, s)
    updates, opt_state = opt.update(grad, opt_state, alpha)
    return jnp.clip(optax.apply_updates(alpha, updates), 0.0, 1.0), opt_state, loss

  def loop_paper(ids):
    out = []
    for s in ids:
      alpha, state = ones, opt.init(ones)
      for _ in range(steps):
        alpha, state, _ = step(alpha, state, jnp.int32(s))
      out.append(alpha)
    return jax.block_until_ready(jnp.stack(out))

  def loop_scan(ids):
    out = [setup.run(ones[None], jnp.asarray([s], jnp.int32))[0][0] for s in ids]
    return jax.block_until_ready(jnp.stack(out))

  def batched(ids):
    alpha0 = jnp.broadcast_to(ones, (len(ids),) + ones.shape)
    return jax.block_until_ready(setup.run(alpha0, jnp.asarray(ids, jnp.int32))[0])

  def batched_blocks(ids):
    alpha0 = jnp.broadcast_to(ones, (len(ids),) + ones.shape)
    return jax.block_until_ready(blocked.run(alpha0, jnp.asarray(ids, jnp.int32))[0])

  print("# benchmark b: batched solver vs per-subset loops, all JAX")
  print(f"# machine: {machine()}")
  print(
    f"# model: BigGAN-deep-128 architecture, channel_width {args.channel_width}, random weights, split at "
    f"{args.layer}: feature {prob.f.shape} = {prob.f.size}; {k} subsets × {steps} Adam steps"
  )
  rows, results, times = [], {}, {}
  for name, fn in (
    ("loop (paper): Python steps", loop_paper),
    ("loop + scan (batch 1)", loop_scan),
    (f"batched (vmap × {k}, scan)", batched),
    (f"batched (vmap × {k}, blocks of {args.steps_per_call})", batched_blocks),
  ):
    t = time.perf_counter()
    fn(subsets)  # compiles, and runs once
    comp = time.perf_counter() - t
    t = time.perf_counter()
    results[name] = np.asarray(fn(subsets))
    times[name] = time.perf_counter() - t
    rows.append((name, f"{times[name]:.2f}", f"{comp:.1f}", f"{k * steps / times[name]:.2f}"))
    print(f"  {name} done", file=sys.stderr, flush=True)
  ref = rows[0][0]
  rows = [r + (f"{times[ref] / times[r[0]]:.2f}×", f"{np.abs(results[r[0]] - results[ref]).max():.1e}") for r in rows]
  print(table(("method", "run s", "compile(+1 run) s", "subset-steps/s", "speed-up", "max |Δα| vs loop"), rows))


if __name__ == "__main__":
  main()
