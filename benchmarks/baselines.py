"""Other explanations measured on the paper's axioms, with the same metrics (issue 17).

    python -m benchmarks.baselines                      # the face DCGAN of configs/default.py
    python -m benchmarks.baselines --model biggan       # BigGAN-deep-128 at random weights: a plumbing check

On the same generator, layer, image and cells, four decompositions of
``f − f0``: units (GAN Dissection: one per channel), directions (GANSpace: the
top principal components of the feature over ``--pca-codes`` codes, as many as
channels), spatial cells (the feature positions under each player) and our
OR components, raw and denoised; each scored by ``regionjax.baselines.score``
(completeness, ρ over the whole image, boundary breach, consistency,
sparsity, additivity with the config's K, fields by the one ablation rule).
Prints a markdown table (method × metric, column heads naming the paper's
axioms) and, with ``--out``, writes it with the raw scores as JSON.

The face run is the default run's image: configs/default.py (layer3, the 9
central cells of a 6 × 6 grid, f0 over 1000 codes, the max composition). The
BigGAN run uses the random-weight BigGAN-deep of ``benchmarks.models`` (channel
width ``--channel-width``, layer6, ``--n`` central cells, Adam with the max
composition): its numbers say the code runs on a second architecture, nothing
about explanations of a trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine
from regionjax import baselines as baselines_lib
from regionjax import components as components_lib
from regionjax import denoise as denoise_lib
from regionjax import evaluation
from regionjax import pipeline
from regionjax import runsteps
from regionjax import solver as solver_lib


def encode_many(gen, layer: str, num: int, batch: int, seed: int, classes=None) -> np.ndarray:
  """The feature at ``layer`` of ``num`` fresh codes (for the principal directions)."""
  out = []
  for start in range(0, num, batch):
    k = min(batch, num - start)
    cls = None if classes is None else np.full(k, classes)
    out.append(np.asarray(gen.encode(gen.sample_codes(jax.random.PRNGKey(seed + start), k, classes=cls), layer)))
  return np.concatenate(out)


def face(args):
  """configs/default.py's image, solved as the default run solves it."""
  from configs import default
  from regionjax.ports import registry

  config = default.get_config()
  gen = registry.build(config.model)
  layer = config.model.layer
  f0 = pipeline.compute_baseline(
    gen,
    layer,
    config.baseline.num_codes,
    config.baseline.batch_size,
    jax.random.PRNGKey(config.baseline.seed),
    gen.num_classes,
  )
  codes = gen.sample_codes(jax.random.PRNGKey(config.target.seed), config.target.num_images)
  t = pipeline.prepare_target(gen, codes, 0, layer, f0)
  cells = runsteps.grid_cells(config, t.image.shape)
  players = runsteps.choose_players(config, cells, [t])
  with tempfile.TemporaryDirectory() as ckpt:
    res = runsteps.solve_target(config, t, f0, cells, players, args.checkpoints or ckpt)
  feats = encode_many(gen, layer, args.pca_codes, 250, 10_000)
  desc = f"face DCGAN (configs/default.py) at {layer} {tuple(t.f.shape)}, players {players.tolist()} of a 6×6 grid"
  return config, desc, res.decode, res.f, f0, res.image, res.masks, np.asarray(res.solution.u), res.components, feats


def biggan(args):
  """BigGAN-deep-128 at random weights (benchmarks.models), solved with Adam and the max composition."""
  from benchmarks import models
  from configs import default

  p = models.biggan_problem(
    channel_width=args.channel_width, layer="layer6", n=args.n, with_torch=False, baseline=args.baseline_codes
  )
  config = default.get_config()
  config.metrics.decode_batch = 16
  sol = solver_lib.solve_minimal_features(
    p.decode,
    p.f,
    p.f0,
    p.target,
    p.masks,
    lam=500.0,
    optimizer="adam",
    learning_rate=1e-2,
    schedule="cosine",
    steps=args.steps,
    tau=0.1,
    composition="max",
    chunk_size=args.n + 1,
  )
  u = np.asarray(sol.u)
  comps = np.asarray(components_lib.or_components(jnp.asarray(u)))
  feats = encode_many(p.generator, p.layer, args.pca_codes, 25, 10_000, classes=p.class_id)
  desc = (
    f"BigGAN-deep-128 at RANDOM weights (channel width {args.channel_width}) at layer6 {tuple(p.f.shape)}, "
    f"class {p.class_id}, {args.n} central cells of a 6×6 grid — a plumbing check, not an explanation"
  )
  return config, desc, p.decode, p.f, p.f0, p.target, p.masks, u, comps, feats


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", choices=("face", "biggan"), default="face")
  ap.add_argument("--pca-codes", type=int, default=500, help="codes whose features give the principal directions")
  ap.add_argument("--num-directions", type=int, default=0, help="0: as many as channels")
  ap.add_argument("--no-denoised", action="store_true", help="skip the denoised row")
  ap.add_argument("--checkpoints", default="", help="face: keep the solver's chunk checkpoints here (resumable)")
  ap.add_argument("--channel-width", type=int, default=32, help="biggan only")
  ap.add_argument("--n", type=int, default=4, help="biggan only: players")
  ap.add_argument("--steps", type=int, default=100, help="biggan only: Adam steps")
  ap.add_argument("--baseline-codes", type=int, default=64, help="biggan only: codes averaged into f0")
  ap.add_argument("--out", default="")
  args = ap.parse_args()
  t0 = time.perf_counter()
  config, desc, decode, f, f0, image, masks, u, comps, feats = face(args) if args.model == "face" else biggan(args)
  solved = time.perf_counter() - t0
  denoised = None
  if not args.no_denoised:
    d = config.denoise
    out = denoise_lib.denoise(jnp.asarray(u), tau_q=d.tau_q_relative * float(np.abs(f - f0).max()), steps=d.steps)
    denoised = np.asarray(out.components)
  decs = baselines_lib.decompositions(
    f, f0, comps, masks, feats, num_directions=args.num_directions or None, denoised=denoised
  )
  settings = evaluation.MetricOptions.from_config(config).score_settings()
  rows = []
  for dec in decs:
    rows.append(baselines_lib.score(dec, decode, f, image, masks, u, **settings)[0])
    print(f"{dec.name}: {rows[-1].seconds:.1f} s", flush=True)
  table = baselines_lib.markdown_table(rows)
  print(
    f"\n{machine()}\n{desc}\nK = {settings['k']}, field threshold {baselines_lib.FIELD_THRESHOLD}, consistency "
    f"{settings['consistency_top']} strongest × {settings['consistency_contexts']} contexts, ε = "
    f"{settings['sparsity_eps']}; minimal features u of the raw solve are every method's additivity target; "
    f"solve {solved:.0f} s, total {time.perf_counter() - t0:.0f} s\n"
  )
  print(table)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
      json.dump(
        {
          "args": vars(args),
          "machine": machine(),
          "description": desc,
          "settings": settings,
          "rows": [r.to_dict() for r in rows],
          "table": table,
        },
        fh,
        indent=1,
      )


if __name__ == "__main__":
  main()
