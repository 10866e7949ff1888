"""Issue 18 item 4: where XLA:CPU loses to PyTorch at equal steps.

    python benchmarks/cpu_gap.py                          # BigGAN-deep-128, layer6, 4 images, 7 repetitions
    XLA_FLAGS=--xla_cpu_use_onednn=true python benchmarks/cpu_gap.py    # the same with an XLA:CPU flag

One gradient step of the solver's reconstruction loss ``‖g(f0 + α⊙Δf) − x‖²``
(the decoder after ``--layer``, same weights in both frameworks), split into
its parts: the forward pass alone, the gradient of 4 images batched (JAX
``vmap``, PyTorch batch 4) and of 4 images one after the other (4 calls of
the batch-1 program). Interleaved repetitions (every variant once per round),
medians with the min–max spread, ratios against PyTorch's 4 batch-1 gradients
(the paper's per-subset loop). XLA:CPU flags are read from XLA_FLAGS, so a
flag is compared by running the script once with and once without it.
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
from benchmarks.common import machine, table  # noqa: E402


def _timed(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--channel-width", type=int, default=128)
  ap.add_argument("--layer", default="layer6")
  ap.add_argument("--images", type=int, default=4)
  ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds (medians reported)")
  args = ap.parse_args(argv)
  import torch

  prob = models.biggan_problem(channel_width=args.channel_width, layer=args.layer, with_torch=True, baseline=2)
  b = args.images
  f, f0, x = jnp.asarray(prob.f), jnp.asarray(prob.f0), jnp.asarray(prob.target)

  def loss(a):
    return jnp.sum((prob.decode(f0 + a * (f - f0)) - x) ** 2)

  grad1 = jax.jit(jax.value_and_grad(loss))
  grad_b = jax.jit(jax.vmap(jax.value_and_grad(loss)))
  fwd_b = jax.jit(jax.vmap(loss))
  a1, ab = jnp.ones(f.shape), jnp.ones((b,) + f.shape)
  for fn, arg in ((grad1, a1), (grad_b, ab), (fwd_b, ab)):  # compile and warm up, not timed
    jax.block_until_ready(fn(arg))

  nchw = lambda v: torch.from_numpy(np.asarray(v).transpose(2, 0, 1)[None].copy())
  tf, tf0, tx = nchw(f), nchw(f0), nchw(x)
  for p in prob.torch_model.parameters():
    p.requires_grad_(False)

  def torch_grad(batch):
    a = torch.ones((batch,) + tuple(tf.shape[1:]), requires_grad=True)
    ((prob.torch_decode(tf0 + a * (tf - tf0)) - tx) ** 2).sum().backward()
    return a.grad

  def torch_fwd(batch):
    with torch.no_grad():
      return prob.torch_decode(tf0 + torch.ones((batch,) + tuple(tf.shape[1:])) * (tf - tf0))

  torch_grad(1)
  variants = {
    f"JAX gradient, vmap over {b}": lambda: jax.block_until_ready(grad_b(ab)),
    f"JAX gradient, {b} batch-1 calls": lambda: [jax.block_until_ready(grad1(a1)) for _ in range(b)],
    f"JAX forward only, vmap over {b}": lambda: jax.block_until_ready(fwd_b(ab)),
    f"PyTorch gradient, {b} batch-1 calls (paper)": lambda: [torch_grad(1) for _ in range(b)],
    f"PyTorch gradient, batch {b}": lambda: torch_grad(b),
    f"PyTorch forward only, batch {b}": lambda: torch_fwd(b),
  }
  times = {k: [] for k in variants}
  for _ in range(args.repeats):
    for k, fn in variants.items():
      times[k].append(_timed(fn))
  base = float(np.median(times[f"PyTorch gradient, {b} batch-1 calls (paper)"]))
  print(
    f"# issue 18 item 4: one gradient step of the decode loss, BigGAN-deep-128 (channel_width "
    f"{args.channel_width}), random weights, split at {args.layer}: feature {tuple(f.shape)}, {b} images"
  )
  print(
    f"# machine: {machine()}; torch {torch.__version__} with {torch.get_num_threads()} threads; "
    f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
  )
  rows = [
    (k, f"{np.median(v):.3f}", f"{min(v):.3f}–{max(v):.3f}", f"{base / np.median(v):.2f}×") for k, v in times.items()
  ]
  print(table(("variant", "median s", "min–max", "speed vs the paper's loop"), rows))
  print(f"# {args.repeats} interleaved rounds")
  return 0


if __name__ == "__main__":
  sys.exit(main())
