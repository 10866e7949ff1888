"""Variants of the solver × the four faithfulness figures, on the real face DCGAN.

    python -m benchmarks.faithfulness --variants max-gd,max-adam,independent-adam --out benchmarks/faithfulness.json

Two face images (target seeds 0 and 1), the same 9 central cells of a 6×6
grid, tap layer2 (16×16×128), f0 = mean feature over 1000 codes. For each
variant: subsets meeting τ, ρ over the whole image (mean of the top 10% of
components, v2 §3.2.1), additivity with the top-30 (aggregate relative error,
v2 §3.1), transferability of the top-30 fields between the two faces with
its size-matched chance level (v2 §3.4), mean field size of the top 30, α's
movement, and the wall time of the solve. With both 'independent-*' and
'max-*' variants, the L1 ‖α_S ⊙ Δf‖₁ of each composed subset is compared
with the independently solved one (ratio by |S|).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import machine
from regionjax.ports import dcgan
from regionjax import components as components_lib
from regionjax import denoise as denoise_lib
from regionjax import metrics as metrics_lib
from regionjax import patches as patches_lib
from regionjax import pipeline
from regionjax import runsteps
from regionjax import solver as solver_lib

#: name → (solver options, denoise after the solve)
VARIANTS = {
  "independent-adam": (dict(composition="independent", optimizer="adam", learning_rate=1e-2, schedule="cosine"), False),
  "independent-adam-denoised": (
    dict(composition="independent", optimizer="adam", learning_rate=1e-2, schedule="cosine"),
    True,
  ),
  "independent-gd": (dict(composition="independent", optimizer="gd", learning_rate=1e-3, schedule="constant"), False),
  "max-adam": (dict(composition="max", optimizer="adam", learning_rate=1e-2, schedule="cosine"), False),
  "max-gd": (dict(composition="max", optimizer="gd", learning_rate=1e-3, schedule="constant"), False),
  "max-adam-denoised": (dict(composition="max", optimizer="adam", learning_rate=1e-2, schedule="cosine"), True),
  "max-adam-refined": (
    dict(composition="max", optimizer="adam", learning_rate=1e-2, schedule="cosine", refine_steps=20),
    False,
  ),
}


def setup(args):
  """The face DCGAN (default) or the embedded scenes BigGAN-deep (``--model scenes``, class 0, its config's players)."""
  if args.model == "scenes":
    from configs import scenes
    from regionjax.ports import embedded

    gen, layer = embedded.load(), args.layer or "layer2"
    f0 = pipeline.compute_baseline(gen, layer, 1000, 250, jax.random.PRNGKey(1), gen.num_classes)
    codes = gen.sample_codes(jax.random.PRNGKey(0), args.images, classes=np.zeros(args.images, int))
    targets = [pipeline.prepare_target(gen, codes, i, layer, f0) for i in range(args.images)]
    config = scenes.get_config()
    config.patches.n = args.n
    cells = runsteps.grid_cells(config, targets[0].image.shape)
    players = runsteps.choose_players(config, cells, targets)
    return gen, f0, targets, cells[players], players
  gen, layer = dcgan.load(), args.layer or "layer2"
  f0 = pipeline.compute_baseline(gen, layer, 1000, 250, jax.random.PRNGKey(1), None)
  codes = gen.sample_codes(jax.random.PRNGKey(0), args.images)
  targets = [pipeline.prepare_target(gen, codes, i, layer, f0) for i in range(args.images)]
  cells = patches_lib.patch_masks(64, 64, args.grid, args.grid)
  players = np.sort(patches_lib.center_cells(args.grid, args.grid)[: args.n])
  return gen, f0, targets, cells[players], players


def run_variant(name, args, f0, targets, masks):
  opts, denoised = VARIANTS[name]
  out = []
  for t in targets:
    t0 = time.perf_counter()
    res = solver_lib.solve_minimal_features(
      t.decode,
      t.f,
      f0,
      t.image,
      masks,
      lam=args.lam,
      steps=args.steps,
      tau=args.tau,
      chunk_size=args.chunk_size,
      **opts,
    )
    jax.block_until_ready(res.u)
    seconds = time.perf_counter() - t0
    u = res.u
    comps = components_lib.or_components(u)
    if denoised:
      d = denoise_lib.denoise(u, tau_q=0.02 * float(np.abs(t.f - f0).max()), steps=300)
      u, comps = d.u, d.components
    h = metrics_lib.headline(t.decode, jnp.asarray(t.f), comps, u, masks, k=30, batch_size=64)
    l1 = np.abs(np.asarray(res.alpha).reshape(res.alpha.shape[0], -1) * (t.f - f0).reshape(1, -1)).sum(-1)
    out.append(
      {
        "seconds": seconds,
        "met_tau": int((~res.unmet).sum()),
        "subsets": int(res.unmet.size),
        "comps": np.asarray(comps),
        "l1": l1,
        "movement": metrics_lib.alpha_movement(res.alpha),
        **h,
      }
    )
  return out


def summarise(name, per, n):
  t = metrics_lib.transferability(per[0]["comps"], per[1]["comps"], 30) if len(per) > 1 else None
  row = {
    "variant": name,
    "met_tau": [p["met_tau"] for p in per],
    "subsets": per[0]["subsets"],
    "rho_image_top10": [p["rho_image_top"] for p in per],
    "additivity_top30": [p["additivity_aggregate"] for p in per],
    "mean_field_size_top30": [p["top_k_mean_field_size"] for p in per],
    "max_one_minus_alpha_N": [p["movement"]["max_one_minus_alpha_full"] for p in per],
    "seconds": [p["seconds"] for p in per],
  }
  if t is not None:
    row.update(
      transferability=t["ratio"], chance_size_matched=t["chance_size_matched"], chance_uniform=t["chance_uniform"]
    )
  return row


def l1_ratio(indep, composed, n):
  """L1 of composed α_S over the independently solved L1, by |S| (median over subsets, both images)."""
  sizes = metrics_lib.field_sizes(np.arange(1 << n))
  out = {}
  for s in range(1, n + 1):
    r = np.concatenate([c["l1"][sizes == s] / np.maximum(i["l1"][sizes == s], 1e-12) for i, c in zip(indep, composed)])
    out[s] = {"median": float(np.median(r)), "max": float(np.max(r))}
  return out


def fmt(x):
  if isinstance(x, list):
    return ", ".join(fmt(v) for v in x)
  return f"{x:.3g}" if isinstance(x, float) else str(x)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--variants", default="max-gd,max-adam,max-adam-denoised,independent-adam")
  ap.add_argument("--images", type=int, default=2)
  ap.add_argument("--n", type=int, default=9)
  ap.add_argument("--model", default="face", choices=("face", "scenes"))
  ap.add_argument("--grid", type=int, default=6, help="face: a grid × grid grid, the n central cells are players")
  ap.add_argument("--layer", default="")
  ap.add_argument("--lam", type=float, default=200.0)
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--tau", type=float, default=0.1)
  ap.add_argument("--chunk-size", type=int, default=64)
  ap.add_argument("--out", default="")
  args = ap.parse_args()
  _, f0, targets, masks, players = setup(args)
  rows, raw = [], {}
  for name in args.variants.split(","):
    raw[name] = run_variant(name, args, f0, targets, masks)
    rows.append(summarise(name, raw[name], args.n))
    print(json.dumps(rows[-1]), flush=True)
  ratios = {}
  for a in raw:
    for b in raw:
      if (
        a.startswith("independent")
        and b.startswith("max")
        and VARIANTS[a][0]["optimizer"] == VARIANTS[b][0]["optimizer"]
      ):
        ratios[f"{b} / {a}"] = l1_ratio(raw[a], raw[b], args.n)
  print(
    f"\n{machine()}\n{args.model} at {args.layer or 'layer2'}, players {players.tolist()}, λ = {args.lam}, "
    f"{args.steps} steps, τ = {args.tau}\n"
  )
  cols = [
    "variant",
    "met_tau",
    "rho_image_top10",
    "additivity_top30",
    "transferability",
    "chance_size_matched",
    "mean_field_size_top30",
    "max_one_minus_alpha_N",
    "seconds",
  ]
  print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
  for r in rows:
    print("| " + " | ".join(fmt(r.get(c, "—")) for c in cols) + " |")
  for k, v in ratios.items():
    print(f"\nL1 ratio {k} by |S|: " + "; ".join(f"{s}: {d['median']:.2f} (max {d['max']:.2f})" for s, d in v.items()))
  if args.out:
    with open(args.out, "w") as fh:
      json.dump(
        {"args": vars(args), "machine": machine(), "players": players.tolist(), "rows": rows, "l1_ratio": ratios},
        fh,
        indent=1,
      )


if __name__ == "__main__":
  main()
