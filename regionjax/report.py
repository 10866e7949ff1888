"""Metrics, figures, ``components.npz``, ``metrics.json`` and ``report.html``.

One target image: everything is written to the workdir. Batch mode
(``target.num_images > 1``): each image gets ``images/NNN/`` with its own
report, and the workdir holds an index ``report.html`` with mean ± std of every
metric and the transferability of action fields over all same-class pairs.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import time

import jax
import jax.numpy as jnp
import jinja2
import markupsafe
import numpy as np

from regionjax import components as comp_lib
from regionjax import denoise as denoise_lib
from regionjax import figures
from regionjax import io as io_lib
from regionjax import metrics as M
from regionjax import progress
from regionjax import subsets as subsets_lib

STRIP_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def _uri(png: bytes) -> str:
  return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -------------------------------------------------------------------- metrics
def compute_metrics(config, res) -> tuple[dict, dict]:
  """All faithfulness metrics of one image (docs/method.md §Metrics): (JSON-able, raw curves)."""
  mc = config.metrics
  comps, u, decode, masks = res.components, np.asarray(res.solution.u), res.decode, res.masks
  n = masks.shape[0]
  bs = mc.decode_batch
  raw = {}
  steps = [
      ("completeness", lambda: M.completeness(comps, res.f, u=u, decode=decode, image=res.image, masks=masks)),
      ("additivity", lambda: M.additivity(comps, u, k=mc.top_k)),
      ("sparsity", lambda: M.sparsity(comps, eps=mc.sparsity_eps)),
      ("boundedness", lambda: M.boundedness(decode, res.f, comps, masks, batch_size=bs)),
      ("boundary_breach", lambda: M.boundary_breach(decode, comps, masks, batch_size=bs)),
      ("consistency", lambda: M.consistency(decode, comps, num_contexts=mc.consistency_contexts,
                                            top=mc.consistency_top, seed=config.seed, batch_size=bs)),
      ("consistency_paper", lambda: M.consistency(decode, comps, num_contexts=mc.consistency_contexts,
                                                  top=mc.consistency_top, seed=config.seed, batch_size=bs,
                                                  paper_literal=True)),
      ("controllable", lambda: M.controllable_reconstruction(
          decode, comps, res.image, masks, [1 << i for i in range(n)] + [subsets_lib.full_set(n)], batch_size=bs)),
      ("sequential", lambda: M.sequential_reconstruction(decode, comps, res.image, masks, seed=config.seed,
                                                         batch_size=bs)),
      ("salient", lambda: M.salient_set(decode, comps, masks, fraction=mc.salient_fraction,
                                        rel_tol=mc.salient_rel_tol, image=res.image, batch_size=bs)),
  ]
  steps.append(("headline", lambda: M.headline(decode, res.f, comps, u, masks, k=mc.top_k, batch_size=bs)))
  # Algorithm 2 on the salient set (v1 App. E/H): random multi-patch targets, so p = 1 is a real test
  steps.append(("salient_algorithm2", lambda: _salient_algorithm2(config, res, raw["salient"])))
  if config.denoise.enabled:
    steps.append(("denoise", lambda: _denoise(config, res)))
  bar = progress.bar(total=len(steps), desc=f"metrics image {res.index}", unit="metric")
  for name, fn in steps:
    bar.set_postfix(metric=name)
    raw[name] = fn()
    bar.update(1)
  bar.close()
  err = np.asarray(res.solution.error)
  unmet = np.nonzero(res.solution.unmet)[0]
  ranked = comp_lib.rank(comps)
  norms = comp_lib.component_norms(comps)
  scalars = {
      "completeness": {k: raw["completeness"][k] for k in raw["completeness"] if np.ndim(raw["completeness"][k]) == 0},
      "additivity": {"k": raw["additivity"]["k"], "error_mean": raw["additivity"]["error_mean"],
                     "error_max": raw["additivity"]["error_max"],
                     "error_all_components": _additivity_all(comps, u)},
      "sparsity": {"near_zero_share": raw["sparsity"]["near_zero_share"], "eps": raw["sparsity"]["eps"],
                   "shares": dict(zip([str(t) for t in raw["sparsity"]["thresholds"]], raw["sparsity"]["shares"])),
                   "num_elements": raw["sparsity"]["num_elements"]},
      "boundedness": {k: raw["boundedness"][k] for k in ("rho_mean", "rho_min", "rho_max", "rho_image_mean")},
      "boundedness_top10pct": _top_rho(raw["boundedness"], max(1, math.ceil(0.1 * ranked.size))),
      "boundary_breach": {k: raw["boundary_breach"][k] for k in ("breach_max", "breach_mean", "others_final_mean")},
      "consistency": {k: raw["consistency"][k] for k in ("inconsistency_mean", "inconsistency_max")},
      "consistency_paper": {k: raw["consistency_paper"][k] for k in ("inconsistency_mean", "inconsistency_max")},
      "salient_algorithm2": raw["salient_algorithm2"]["scalars"],
      "controllable": {k: raw["controllable"][k] for k in ("initial_rmse_mean", "final_rmse_mean")},
      "sequential": {k: raw["sequential"][k] for k in ("new_rmse_mean", "final_rmse")},
      "salient": {"num_salient": raw["salient"]["num_salient"], "fraction_salient": raw["salient"]["fraction_salient"],
                  "num_components": raw["salient"]["num_components"],
                  "num_top_fraction": raw["salient"]["num_top_fraction"], "fraction": raw["salient"]["fraction"],
                  "rmse_salient_only": raw["salient"].get("rmse_salient_only"),
                  "rmse_top_fraction_only": raw["salient"].get("rmse_top_fraction_only")},
      "solver": {"subsets": int(err.size), "met_tau": int(err.size - unmet.size), "tau": float(res.solution.tau),
                 "unmet": [subsets_lib.format_subset(s) for s in unmet[:50]], "num_unmet": int(unmet.size),
                 "max_error": float(err.max()), "median_error": float(np.median(err[1:])),
                 "seconds": float(res.seconds), "composition": config.solver.composition,
                 "optimizer": config.solver.optimizer,
                 "problems_solved": int(np.sum(res.solution.solved)) if res.solution.solved is not None else None,
                 "lam_final_max": float(np.nanmax(res.solution.lam)) if res.solution.lam is not None else None,
                 "continued": int(np.sum(res.solution.lam > config.solver.lam)) if res.solution.lam is not None
                 else 0},
      "alpha": M.alpha_movement(res.solution.alpha),
      "faithfulness": _faithfulness(raw["headline"], err.size - unmet.size, err.size),
      "top_components": [{"field": subsets_lib.format_subset(s), "players": subsets_lib.to_indices(s),
                          "norm": float(norms[s])} for s in ranked[:20]],
  }
  if "denoise" in raw:
    d = raw["denoise"]
    scalars["denoise"] = {side: {k: d[side][k] for k in ("l1", "near_zero_share", "near_zero_share_common",
                                                         "recon_rmse_mean", "full_rmse") if k in d[side]}
                          for side in ("before", "after")}
    scalars["denoise"]["tau_q"] = float(d["tau_q"])
  return M.summary(scalars), raw


#: Targets of the faithfulness figures on the face model (issue "Faithful explanations…").
TARGETS = {"rho_image_top10": 0.8, "additivity_top30": 0.3, "transferability": M.TRANSFERABILITY_SID}


def _faithfulness(h: dict, met: int, total: int) -> dict:
  """The headline figures of one image, each with its target and whether it is met."""
  return {
      "subsets_meeting_tau": {"value": int(met), "of": int(total), "met": bool(met == total)},
      "rho_image_top10": {"value": h["rho_image_top"], "target": TARGETS["rho_image_top10"],
                          "met": bool(h["rho_image_top"] >= TARGETS["rho_image_top10"]),
                          "players_denominator": h["rho_players_top"], "num_components": h["num_top"]},
      "additivity_top30": {"value": h["additivity_aggregate"], "k": h["k"], "target": TARGETS["additivity_top30"],
                           "met": bool(h["additivity_aggregate"] <= TARGETS["additivity_top30"])},
      "top30_mean_field_size": h["top_k_mean_field_size"],
  }


def _mean_faithfulness(per: list[dict]) -> dict:
  """Batch mode: the headline figures averaged over images (met = the mean meets the target)."""
  rho = float(np.mean([p["rho_image_top10"]["value"] for p in per]))
  add = float(np.mean([p["additivity_top30"]["value"] for p in per]))
  met = int(sum(p["subsets_meeting_tau"]["value"] for p in per))
  total = int(sum(p["subsets_meeting_tau"]["of"] for p in per))
  return {"subsets_meeting_tau": {"value": met, "of": total, "met": met == total},
          "rho_image_top10": {"value": rho, "target": TARGETS["rho_image_top10"],
                              "met": rho >= TARGETS["rho_image_top10"]},
          "additivity_top30": {"value": add, "k": per[0]["additivity_top30"]["k"],
                               "target": TARGETS["additivity_top30"], "met": add <= TARGETS["additivity_top30"]},
          "top30_mean_field_size": float(np.mean([p["top30_mean_field_size"] for p in per]))}


def random_target_sets(n: int, count: int, seed: int) -> np.ndarray:
  """``count`` distinct random target sets of 2 … n − 1 patches (fewer if n is small)."""
  rng = np.random.default_rng(seed)
  pool = [s for s in range(1, 1 << n) if 2 <= bin(s).count("1") <= max(2, n - 1)]
  if not pool:
    return np.array([subsets_lib.full_set(n)], np.int64)
  return np.sort(rng.choice(pool, size=min(count, len(pool)), replace=False)).astype(np.int64)


def _salient_algorithm2(config, res, salient) -> dict:
  """Controllable and sequential reconstruction and boundary breach with only the salient components kept."""
  comps, masks, bs = res.components, res.masks, config.metrics.decode_batch
  kept = np.asarray(salient["salient_fields"])
  n = masks.shape[0]
  targets = random_target_sets(n, 8, config.seed)
  ctl = M.controllable_reconstruction(res.decode, comps, res.image, masks, targets, kept=kept, batch_size=bs)
  seq = M.sequential_reconstruction(res.decode, comps, res.image, masks, seed=config.seed, kept=kept, batch_size=bs)
  br = M.boundary_breach(res.decode, comps, masks, kept=kept, batch_size=bs)
  return {"raw": {"controllable": ctl, "sequential": seq, "breach": br},
          "scalars": {"num_kept": int(kept.size), "targets": [subsets_lib.format_subset(t) for t in targets],
                      "controllable_initial_rmse_mean": ctl["initial_rmse_mean"],
                      "controllable_final_rmse_mean": ctl["final_rmse_mean"],
                      "sequential_new_rmse_mean": seq["new_rmse_mean"], "sequential_final_rmse": seq["final_rmse"],
                      "breach_max": br["breach_max"], "breach_mean": br["breach_mean"]}}


def _additivity_all(comps, u) -> float:
  """Matching error with all components: 0 up to rounding (OR matching)."""
  return float(M.additivity(comps, u, k=comps.shape[0] - 1)["error_max"])


def _top_rho(b, k) -> dict:
  rho = np.asarray(b["rho"])[:k]
  return {"k": int(rho.size), "mean": float(rho.mean()) if rho.size else 1.0, "min": float(rho.min()) if rho.size else 1.0}


def _denoise(config, res) -> dict:
  d = config.denoise
  scale = float(np.abs(res.f - res.f0).max())
  tau_q = d.tau_q_relative * scale
  out = denoise_lib.denoise(jnp.asarray(res.solution.u), tau_q=tau_q, steps=d.steps)
  rep = denoise_lib.denoise_report(res.decode, res.solution.u, out.u, res.image, res.masks,
                                   batch_size=config.metrics.decode_batch)
  rep["tau_q"] = tau_q
  rep["components_after"] = np.asarray(out.components)
  return rep


# -------------------------------------------------------------------- figures
def _solved_history(solution) -> np.ndarray:
  """Objective histories of the optimised subsets (row 0 stays: loss_curves drops it)."""
  h = np.asarray(solution.history)
  if solution.solved is None:
    return h
  keep = np.asarray(solution.solved).copy()
  keep[0] = True
  return h[keep]


def image_figures(config, res, raw, samples_png) -> dict:
  comps = res.components
  n = res.masks.shape[0]
  norms = comp_lib.component_norms(comps)
  ranked = comp_lib.rank(comps)
  top = ranked[:max(1, math.ceil(0.1 * ranked.size))]
  patterns = np.asarray(comp_lib.regional_patterns(res.decode, jnp.asarray(res.f), jnp.asarray(comps), top))
  salient = raw["salient"]["top_fraction_fields"].tolist()
  strip_sets = [1 << i for i in range(min(n, 3))] + [subsets_lib.full_set(n)]
  strips, titles = incremental_strips(res, strip_sets, salient)
  add, sp, br, co, ctl, seq = (raw[k] for k in ("additivity", "sparsity", "boundary_breach", "consistency",
                                                "controllable", "sequential"))
  order = add["order"]
  figs = {
      "target": figures.target_with_grid(res.image, res.cells, res.players, res.baseline_image),
      "loss": figures.loss_curves(_solved_history(res.solution), res.solution.error, res.solution.tau),
      "fields": figures.action_fields(res.image, res.masks, ranked[:16], norms,
                                      l1_norms=np.abs(np.asarray(comps).reshape(comps.shape[0], -1)).sum(-1)),
      "norms": figures.curve(np.arange(1, ranked.size + 1), [np.maximum(norms[ranked], 1e-12)], ["‖Δf_S‖₂"], "rank",
                             "‖Δf_S‖₂", "component strength by rank", logy=True),
      "patterns": figures.patterns(patterns, top.tolist(), res.masks),
      "strips": figures.image_grid(strips, titles, cols=len(STRIP_FRACTIONS), size=1.3,
                                   suptitle="incremental reconstruction (v1 Fig. 4, 7)"),
      "sparsity": figures.curve(sp["curve_rank"], [np.maximum(sp["curve"], 1e-12)], ["|element|"],
                                "rank of element (fraction)", "|element|", "sorted elements of all components (v2 Fig. 3)",
                                logy=True),
      "additivity": figures.curve(np.arange(order.size), [add["u_norms"][order], add["errors"][order] * math.sqrt(res.f.size)],
                                  ["‖u(Ŝ)‖₂", f"‖h_K(Ŝ) − u(Ŝ)‖₂, K={add['k']}"], "Ŝ sorted by ‖u(Ŝ)‖",
                                  "L2 norm", "additivity with the top-K components (v2 Fig. 4)"),
      "boundedness": figures.histogram(raw["boundedness"]["rho"], "ρ_S", "boundedness ratio of every component (v2 Fig. 6)"),
      "curves": figures.curves_panel([
          {"x": br["fractions"], "ys": [br["rmse_patch"].mean(0), br["rmse_others"].mean(0)],
           "labels": ["patch i (excluded)", "other patches"], "xlabel": "fraction p of components excluding i",
           "ylabel": "RMSE vs g(f0)", "title": "boundary breach (v2 Fig. 5)"},
          {"x": ctl["fractions"], "ys": [ctl["rmse_target"][:-1].mean(0), ctl["rmse_others"][:-1].mean(0)],
           "labels": ["target patch", "other patches"], "xlabel": "fraction p of covering components",
           "ylabel": "RMSE vs x", "title": "controllable reconstruction (v1 Fig. 7)"},
          {"x": np.arange(seq["rmse_new"].size), "ys": [seq["rmse_new"], seq["rmse_rest"]],
           "labels": ["patch just added", "patches not yet added"], "xlabel": "patches added",
           "ylabel": "RMSE vs x", "title": "sequential reconstruction (v2 Fig. 11)"},
          {"x": np.arange(co["inconsistency"].size), "ys": [co["inconsistency"]], "labels": ["inconsistency"],
           "xlabel": "component (by strength)", "ylabel": "mean relative change",
           "title": "consistency of regional patterns (v2 Fig. 7)"},
      ]),
  }
  if "denoise" in raw:
    d = raw["denoise"]
    after = M.sparsity(d["components_after"], eps=config.metrics.sparsity_eps)
    figs["denoise"] = figures.curves_panel([{
        "x": after["curve_rank"], "ys": [np.maximum(np.interp(after["curve_rank"], sp["curve_rank"], sp["curve"]), 1e-12),
                                          np.maximum(after["curve"], 1e-12)],
        "labels": ["before", "after"], "xlabel": "rank of element (fraction)", "ylabel": "|element|", "logy": True,
        "title": "sparsity before/after denoising (v1 App. G)"}])
  if samples_png is not None:
    figs["samples"] = samples_png
  return {k: _uri(v) for k, v in figs.items()}


def incremental_strips(res, target_sets, kept) -> tuple[list[np.ndarray], list[str]]:
  """f0 plus the strongest fraction p of kept components meeting Ŝ (v1 Fig. 4, 7)."""
  comps = res.components
  n = res.masks.shape[0]
  norms = comp_lib.component_norms(comps)
  weights, titles = [], []
  for target in target_sets:
    cover = sorted((s for s in kept if s & target), key=lambda s: -norms[s])
    for p in STRIP_FRACTIONS:
      w = np.zeros(1 << n, np.float32)
      w[cover[:int(round(p * len(cover)))]] = 1.0
      weights.append(w)
      name = "N" if target == subsets_lib.full_set(n) else subsets_lib.format_subset(target)
      titles.append(f"Ŝ={name} p={p:g}")
  images = M.decode_combinations(res.decode, comps, np.stack(weights))
  return list(np.asarray(images)), titles


# -------------------------------------------------------------------- outputs
def render(template: str, **ctx) -> str:
  env = jinja2.Environment(loader=jinja2.PackageLoader("regionjax", "templates"),
                           autoescape=jinja2.select_autoescape(["html", "j2"]))
  return env.get_template(template).render(**ctx)


def metric_rows(m: dict) -> list[dict]:
  """The metrics table: our value, the paper's value or claim, one-line meaning."""
  f = lambda x: "—" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))  # noqa: E731
  rows = [
      ("completeness ‖f0+ΣΔf−f‖/‖f−f0‖", f(m["completeness"]["feature_error"]), "0 when u(N) = f (v2 Axiom 1)",
       "how far the components' sum is from f (the L1 term shrinks u(N))"),
      ("transform identity ‖f0+ΣΔf−u(N)‖/‖u(N)−f0‖", f(m["completeness"].get("identity_error")), "0 (Theorem 2)",
       "the OR transform is exact"),
      ("image RMSE of u(N) on the players", f(m["completeness"].get("image_rmse_players")), "< τ",
       "the full minimal feature regenerates the chosen patches"),
      (f"additivity error, top {m['additivity']['k']} (mean / max)",
       f"{f(m['additivity']['error_mean'])} / {f(m['additivity']['error_max'])}", "small (v2 Fig. 4, top-30 of 512)",
       "‖h_K(Ŝ)−u(Ŝ)‖/√D: a few components rebuild every minimal feature"),
      ("additivity error, all components", f(m["additivity"]["error_all_components"]), "0 (OR matching)",
       "linear additivity holds exactly with every component"),
      ("boundedness ρ over the whole image, top 10% (paper's definition)",
       f(m["faithfulness"]["rho_image_top10"]["value"]), "close to 1 (v2 §3.2.1, Fig. 6)",
       "share of a pattern's energy inside its action field, the entire image as denominator"),
      (f"additivity, aggregate over all Ŝ, top {m['faithfulness']['additivity_top30']['k']} (paper's figure)",
       f(m["faithfulness"]["additivity_top30"]["value"]), "small (v2 §3.1, Fig. 4)",
       "√(Σ‖h_K(Ŝ)−u(Ŝ)‖² / Σ‖u(Ŝ)−f0‖²): 0 = the top K rebuild every minimal feature"),
      ("boundedness ρ, players' pixels as denominator, top 10% (ours; mean / min)",
       f"{f(m['boundedness_top10pct']['mean'])} / {f(m['boundedness_top10pct']['min'])}", "close to 1 (v2 Fig. 6)",
       "share of a pattern's energy inside its action field"),
      ("boundedness ρ, all components (mean)", f(m["boundedness"]["rho_mean"]), "close to 1 (v2 Fig. 6)", ""),
      ("boundary breach: RMSE of excluded patch (max / mean)",
       f"{f(m['boundary_breach']['breach_max'])} / {f(m['boundary_breach']['breach_mean'])}", "≈ 0 (v2 Fig. 5)",
       "components that exclude a patch leave it as in g(f0)"),
      ("… while other patches change (RMSE at p = 1)", f(m["boundary_breach"]["others_final_mean"]), "grows (v2 Fig. 5)", ""),
      ("inconsistency of patterns, Ω_T = all components meeting T (paper's definition; mean / max)",
       f"{f(m['consistency_paper']['inconsistency_mean'])} / {f(m['consistency_paper']['inconsistency_max'])}",
       "small (v2 §3.3, Fig. 7)", "a component paints the same pattern whatever else is painted"),
      ("inconsistency, Ω_T without components meeting S (ours; mean / max)",
       f"{f(m['consistency']['inconsistency_mean'])} / {f(m['consistency']['inconsistency_max'])}",
       "small (v2 Fig. 7)", "a component paints the same pattern whatever else is painted"),
      ("controllable reconstruction RMSE (p = 0 → 1)",
       f"{f(m['controllable']['initial_rmse_mean'])} → {f(m['controllable']['final_rmse_mean'])}",
       "decreases to ≈ 0 (v1 Fig. 7)", "covering components regenerate their patch"),
      ("sequential reconstruction: RMSE of the patch just added", f(m["sequential"]["new_rmse_mean"]),
       "small (v2 Fig. 11)", "patches can be regenerated one by one"),
      ("sparsity: share of elements < eps·max", f(m["sparsity"]["near_zero_share"]), "most elements ≈ 0 (v2 Fig. 3)",
       f"eps = {m['sparsity']['eps']}"),
      ("salient components (removal criterion / top 60%)",
       f"{m['salient']['num_salient']} / {m['salient']['num_top_fraction']} of {m['salient']['num_components']}",
       "top 60% (v1 App. H)", "components needed before the image falls back to the baseline"),
      ("subsets meeting τ", f"{m['solver']['met_tau']} / {m['solver']['subsets']}", "all", "solver convergence"),
      ("Algorithm 2 with the salient components only: controllable RMSE on random multi-patch Ŝ (p = 0 → 1)",
       f"{f(m['salient_algorithm2']['controllable_initial_rmse_mean'])} → "
       f"{f(m['salient_algorithm2']['controllable_final_rmse_mean'])}", "decreases to ≈ 0 (v1 App. E, H)",
       f"{m['salient_algorithm2']['num_kept']} salient components; Ŝ = {', '.join(m['salient_algorithm2']['targets'])}"),
      ("… sequential: RMSE of the patch just added / breach max",
       f"{f(m['salient_algorithm2']['sequential_new_rmse_mean'])} / {f(m['salient_algorithm2']['breach_max'])}",
       "small / ≈ 0 (v2 Fig. 5, 11)", "same, salient components only"),
  ]
  if "denoise" in m:
    d = m["denoise"]
    rows.append(("denoising: Σ‖I_or‖₁ before → after", f"{f(d['before']['l1'])} → {f(d['after']['l1'])}",
                 "lower (v1 App. G)", f"τ_q = {d['tau_q']:.3g}; reconstruction RMSE "
                 f"{f(d['before']['recon_rmse_mean'])} → {f(d['after']['recon_rmse_mean'])}"))
  return [dict(zip(("metric", "ours", "paper", "meaning"), r)) for r in rows]


def interactive_view(config, res):
  """The clickable view of ``regionjax.interactive`` as markup for the template, or None when
  ``report.interactive`` is off (configs without a ``report`` block keep the static report)."""
  r = config.get("report")
  if r is None or not r.interactive:
    return None
  from regionjax import interactive

  frag = interactive.fragment(res, thumb_size=r.thumbnail_size, fmt=r.thumbnail_format,
                              batch_size=config.metrics.decode_batch, names=getattr(res, "names", None))
  return markupsafe.Markup(frag)


def comparison_view(config, results, reports):
  """Batch index: one action field across the images (``regionjax.interactive``), or None."""
  r = config.get("report")
  if r is None or not r.interactive:
    return None
  from regionjax import interactive

  data = interactive.build_comparison(results, reports, thumb_size=r.thumbnail_size, fmt=r.thumbnail_format,
                                      batch_size=config.metrics.decode_batch)
  return None if data is None else markupsafe.Markup(interactive.render_comparison(data))


def write_image(config, res, outdir: str, samples_png, header: dict) -> dict:
  """components.npz, metrics.json and report.html of one image in ``outdir``."""
  os.makedirs(outdir, exist_ok=True)
  metrics, raw = compute_metrics(config, res)
  figs = image_figures(config, res, raw, samples_png)
  names = getattr(res, "names", None)
  extra = {}
  if names:  # named regions (patches.method = 'regions'): carried into metrics.json and components.npz
    for c in metrics["top_components"]:
      c["names"] = [names[i] for i in c["players"]]
    extra = {"player_names": np.asarray(names)}
  io_lib.atomic_savez(os.path.join(outdir, "components.npz"), u=np.asarray(res.solution.u),
                      alpha=np.asarray(res.solution.alpha), components=res.components, patches=res.players,
                      masks=res.masks, f=res.f, f0=res.f0, image=res.image, baseline_image=res.baseline_image,
                      error=np.asarray(res.solution.error), history=np.asarray(res.solution.history), **extra)
  summary = dict(header, image=res.index, class_id=res.class_id, n=int(res.masks.shape[0]),
                 players=res.players.tolist(), feature_shape=list(res.f.shape))
  if names:
    summary["player_names"] = list(names)
  metrics = {"summary": summary, **metrics}
  io_lib.write_json(os.path.join(outdir, "metrics.json"), metrics)
  html = render("report.html.j2", config=config, metrics=metrics, figs=figs, summary=summary,
                rows=metric_rows(metrics), reference=M.PAPER_REFERENCE, interactive=interactive_view(config, res))
  io_lib.atomic_write_text(os.path.join(outdir, "report.html"), html)
  return metrics


def _samples(config, gen) -> bytes | None:
  num = 16
  nc = gen.num_classes
  codes = gen.sample_codes(jax.random.PRNGKey(config.seed + 7), num, classes=np.arange(num) % nc if nc else None)
  return figures.image_grid(np.asarray(gen.generate(codes)), cols=8, suptitle="samples from random codes")


def _flatten(d, prefix=""):
  for k, v in d.items():
    if isinstance(v, dict):
      yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
      yield f"{prefix}{k}", float(v)


def aggregate(per_image: list[dict]) -> dict:
  """mean ± std over images of every scalar metric."""
  keys = {}
  for m in per_image:
    for k, v in _flatten({k: v for k, v in m.items() if k not in ("summary", "top_components")}):
      keys.setdefault(k, []).append(v)
  return {k: {"mean": float(np.mean(v)), "std": float(np.std(v)), "count": len(v)} for k, v in sorted(keys.items())}


def transfer_pairs(results, k: int) -> dict:
  """Transferability (v2 §3.4) over all pairs of same-class images."""
  pairs = []
  for a, b in itertools.combinations(results, 2):
    if a.class_id == b.class_id and np.array_equal(a.players, b.players):
      t = M.transferability(a.components, b.components, k)
      pairs.append({"a": a.index, "b": b.index, "class_id": a.class_id, "ratio": t["ratio"], "k": t["k"],
                    "chance_size_matched": t["chance_size_matched"], "chance_uniform": t["chance_uniform"]})
  ratios = [p["ratio"] for p in pairs]
  chance = [p["chance_size_matched"] for p in pairs]
  mean = float(np.mean(ratios)) if ratios else None
  out = {"pairs": pairs, "k": k, "mean": mean, "std": float(np.std(ratios)) if ratios else None,
         "chance_size_matched_mean": float(np.mean(chance)) if chance else None,
         "chance_uniform": pairs[0]["chance_uniform"] if pairs else None,
         "paper_nvae": M.TRANSFERABILITY_NVAE, "paper_sid": M.TRANSFERABILITY_SID,
         "target": TARGETS["transferability"]}
  if ratios:
    # target: the paper's SiD figure and twice the chance of two random top-K lists; the stricter,
    # size-matched chance is shown beside it with κ = (ratio − chance) / (1 − chance)
    out["met"] = bool(mean >= TARGETS["transferability"] and mean >= 2 * out["chance_uniform"])
    c = out["chance_size_matched_mean"]
    out["kappa_size_matched"] = float((mean - c) / (1 - c)) if c < 1 else None
  return out


def write_outputs(config, gen, results, workdir: str, elapsed: float) -> dict:
  """Per-image outputs (and the batch index); report.html is written last."""
  samples_png = _samples(config, gen)
  header = {"model": config.model.name, "layer": config.model.layer, "seconds_total": float(elapsed),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
  if len(results) == 1:
    return write_image(config, results[0], workdir, samples_png, header)
  per_image = []
  for res in results:
    per_image.append(write_image(config, res, os.path.join(workdir, "images", f"{res.index:03d}"), samples_png,
                                 header))
  transfer = transfer_pairs(results, config.metrics.transfer_k)
  agg = aggregate(per_image)
  first = per_image[0]["summary"]
  summary = dict(header, num_images=len(results), n=first["n"], players=first["players"],
                 feature_shape=first["feature_shape"])
  metrics = {"summary": summary, "aggregate": agg, "transferability": transfer,
             "per_image": [{"image": m["summary"]["image"], "class_id": m["summary"]["class_id"],
                            "report": f"images/{m['summary']['image']:03d}/report.html",
                            **{k: m[k] for k in m if k not in ("summary",)}} for m in per_image],
             # headline numbers for the summary line: means over images
             "solver": {"met_tau": int(sum(m["solver"]["met_tau"] for m in per_image)),
                        "subsets": int(sum(m["solver"]["subsets"] for m in per_image)),
                        "median_error": float(np.median([m["solver"]["median_error"] for m in per_image]))},
             "completeness": {"feature_error": agg["completeness.feature_error"]["mean"]},
             "additivity": {"k": per_image[0]["additivity"]["k"], "error_mean": agg["additivity.error_mean"]["mean"]},
             "faithfulness": _mean_faithfulness([m["faithfulness"] for m in per_image]),
             "top_components": per_image[0]["top_components"]}
  io_lib.atomic_savez(os.path.join(workdir, "components.npz"),
                      u=np.stack([np.asarray(r.solution.u) for r in results]),
                      components=np.stack([r.components for r in results]),
                      patches=np.stack([r.players for r in results]), f=np.stack([r.f for r in results]),
                      image=np.stack([r.image for r in results]), f0=results[0].f0)
  io_lib.write_json(os.path.join(workdir, "metrics.json"), M.summary(metrics))
  thumbs = [_uri(figures.target_with_grid(r.image, r.cells, r.players)) for r in results]
  html = render("index.html.j2", config=config, summary=summary, aggregate=agg, transfer=transfer,
                per_image=metrics["per_image"], thumbs=thumbs, samples=_uri(samples_png) if samples_png else None,
                compare=comparison_view(config, results, [p["report"] for p in metrics["per_image"]]))
  io_lib.atomic_write_text(os.path.join(workdir, "report.html"), html)
  return M.summary(metrics)


def _faithfulness_lines(metrics: dict) -> list[str]:
  """The headline figures against their targets, said plainly (means over images in batch mode)."""
  mark = lambda ok: "met" if ok else "NOT met"  # noqa: E731
  out = []
  f = metrics.get("faithfulness")
  if f:
    r, a = f["rho_image_top10"], f["additivity_top30"]
    out.append(f"  whole-image ρ, top 10%: {r['value']:.3f} (target ≥ {r['target']}: {mark(r['met'])})   "
               f"additivity top-{a['k']}: {a['value']:.3f} (target ≤ {a['target']}: {mark(a['met'])})")
  t = metrics.get("transferability")
  if t and t.get("mean") is not None:
    out.append(f"  transferability top-{t['k']}: {t['mean']:.3f} (chance: uniform {t['chance_uniform']:.3f}, "
               f"same sizes {t['chance_size_matched_mean']:.3f}; target ≥ {t['target']}: {mark(t['met'])})")
  return out


def summary_text(metrics: dict, report_path: str, reused: bool) -> str:
  s, solver = metrics["summary"], metrics["solver"]
  images = f", {s['num_images']} images" if "num_images" in s else ""
  lines = [
      ("Finished earlier; nothing recomputed." if reused else "Done."),
      f"  model {s['model']} at {s['layer']}, feature {tuple(s['feature_shape'])}, n = {s['n']} patches "
      f"{s['players']}{images}",
      f"  subsets meeting τ: {solver['met_tau']}/{solver['subsets']}   median RMSE {solver['median_error']:.4f}",
      f"  completeness ‖ΣΔf+f0−f‖/‖f−f0‖: {metrics['completeness']['feature_error']:.4f}   additivity top-"
      f"{metrics['additivity']['k']}: mean {metrics['additivity']['error_mean']:.4g}",
      "  strongest fields: " + ", ".join(f"{c['field']} ({c['norm']:.3g})" for c in metrics["top_components"][:5]),
      *_faithfulness_lines(metrics),
      f"  wall time {s['seconds_total']:.0f} s (after start-up: generator, baseline, solve, metrics, report)",
      f"  report: {os.path.abspath(report_path)}",
  ]
  return "\n".join(lines)
