"""Benchmark a: regionjax's batched solver against the paper's per-subset loop in PyTorch.

    python benchmarks/torch_vs_jax.py                     # BigGAN-deep-128, layer6, 4 subsets × 5 steps
    python benchmarks/torch_vs_jax.py --subsets 16 --steps 20 --channel-width 128

Same model: the reference BigGAN-deep-128 of pytorch-pretrained-biggan, random
init (spectral norms power-iterated, see models.py), its state dict converted
into the Flax port. Split at ``--layer``; decode = the rest of the generator.
Same objective (paper v2 eq. 5): ‖α⊙Δf‖₁ + (λ/|S|)‖mask_S⊙(g(f0+α⊙Δf) − x)‖²,
Adam(lr) then clamp to [0, 1], from α = 1, for the same subsets S = 1 … K and
the same number of steps.

  PyTorch (paper): for each S, a fresh Adam on α_S and a Python loop of steps.
  regionjax:       all K subsets in one jit-compiled vmap, steps in lax.scan.

Timing: ``--repeats`` interleaved repetitions (JAX, PyTorch, JAX, PyTorch, …),
so that load on the machine hits both alike; reported are the median
subset-steps per second of each (K·steps / wall time, compile excluded and
shown apart), the min–max spread, the ratio of the medians and the ratio's
spread over the pairs, and the largest |α_torch − α_jax| after the run.
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

from benchmarks import models  # noqa: E402
from benchmarks.common import machine, peak_rss_mib, table  # noqa: E402
from regionjax import solver as solver_lib  # noqa: E402


def torch_loop(prob, subsets, *, lam, lr, steps):
  """The paper's procedure: one subset at a time, Adam + clamp, in PyTorch."""
  import torch

  f = torch.from_numpy(np.ascontiguousarray(prob.f.transpose(2, 0, 1)[None]))
  f0 = torch.from_numpy(np.ascontiguousarray(prob.f0.transpose(2, 0, 1)[None]))
  x = torch.from_numpy(np.ascontiguousarray(prob.target.transpose(2, 0, 1)[None]))
  masks = torch.from_numpy(prob.masks)
  delta = f - f0
  for p in prob.torch_model.parameters():
    p.requires_grad_(False)
  alphas = []
  for s in subsets:
    members = [i for i in range(masks.shape[0]) if (s >> i) & 1]
    mask = masks[members].any(0)[None, None].float()
    alpha = torch.ones_like(f, requires_grad=True)
    opt = torch.optim.Adam([alpha], lr=lr)
    for _ in range(steps):
      opt.zero_grad()
      u = f0 + alpha * delta
      img = prob.torch_decode(u)
      loss = (alpha * delta).abs().sum() + lam / len(members) * (((img - x) * mask) ** 2).sum()
      loss.backward()
      opt.step()
      with torch.no_grad():
        alpha.clamp_(0.0, 1.0)
    alphas.append(alpha.detach()[0].numpy().transpose(1, 2, 0))
  return np.stack(alphas)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--subsets", type=int, default=4)
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--channel-width", type=int, default=128, help="128 = BigGAN-deep-128")
  ap.add_argument("--layer", default="layer6")
  ap.add_argument("--lam", type=float, default=500.0)
  ap.add_argument("--lr", type=float, default=1e-4)
  ap.add_argument("--torch-threads", type=int, default=0, help="0 = torch's default")
  ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions of each (medians reported)")
  ap.add_argument(
    "--subsets-per-call", type=int, default=1, help="also time solver.subsets_per_call = this (0: skip that row)"
  )
  args = ap.parse_args(argv)
  import torch

  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)

  t = time.perf_counter()
  prob = models.biggan_problem(channel_width=args.channel_width, layer=args.layer)
  build = time.perf_counter() - t
  k, steps = args.subsets, args.steps
  subsets = list(range(1, k + 1))
  print("# benchmark a: batched regionjax solver vs the paper's per-subset PyTorch loop")
  print(f"# machine: {machine()}; torch {torch.__version__} with {torch.get_num_threads()} threads")
  print(
    f"# model: BigGAN-deep-128 (channel_width {args.channel_width}), random weights, split at {args.layer}: "
    f"feature {prob.f.shape} = {prob.f.size} numbers; n = {prob.masks.shape[0]} patches; "
    f"{k} subsets × {steps} Adam steps, λ = {args.lam}, lr = {args.lr} (built in {build:.0f} s)"
  )

  # regionjax: one chunk of k subsets
  # the CPU default runs blocks of 5 unrolled steps; with --steps ≤ 5 that is one compiled call
  setup_steps_per_call = solver_lib.default_steps_per_call()
  setup = solver_lib.prepare(
    prob.decode,
    prob.f,
    prob.f0,
    prob.target,
    prob.masks,
    lam=args.lam,
    learning_rate=args.lr,
    steps=steps,
    chunk_size=k,
    steps_per_call=max(setup_steps_per_call, steps) if setup_steps_per_call else 0,
    subsets_per_call=0,  # the vmapped chunk; the grouped one is timed beside it
  )
  assert setup.plan[1].tolist() == subsets
  ones = jnp.ones(prob.f.shape, jnp.float32)
  alpha0 = jnp.broadcast_to(ones, (k,) + prob.f.shape)
  sid = jnp.asarray(subsets, jnp.int32)
  t = time.perf_counter()
  compiled = solver_lib.compile_chunk(setup, alpha0, sid)
  compile_s = time.perf_counter() - t
  mem = compiled.memory_analysis()
  peak = (mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes) / 2**20
  grouped = None
  if args.subsets_per_call:  # the same chunk as groups of subsets called one after another
    grouped = solver_lib.make_chunk_runner(setup.problem, setup.steps_per_call, args.subsets_per_call)
    t = time.perf_counter()
    jax.block_until_ready(grouped(alpha0, sid))
    grouped_compile_s = time.perf_counter() - t
  torch_loop(prob, subsets[:1], lam=args.lam, lr=args.lr, steps=1)  # warm-up, not timed
  jax_times, torch_times, grouped_times = [], [], []
  for _ in range(args.repeats):  # A B (C) A B (C) …: load on the machine hits all alike
    t = time.perf_counter()
    alpha_jax = np.asarray(jax.block_until_ready(compiled(setup.problem, alpha0, sid))[0])
    jax_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    alpha_torch = torch_loop(prob, subsets, lam=args.lam, lr=args.lr, steps=steps)
    torch_times.append(time.perf_counter() - t)
    if grouped is not None:
      t = time.perf_counter()
      alpha_grouped = np.asarray(jax.block_until_ready(grouped(alpha0, sid))[0])
      grouped_times.append(time.perf_counter() - t)
  rss_after_jax = peak_rss_mib()
  jax_s, torch_s = float(np.median(jax_times)), float(np.median(torch_times))
  pair_ratios = np.array(torch_times) / np.array(jax_times)

  diff = float(np.abs(alpha_torch - alpha_jax).max())
  work = k * steps
  spread = lambda ts: f"{work / max(ts):.3f}–{work / min(ts):.3f}"  # noqa: E731
  rows = [
    (
      "PyTorch per-subset loop (paper)",
      f"{torch_s:.1f}",
      "—",
      f"{work / torch_s:.3f}",
      spread(torch_times),
      "1.00×",
      "—",
    ),
    (
      f"regionjax batched (vmap×{k}, {'scan' if setup_steps_per_call == 0 else 'unrolled steps'})",
      f"{jax_s:.1f}",
      f"{compile_s:.1f}",
      f"{work / jax_s:.3f}",
      spread(jax_times),
      f"{torch_s / jax_s:.2f}×",
      f"{peak:.0f} MiB",
    ),
  ]
  if grouped is not None:
    grouped_s = float(np.median(grouped_times))
    rows.append(
      (
        f"regionjax, {args.subsets_per_call} subset(s) per call",
        f"{grouped_s:.1f}",
        f"{grouped_compile_s:.1f}",
        f"{work / grouped_s:.3f}",
        spread(grouped_times),
        f"{torch_s / grouped_s:.2f}×",
        "—",
      )
    )
  print(
    table(("method", "median run s", "compile s", "subset-steps/s (median)", "min–max", "speed-up", "XLA peak"), rows)
  )
  print(
    f"# {args.repeats} interleaved repetitions; speed-up = ratio of medians {torch_s / jax_s:.2f}×, per pair "
    f"{pair_ratios.min():.2f}×–{pair_ratios.max():.2f}× (median {np.median(pair_ratios):.2f}×)"
  )
  if grouped is not None:
    gr = np.array(torch_times) / np.array(grouped_times)
    print(
      f"# {args.subsets_per_call} subset(s) per call: ratio of medians {torch_s / grouped_s:.2f}×, per triple "
      f"{gr.min():.2f}×–{gr.max():.2f}×; max |α_grouped − α_vmap| {np.abs(alpha_grouped - alpha_jax).max():.1e}"
    )
  print(
    f"# max |α_torch − α_jax| after {steps} steps: {diff:.2e}; process peak RSS {peak_rss_mib():.0f} MiB "
    f"({rss_after_jax:.0f} MiB after the JAX run)"
  )


if __name__ == "__main__":
  main()
