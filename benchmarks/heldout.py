"""Faithful by default? The four faithfulness figures of the default settings and the confining variants, on the
face model, the TUNING generator and the HELD-OUT generators (README "Faithful by default?").

    python -m benchmarks.heldout --generators face,digits,scenes,photos --variants default,l1dist-4,outside \
        --out benchmarks/heldout.json

Generators (all at their default tap, on the 9 central cells of a 6×6 grid, the default players; two images,
``sample_codes(PRNGKey(0), 2)``, class 0 where the model has classes; ``f0`` = mean feature over 1000 codes):

* ``face``: the face DCGAN of configs/default.py at layer3 — the model the defaults were chosen on;
* ``digits``: regionjax.ports.tiny ``digits`` at block2 — the TUNING generator (settings may be chosen on it);
* ``scenes``: regionjax.ports.embedded, the conditional BigGAN-deep on procedural scenes, at its recommended
  layer2 — HELD OUT;
* ``photos``: regionjax.ports.tiny ``photos`` (residual bilinear decoder on crops of scikit-image's photographs)
  at block2 — HELD OUT.

Per image: subsets meeting τ, ρ of the strongest 10 % of components with the whole image as denominator
(v2 §3.2.1) and with the players' pixels as denominator (their ratio is the spill onto the cells outside the
players), additivity with the top K (K = 30 as the metrics' default); per pair: transferability of the top-30
fields with its size-matched chance and κ = (t − chance)/(1 − chance). The figures are those of
``rj.evaluate`` (regionjax.evaluation): the same functions, ``metrics.headline`` and ``evaluation.transfer_pairs``,
without the metrics the table does not show. Targets: evaluation.TARGETS.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import regionjax as rj
from benchmarks.common import machine
from regionjax import evaluation as evaluation_lib
from regionjax import explainer as explainer_lib
from regionjax import metrics as metrics_lib

#: name → the fields of the default options it changes (regionjax.explainer.default_options).
VARIANTS = {
  "default": {},
  "l1dist-4": {"l1_distance_weight": 4.0},
  "l1dist-8": {"l1_distance_weight": 8.0},
  "l1dist-16": {"l1_distance_weight": 16.0},
  "l1dist-64": {"l1_distance_weight": 64.0},
  "outside": {"keep_outside": True},
  "l1dist-4+outside": {"l1_distance_weight": 4.0, "keep_outside": True},
  "l1dist-16+outside": {"l1_distance_weight": 16.0, "keep_outside": True},
}
#: name → (role, loader, tap).
ROLES = {"face": "tuned on", "digits": "TUNING", "scenes": "HELD OUT", "photos": "HELD OUT"}


def load(name: str):
  """``(generator, layer, class ids or None)``."""
  if name == "face":
    from regionjax.ports import dcgan

    return dcgan.load(), "layer3", None
  if name == "scenes":
    from regionjax.ports import embedded

    return embedded.load(), embedded.DEFAULT_LAYER, np.zeros(2, np.int32)
  from regionjax.ports import tiny

  return tiny.load(name), tiny.DEFAULT_LAYER, None


def run(name: str, variants: list[str], images: int = 2, k: int = 30, layer: str | None = None) -> list[dict]:
  gen, default_layer, classes = load(name)
  layer = layer or default_layer
  extra = {} if classes is None else {"classes": classes[:images]}
  codes = gen.sample_codes(jax.random.PRNGKey(0), images, **extra)
  f0 = explainer_lib.baseline(gen, layer, num_codes=1000, seed=1, show_progress=False)
  players = rj.Players.center(6, 6, 9)
  rows = []
  for v in variants:
    options = explainer_lib.default_options().replace(**VARIANTS[v])
    t0 = time.perf_counter()
    exp = rj.explain(gen, codes, layer=layer, players=players, options=options, f0=f0, show_progress=False)
    seconds = time.perf_counter() - t0
    bound = [explainer_lib.bind(exp, i, gen) for i in range(len(exp))]
    per = []
    for r in bound:
      h = metrics_lib.headline(r.decode, r.f, r.components, np.asarray(r.solution.u), r.masks, k=k, batch_size=64)
      unmet = np.asarray(r.solution.unmet)
      per.append(
        {
          "met_tau": int((~unmet).sum()),
          "subsets": int(unmet.size),
          "rho_image_top10": h["rho_image_top"],
          "rho_players_top10": h["rho_players_top"],
          "additivity_topk": h["additivity_aggregate"],
          "k": h["k"],
        }
      )
    t = evaluation_lib.transfer_pairs(bound, k) if len(bound) > 1 else {}
    row = {
      "generator": name,
      "role": ROLES[name],
      "layer": layer,
      "variant": v,
      "options": VARIANTS[v],
      "images": per,
      "transferability": t.get("mean"),
      "chance_size_matched": t.get("chance_size_matched_mean"),
      "kappa": t.get("kappa_size_matched"),
      "seconds": seconds,
    }
    row["missed"] = missed(row)
    rows.append(row)
    print(format_row(row), flush=True)
  return rows


def missed(row: dict) -> list[str]:
  """The targets (evaluation.TARGETS, on every image) this row misses."""
  T, out = evaluation_lib.TARGETS, []
  if any(p["met_tau"] < p["subsets"] for p in row["images"]):
    out.append("τ")
  if any(p["rho_image_top10"] < T["rho_image_top10"] for p in row["images"]):
    out.append("ρ")
  if any(p["additivity_topk"] > T["additivity_top30"] for p in row["images"]):
    out.append("additivity")
  t, kappa = row["transferability"], row["kappa"]
  if t is not None and (t < T["transferability"] or kappa is None or kappa < T["transferability_kappa"]):
    out.append("transferability")
  return out


def _pair(values, fmt="{:.2f}") -> str:
  return " / ".join(fmt.format(v) for v in values)


HEADER = (
  "| generator | role | variant | subsets meeting τ | ρ whole image, top 10 % | ρ players only | "
  "additivity, top 30 | transferability (chance, κ) | missed | solve s |\n|---|---|---|---|---|---|---|---|---|---|"
)


def format_row(r: dict) -> str:
  im = r["images"]
  t = "—" if r["transferability"] is None else f"{r['transferability']:.2f} ({r['chance_size_matched']:.2f}, "
  if r["transferability"] is not None:
    t += "—)" if r["kappa"] is None else f"{r['kappa']:.2f})"
  return (
    f"| {r['generator']} ({r['layer']}) | {r['role']} | {r['variant']} | "
    f"{_pair([p['met_tau'] for p in im], '{}')} of {im[0]['subsets']} | {_pair([p['rho_image_top10'] for p in im])} | "
    f"{_pair([p['rho_players_top10'] for p in im])} | {_pair([p['additivity_topk'] for p in im], '{:.3f}')} | {t} | "
    f"{', '.join(r['missed']) or 'none'} | {r['seconds']:.0f} |"
  )


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--generators", default="face,digits,scenes,photos")
  parser.add_argument("--variants", default="default,l1dist-4,outside")
  parser.add_argument("--images", type=int, default=2)
  parser.add_argument("--layer", default="", help="another tap than each generator's default, e.g. digits=block3")
  parser.add_argument("--out", default="")
  a = parser.parse_args(argv)
  variants = a.variants.split(",")
  unknown = [v for v in variants if v not in VARIANTS] + [g for g in a.generators.split(",") if g not in ROLES]
  if unknown:
    raise SystemExit(
      f"error: unknown variant or generator {unknown}; variants {list(VARIANTS)}, generators {list(ROLES)}"
    )
  print(machine())
  print(HEADER, flush=True)
  taps = dict(item.split("=", 1) for item in a.layer.split(",") if item)
  rows = []
  for g in a.generators.split(","):
    rows += run(g, variants, a.images, layer=taps.get(g))
  if a.out:
    with open(a.out, "w") as fh:
      json.dump({"machine": machine(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
  main()
