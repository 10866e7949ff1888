"""Time to quality: wall time each solver variant needs to reach the objective of the paper's procedure.

    python -m benchmarks.time_to_quality                      # the face DCGAN, layer3, 8 subsets
    python -m benchmarks.time_to_quality --model biggan --channel-width 32 --paper-steps 1000

The paper's procedure (v2 App. E, Table 2): projected gradient descent on each
subset's α, learning rate 1e-3, λ = 200 (64×64 faces; BigGAN 500 with lr 1e-4
and 1000 steps), 1e4 steps, ``N`` first from α = 1 and every other subset from
α_N. Its mean objective (eq. 5) over a fixed random sample of subsets after its
full step count is the target J*. For each variant this prints the mean
objective and RMSE on S over the same sample, and the wall time to reach
J*·(1 + tol) ("—" if it never does), and the ratio to the paper's time as
``N×``.

Variants: ``paper`` (above), ``adam`` (Adam 1e-2 cosine, 200 steps),
``adam-stop`` (the same with early stopping, solver.stop_tol 1e-4),
``max-adam`` (the default: N and the n singletons, the rest composed), and
``bf16`` (``adam`` decoding in bfloat16). Times of ``paper`` and ``adam`` come
from their objective curves (the time of a step is the run's time divided by
its steps); ``adam-stop`` and ``max-adam`` count their whole run. Each variant
runs once to compile, then ``--repeats`` times interleaved (paper, adam, …,
paper, adam, …); medians and the min–max spread are shown.

Not measured: warm starts from the closest solved superset (not implemented).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine, table
from regionjax import solver as solver_lib


def face_problem(args):
  from regionjax.ports import dcgan
  from regionjax import patches as patches_lib
  from regionjax import pipeline

  gen = dcgan.load()
  f0 = pipeline.compute_baseline(gen, args.layer, 1000, 250, jax.random.PRNGKey(1), None)
  codes = gen.sample_codes(jax.random.PRNGKey(0), 1)
  t = pipeline.prepare_target(gen, codes, 0, args.layer, f0)
  cells = patches_lib.patch_masks(64, 64, 6, 6)
  players = np.sort(patches_lib.center_cells(6, 6)[: args.n])
  low = dcgan.DCGANGenerator(gen.config, jax.tree.map(lambda a: a.astype(jnp.bfloat16), gen.variables))

  def low_decode(v):  # the solver casts u to bfloat16 before decoding
    return low.decode(codes, args.layer, v[None].astype(jnp.bfloat16))[0]

  return (t.decode, t.f, f0, t.image, cells[players]), low_decode


def biggan_problem(args):
  from benchmarks import models

  p = models.biggan_problem(channel_width=args.channel_width, layer="layer6", n=args.n, with_torch=False)
  low = p.decode_with(jax.tree.map(lambda a: a.astype(jnp.bfloat16), p.variables))
  return (p.decode, p.f, p.f0, p.target, p.masks), low


def variants(args) -> dict:
  paper = dict(optimizer="gd", learning_rate=args.paper_lr, schedule="constant", steps=args.paper_steps)
  adam = dict(optimizer="adam", learning_rate=1e-2, schedule="cosine", steps=args.steps)
  return {
    "paper": paper,
    "adam": adam,
    "adam-stop": dict(adam, stop_tol=1e-4),
    "max-adam": dict(adam, composition="max"),
    "bf16": dict(adam, decode_dtype=jnp.bfloat16),
  }


def run_variant(name, opts, prob, sample, args, low_decode):
  """One solve of the sample (and what it needs first); returns the α of the sample, its curve and times."""
  decode, f, f0, image, masks = prob
  if opts.get("decode_dtype") is not None:  # the decoder's weights in bfloat16 too
    decode = low_decode
  o = solver_lib.SolverOptions(lam=args.lam, chunk_size=max(len(sample), args.n), **opts)
  setup = solver_lib.prepare(decode, f, f0, image, masks, o)
  t0 = time.perf_counter()
  first = solver_lib.solve_chunk(setup, 0, jnp.ones(np.shape(f), jnp.float32))  # N from α = 1
  t_first = time.perf_counter() - t0
  if o.composition == "max":
    singles = np.array([1 << i for i in range(masks.shape[0])], np.int64)
    chunk = solver_lib.solve_chunk(setup, 1, first.alpha[0], ids=singles)
    composed = np.asarray(solver_lib.compose_max(chunk.alpha))
    alpha, curve = composed[sample], None
  elif o.stop_tol is not None:
    chunk = solver_lib.solve_pool(setup, sample, first.alpha[0], tol=o.stop_tol)
    alpha, curve = chunk.alpha, None
  else:
    chunk = solver_lib.solve_chunk(setup, 1, first.alpha[0], ids=sample)
    alpha, curve = chunk.alpha, np.nanmean(chunk.history, axis=0)
  total = time.perf_counter() - t0
  return dict(alpha=alpha, curve=curve, t_first=t_first, total=total, steps=o.steps)


def evaluate(prob, sample, alpha, lam):
  """Mean objective (eq. 5 at the paper's λ) and mean RMSE on S over the sample."""
  decode, f, f0, image, masks = prob
  problem = solver_lib.Problem(
    f=jnp.asarray(f),
    f0=jnp.asarray(f0),
    target=jnp.asarray(image),
    masks=jnp.asarray(masks),
    lam=float(lam),
    decode=decode,
    optimizer=solver_lib.make_optimizer(1e-3, 1),
    steps=1,
  )
  fn = jax.jit(jax.vmap(lambda a, s: solver_lib.objective(problem, a, s)))
  loss, rmse = fn(jnp.asarray(alpha), solver_lib.encode_subsets(masks.shape[0], sample))
  return float(np.mean(loss)), float(np.mean(rmse))


def time_to(run, target) -> float | None:
  """Seconds until the mean objective first reaches ``target``."""
  if run["curve"] is None:
    return run["total"] if run["J"] <= target else None
  after = np.append(run["curve"][1:], run["J"])  # objective after step t = before step t + 1
  hit = np.nonzero(after <= target)[0]
  if hit.size == 0:
    return None
  per_step = (run["total"] - run["t_first"]) / run["steps"]
  return run["t_first"] + per_step * (hit[0] + 1)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--model", choices=("face", "biggan"), default="face")
  ap.add_argument("--layer", default="layer3")
  ap.add_argument("--channel-width", type=int, default=32, help="biggan only")
  ap.add_argument("--n", type=int, default=9)
  ap.add_argument("--subsets", type=int, default=8, help="random sample of subsets (fixed seed)")
  ap.add_argument("--lam", type=float, default=None, help="default: 200 (face), 500 (biggan)")
  ap.add_argument("--paper-lr", type=float, default=None, help="default: 1e-3 (face), 1e-4 (biggan)")
  ap.add_argument("--paper-steps", type=int, default=None, help="default: 10000 (face), 1000 (biggan)")
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--tol", type=float, default=0.01)
  ap.add_argument("--repeats", type=int, default=2)
  ap.add_argument("--variants", default="paper,adam,adam-stop,max-adam,bf16")
  args = ap.parse_args()
  face = args.model == "face"
  args.lam = args.lam or (200.0 if face else 500.0)
  args.paper_lr = args.paper_lr or (1e-3 if face else 1e-4)
  args.paper_steps = args.paper_steps or (10000 if face else 1000)
  prob, low_decode = face_problem(args) if face else biggan_problem(args)
  rng = np.random.default_rng(0)
  sample = np.sort(rng.choice(np.arange(1, (1 << args.n) - 1), size=args.subsets, replace=False)).astype(np.int64)
  names = [v for v in args.variants.split(",") if v]
  table_of = variants(args)
  load = os.getloadavg()[0]
  runs = {name: [] for name in names}
  for rep in range(args.repeats + 1):  # rep 0 compiles
    for name in names:
      r = run_variant(name, table_of[name], prob, sample, args, low_decode)
      r["J"], r["rmse"] = evaluate(prob, sample, r["alpha"], args.lam)
      if rep:
        runs[name].append(r)
      print(f"# {'compile' if rep == 0 else f'rep {rep}'} {name}: {r['total']:.1f} s, J = {r['J']:.4g}", flush=True)
  target = np.median([r["J"] for r in runs["paper"]]) * (1 + args.tol) if "paper" in runs else None
  t_paper = np.median([time_to(r, target) for r in runs["paper"]]) if target is not None else None
  rows = []
  for name in names:
    rs = runs[name]
    times = [time_to(r, target) for r in rs] if target is not None else []
    reached = [t for t in times if t is not None]
    tq = np.median(reached) if reached and len(reached) == len(times) else None
    total = [r["total"] for r in rs]
    rows.append(
      [
        name,
        table_of[name].get("optimizer"),
        table_of[name]["steps"],
        f"{np.median([r['J'] for r in rs]):.6g}",
        f"{np.median([r['rmse'] for r in rs]):.4f}",
        f"{np.median(total):.1f} ({min(total):.1f}–{max(total):.1f})",
        "—" if tq is None else f"{tq:.1f} ({min(reached):.1f}–{max(reached):.1f})",
        "—" if tq is None or t_paper is None else f"{t_paper / tq:.1f}×",
      ]
    )
  print(
    f"# time to quality: {args.model}, λ {args.lam:g}, {args.subsets} random subsets of n = {args.n} "
    f"(+ N), J* = paper's objective × (1 + {args.tol:g}) = {target:.4g}"
  )
  print(f"# machine: {machine()}; load average at start {load:.1f}")
  print(
    table(
      ["variant", "optimizer", "steps", "objective J", "RMSE on S", "run s (spread)", "s to J* (spread)", "speed-up"],
      rows,
    )
  )


if __name__ == "__main__":
  main()
