"""Item 3: peak memory and accuracy of rematerialisation and bfloat16 decoding.

    python benchmarks/memory.py                                   # channel_width 32, chunk 8, 2 subsets × 5 steps
    python benchmarks/memory.py --channel-width 128 --chunk 64    # BigGAN-deep-128 (memory is compile-only)

For each variant — float32 or bfloat16 decoding (α, the loss and Adam's state
stay float32; the bf16 decoder closes over parameters cast to bf16), with or
without remat of the decoder, or with each residual block of the port
rematerialised (``remat_blocks``) — the chunk function is compiled for --chunk
subsets and XLA's memory analysis gives its peak (arguments + outputs +
temporaries); ``chunk_size_for_budget`` then says how many subsets fit
--budget-gib. Accuracy: --run-subsets subsets are solved for --steps steps
with each variant and compared with float32 without remat: the largest |Δα|
and the relative change of the masked reconstruction RMSE.
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


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--channel-width", type=int, default=32)
  ap.add_argument("--layer", default="layer6")
  ap.add_argument("--chunk", type=int, default=8)
  ap.add_argument("--budget-gib", type=float, default=16.0)
  ap.add_argument("--run-subsets", type=int, default=2)
  ap.add_argument("--steps", type=int, default=5)
  ap.add_argument("--lam", type=float, default=500.0)
  ap.add_argument("--lr", type=float, default=1e-2, help="large enough that α moves in few steps")
  args = ap.parse_args(argv)
  prob = models.biggan_problem(channel_width=args.channel_width, layer=args.layer, with_torch=False, baseline=2)
  bf16_vars = jax.tree.map(lambda a: a.astype(jnp.bfloat16), prob.variables)
  decoders = {
    "float32": (prob.decode, None),
    "bfloat16": (prob.decode_with(bf16_vars), jnp.bfloat16),
    "float32 per-block-remat": (prob.decode_with(prob.variables, remat_blocks=True), None),
    "bfloat16 per-block-remat": (prob.decode_with(bf16_vars, remat_blocks=True), jnp.bfloat16),
  }
  variants = [(d, r) for d in decoders for r in ((False, True, "nothing") if "block" not in d else (False,))]
  print(
    f"# item 3: memory and accuracy of remat / bf16 decoding; BigGAN-deep-128 architecture, channel_width "
    f"{args.channel_width}, split at {args.layer}, feature {prob.f.shape}"
  )
  print(f"# machine: {machine()}")
  rows, ref = [], None
  ids = np.arange(1, args.run_subsets + 1)
  for dname, remat in variants:
    decode, ddtype = decoders[dname]
    kw = dict(decode_dtype=ddtype, remat=remat)
    peak = solver_lib.chunk_memory_bytes(decode, prob.f, prob.target, args.chunk, **kw)
    fit = solver_lib.chunk_size_for_budget(decode, prob.f, prob.target, budget_bytes=args.budget_gib * 2**30, **kw)
    setup = solver_lib.prepare(
      decode,
      prob.f,
      prob.f0,
      prob.target,
      prob.masks,
      lam=args.lam,
      learning_rate=args.lr,
      steps=args.steps,
      chunk_size=args.run_subsets,
      **kw,
    )
    ones = jnp.ones(prob.f.shape, jnp.float32)
    a0 = jnp.broadcast_to(ones, (len(ids),) + ones.shape)
    sid = jnp.asarray(ids, jnp.int32)
    jax.block_until_ready(setup.run(a0, sid))  # compiles
    t = time.perf_counter()
    alpha, _, err = jax.block_until_ready(setup.run(a0, sid))
    run = time.perf_counter() - t
    alpha, err = np.asarray(alpha), np.asarray(err)
    # the error of each variant's α measured with the float32 decoder, so only α's quality differs
    f32 = solver_lib.prepare(
      prob.decode, prob.f, prob.f0, prob.target, prob.masks, lam=args.lam, learning_rate=args.lr, steps=1, chunk_size=1
    ).problem
    err32 = np.asarray([float(solver_lib.objective(f32, jnp.asarray(a), jnp.int32(s))[1]) for a, s in zip(alpha, ids)])
    if ref is None:
      ref = (alpha, err32)
    name = f"{dname} decode, remat={remat}"
    rows.append(
      (
        name,
        f"{peak / 2**20:,.0f}",
        f"{peak / args.chunk / 2**20:,.1f}",
        f"{fit}",
        f"{len(ids) * args.steps / run:.2f}",
        f"{np.abs(alpha - ref[0]).max():.1e}",
        f"{np.mean(err32):.4f}",
        f"{(np.mean(err32) / np.mean(ref[1]) - 1):+.1%}",
      )
    )
    print(f"  {name} done", file=sys.stderr, flush=True)
  print(
    table(
      (
        "variant",
        f"XLA peak MiB (chunk {args.chunk})",
        "MiB / subset",
        f"chunk for {args.budget_gib:g} GiB",
        "subset-steps/s",
        "max |Δα| vs f32",
        "RMSE on S (f32 decode)",
        "RMSE change",
      ),
      rows,
    )
  )
  print(f"# process peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
  main()
