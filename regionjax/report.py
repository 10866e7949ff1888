"""Figures, ``components.npz``, ``metrics.json`` and ``report.html``, drawn from ``regionjax.evaluation``.

One target image: everything is written to the workdir. Batch mode
(``target.num_images > 1``): each image gets ``images/NNN/`` with its own
report, and the workdir holds an index ``report.html`` with mean ± std of every
metric and the transferability of action fields over all same-class pairs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import jinja2
import markupsafe
import numpy as np

from regionjax import components as components_lib
from regionjax import evaluation
from regionjax import figures
from regionjax import io as io_lib
from regionjax import metrics as metrics_lib
from regionjax import progress
from regionjax import results as results_lib
from regionjax import timings


# -------------------------------------------------------------------- figures
def _solved_history(solution) -> np.ndarray:
  """Objective histories of the optimised subsets (row 0 stays: loss_curves drops it)."""
  h = np.asarray(solution.history)
  if solution.solved is None:
    return h
  keep = np.asarray(solution.solved).copy()
  keep[0] = True
  return h[keep]


def image_figures(config, res, ev: evaluation.ImageEvaluation, samples_png) -> dict:
  """Every figure of one image's report, drawn from its evaluation (PNG data URIs)."""
  comps, raw = res.components, ev.raw
  norms = components_lib.component_norms(comps)
  ranked = components_lib.rank(comps)
  top, patterns, strips, titles = ev.top, ev.patterns, ev.strips, ev.strip_titles
  add, sp, br, co, ctl, seq = (
    raw[k] for k in ("additivity", "sparsity", "boundary_breach", "consistency", "controllable", "sequential")
  )
  order = add["order"]
  figs = {
    "target": figures.target_with_grid(res.image, res.cells, res.players, res.baseline_image),
    "loss": figures.loss_curves(_solved_history(res.solution), res.solution.error, res.solution.tau),
    "fields": figures.action_fields(
      res.image, res.masks, ranked[:16], norms, l1_norms=np.abs(np.asarray(comps).reshape(comps.shape[0], -1)).sum(-1)
    ),
    "norms": figures.curve(
      np.arange(1, ranked.size + 1),
      [np.maximum(norms[ranked], 1e-12)],
      ["‖Δf_S‖₂"],
      "rank",
      "‖Δf_S‖₂",
      "component strength by rank",
      logy=True,
    ),
    "patterns": figures.patterns(patterns, top.tolist(), res.masks),
    "strips": figures.image_grid(
      strips,
      titles,
      cols=len(evaluation.STRIP_FRACTIONS),
      size=1.3,
      suptitle="incremental reconstruction (v1 Fig. 4, 7)",
    ),
    "sparsity": figures.curve(
      sp["curve_rank"],
      [np.maximum(sp["curve"], 1e-12)],
      ["|element|"],
      "rank of element (fraction)",
      "|element|",
      "sorted elements of all components (v2 Fig. 3)",
      logy=True,
    ),
    "additivity": figures.curve(
      np.arange(order.size),
      [add["u_norms"][order], add["errors"][order] * math.sqrt(res.f.size)],
      ["‖u(Ŝ)‖₂", f"‖h_K(Ŝ) − u(Ŝ)‖₂, K={add['k']}"],
      "Ŝ sorted by ‖u(Ŝ)‖",
      "L2 norm",
      "additivity with the top-K components (v2 Fig. 4)",
    ),
    "boundedness": figures.histogram(
      raw["boundedness"]["rho"], "ρ_S", "boundedness ratio of every component (v2 Fig. 6)"
    ),
    "curves": figures.curves_panel(
      [
        {
          "x": br["fractions"],
          "ys": [br["rmse_patch"].mean(0), br["rmse_others"].mean(0)],
          "labels": ["patch i (excluded)", "other patches"],
          "xlabel": "fraction p of components excluding i",
          "ylabel": "RMSE vs g(f0)",
          "title": "boundary breach (v2 Fig. 5)",
        },
        {
          "x": ctl["fractions"],
          "ys": [ctl["rmse_target"][:-1].mean(0), ctl["rmse_others"][:-1].mean(0)],
          "labels": ["target patch", "other patches"],
          "xlabel": "fraction p of covering components",
          "ylabel": "RMSE vs x",
          "title": "controllable reconstruction (v1 Fig. 7)",
        },
        {
          "x": np.arange(seq["rmse_new"].size),
          "ys": [seq["rmse_new"], seq["rmse_rest"]],
          "labels": ["patch just added", "patches not yet added"],
          "xlabel": "patches added",
          "ylabel": "RMSE vs x",
          "title": "sequential reconstruction (v2 Fig. 11)",
        },
        {
          "x": np.arange(co["inconsistency"].size),
          "ys": [co["inconsistency"]],
          "labels": ["inconsistency"],
          "xlabel": "component (by strength)",
          "ylabel": "mean relative change",
          "title": "consistency of regional patterns (v2 Fig. 7)",
        },
      ]
    ),
  }
  if "denoise" in raw:
    d = raw["denoise"]
    after = d["sparsity_after"]
    figs["denoise"] = figures.curves_panel(
      [
        {
          "x": after["curve_rank"],
          "ys": [
            np.maximum(np.interp(after["curve_rank"], sp["curve_rank"], sp["curve"]), 1e-12),
            np.maximum(after["curve"], 1e-12),
          ],
          "labels": ["before", "after"],
          "xlabel": "rank of element (fraction)",
          "ylabel": "|element|",
          "logy": True,
          "title": "sparsity before/after denoising (v1 App. G)",
        }
      ]
    )
  if samples_png is not None:
    figs["samples"] = samples_png
  return {k: figures.data_uri(v) for k, v in figs.items()}


# -------------------------------------------------------------------- outputs
def render(template: str, **ctx) -> str:
  env = jinja2.Environment(
    loader=jinja2.PackageLoader("regionjax", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"])
  )
  return env.get_template(template).render(**ctx)


def metric_rows(m: results_lib.ImageMetrics) -> list[dict]:
  """The metrics table: our value, the paper's value or claim, one-line meaning."""
  f = lambda x: "—" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))  # noqa: E731
  rows = [
    (
      "completeness ‖f0+ΣΔf−f‖/‖f−f0‖",
      f(m.completeness.feature_error),
      "0 when u(N) = f (v2 Axiom 1)",
      "how far the components' sum is from f (the L1 term shrinks u(N))",
    ),
    (
      "transform identity ‖f0+ΣΔf−u(N)‖/‖u(N)−f0‖",
      f(m.completeness.identity_error),
      "0 (Theorem 2)",
      "the OR transform is exact",
    ),
    (
      "image RMSE of u(N) on the players",
      f(m.completeness.image_rmse_players),
      "< τ",
      "the full minimal feature regenerates the chosen patches",
    ),
    (
      f"additivity error, top {m.additivity.k} (mean / max)",
      f"{f(m.additivity.error_mean)} / {f(m.additivity.error_max)}",
      "small (v2 Fig. 4, top-30 of 512)",
      "‖h_K(Ŝ)−u(Ŝ)‖/√D: a few components rebuild every minimal feature",
    ),
    (
      "additivity error, all components",
      f(m.additivity.error_all_components),
      "0 (OR matching)",
      "linear additivity holds exactly with every component",
    ),
    (
      "boundedness ρ over the whole image, top 10% (paper's definition)",
      f(m.faithfulness.rho_image_top10.value),
      "close to 1 (v2 §3.2.1, Fig. 6)",
      "share of a pattern's energy inside its action field, the entire image as denominator",
    ),
    (
      f"additivity, aggregate over all Ŝ, top {m.faithfulness.additivity_top30.k} (paper's figure)",
      f(m.faithfulness.additivity_top30.value),
      "small (v2 §3.1, Fig. 4)",
      "√(Σ‖h_K(Ŝ)−u(Ŝ)‖² / Σ‖u(Ŝ)−f0‖²): 0 = the top K rebuild every minimal feature",
    ),
    (
      "boundedness ρ, players' pixels as denominator, top 10% (ours; mean / min)",
      f"{f(m.boundedness_top10pct.mean)} / {f(m.boundedness_top10pct.min)}",
      "close to 1 (v2 Fig. 6)",
      "share of a pattern's energy inside its action field",
    ),
    ("boundedness ρ, all components (mean)", f(m.boundedness.rho_mean), "close to 1 (v2 Fig. 6)", ""),
    (
      "boundary breach: RMSE of excluded patch (max / mean)",
      f"{f(m.boundary_breach.breach_max)} / {f(m.boundary_breach.breach_mean)}",
      "≈ 0 (v2 Fig. 5)",
      "components that exclude a patch leave it as in g(f0)",
    ),
    (
      "… while other patches change (RMSE at p = 1)",
      f(m.boundary_breach.others_final_mean),
      "grows (v2 Fig. 5)",
      "",
    ),
    (
      "inconsistency of patterns, Ω_T = all components meeting T (paper's definition; mean / max)",
      f"{f(m.consistency_paper.inconsistency_mean)} / {f(m.consistency_paper.inconsistency_max)}",
      "small (v2 §3.3, Fig. 7)",
      "a component paints the same pattern whatever else is painted",
    ),
    (
      "inconsistency, Ω_T without components meeting S (ours; mean / max)",
      f"{f(m.consistency.inconsistency_mean)} / {f(m.consistency.inconsistency_max)}",
      "small (v2 Fig. 7)",
      "a component paints the same pattern whatever else is painted",
    ),
    (
      "controllable reconstruction RMSE (p = 0 → 1)",
      f"{f(m.controllable.initial_rmse_mean)} → {f(m.controllable.final_rmse_mean)}",
      "decreases to ≈ 0 (v1 Fig. 7)",
      "covering components regenerate their patch",
    ),
    (
      "sequential reconstruction: RMSE of the patch just added",
      f(m.sequential.new_rmse_mean),
      "small (v2 Fig. 11)",
      "patches can be regenerated one by one",
    ),
    (
      "sparsity: share of elements < eps·max",
      f(m.sparsity.near_zero_share),
      "most elements ≈ 0 (v2 Fig. 3)",
      f"eps = {m.sparsity.eps}",
    ),
    (
      "salient components (removal criterion / top 60%)",
      f"{m.salient.num_salient} / {m.salient.num_top_fraction} of {m.salient.num_components}",
      "top 60% (v1 App. H)",
      "components needed before the image falls back to the baseline",
    ),
    ("subsets meeting τ", f"{m.solver.met_tau} / {m.solver.subsets}", "all", "solver convergence"),
    (
      "Algorithm 2 with the salient components only: controllable RMSE on random multi-patch Ŝ (p = 0 → 1)",
      f"{f(m.salient_algorithm2.controllable_initial_rmse_mean)} → "
      f"{f(m.salient_algorithm2.controllable_final_rmse_mean)}",
      "decreases to ≈ 0 (v1 App. E, H)",
      f"{m.salient_algorithm2.num_kept} salient components; Ŝ = {', '.join(m.salient_algorithm2.targets)}",
    ),
    (
      "… sequential: RMSE of the patch just added / breach max",
      f"{f(m.salient_algorithm2.sequential_new_rmse_mean)} / {f(m.salient_algorithm2.breach_max)}",
      "small / ≈ 0 (v2 Fig. 5, 11)",
      "same, salient components only",
    ),
  ]
  if m.denoise is not None:
    d = m.denoise
    rows.append(
      (
        "denoising: Σ‖I_or‖₁ before → after",
        f"{f(d.before.l1)} → {f(d.after.l1)}",
        "lower (v1 App. G)",
        f"τ_q = {d.tau_q:.3g}; reconstruction RMSE {f(d.before.recon_rmse_mean)} → {f(d.after.recon_rmse_mean)}",
      )
    )
  return [dict(zip(("metric", "ours", "paper", "meaning"), r)) for r in rows]


def interactive_view(config, res):
  """The clickable view of ``regionjax.interactive`` as markup for the template, or None when
  ``report.interactive`` is off (configs without a ``report`` block keep the static report)."""
  r = config.get("report")
  if r is None or not r.interactive:
    return None
  from regionjax import interactive

  frag = interactive.fragment(
    res,
    thumb_size=r.thumbnail_size,
    fmt=r.thumbnail_format,
    batch_size=config.metrics.decode_batch,
    names=getattr(res, "names", None),
  )
  return markupsafe.Markup(frag)


def comparison_view(config, results, reports):
  """Batch index: one action field across the images (``regionjax.interactive``), or None."""
  r = config.get("report")
  if r is None or not r.interactive:
    return None
  from regionjax import interactive

  data = interactive.build_comparison(
    results, reports, thumb_size=r.thumbnail_size, fmt=r.thumbnail_format, batch_size=config.metrics.decode_batch
  )
  return None if data is None else markupsafe.Markup(interactive.render_comparison(data))


def write_image(config, res, outdir: str, samples_png, header: dict, features=None) -> results_lib.ImageMetrics:
  """The saved explanation, metrics.json and report.html of one image in ``outdir``; returns its metrics.

  ``features`` (the tap's feature of many codes, :func:`baseline_features`) adds the Baselines section.
  """
  os.makedirs(outdir, exist_ok=True)
  options = evaluation.MetricOptions.from_config(config)
  with timings.stage("metrics"):
    ev = evaluation.evaluate_image(options, res)
    metrics = ev.metrics
    if features is not None:
      metrics = dataclasses.replace(metrics, baselines=evaluation.baseline_scores(options, res, features))
  bar = progress.bar(total=3, desc=f"report image {res.index}", unit="part")
  bar.set_postfix(part="figures")
  figs = image_figures(config, res, ev, samples_png)
  bar.update(1)
  bar.set_postfix(part="interactive view")
  view = interactive_view(config, res)
  bar.update(1)
  names = getattr(res, "names", None)
  if names:  # named regions (patches.method = 'regions'): carried into metrics.json and the explanation
    top = [dataclasses.replace(c, names=[names[i] for i in c.players]) for c in metrics.top_components]
    metrics = dataclasses.replace(metrics, top_components=top)
  exp = res.explanation
  if exp is not None:  # the compact explanation (rj.load); dense u and components only when asked for
    exp.save(outdir, dense=bool(config.report.get("dense_components", False)))
  summary = results_lib.ImageSummary(
    **header,
    image=res.index,
    class_id=res.class_id,
    n=int(res.masks.shape[0]),
    players=res.players.tolist(),
    feature_shape=list(res.f.shape),
    player_names=list(names) if names else None,
  )
  metrics = dataclasses.replace(metrics, summary=summary).normalised()
  io_lib.write_json(os.path.join(outdir, "metrics.json"), metrics.to_json_dict())
  html = render(
    "report.html.j2",
    config=config,
    metrics=metrics,
    figs=figs,
    summary=summary,
    rows=metric_rows(metrics),
    reference=metrics_lib.PAPER_REFERENCE,
    interactive=view,
    baselines=baseline_rows(metrics.baselines),
  )
  io_lib.atomic_write_text(os.path.join(outdir, "report.html"), html)
  bar.update(1)
  bar.close()
  return metrics


def baseline_rows(scores: list | None) -> dict | None:
  """The Baselines table (column heads naming the paper's axioms), or None when not computed."""
  if not scores:
    return None
  from regionjax import baselines as baselines_lib

  cols = baselines_lib.COLUMNS
  fmt = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
  return {
    "heads": [c[0] for c in cols],
    "rows": [{"method": s.method, "cells": [fmt(getattr(s, a), f) for _, a, f in cols]} for s in scores],
    "threshold": baselines_lib.FIELD_THRESHOLD,
  }


def baseline_features(config, gen) -> np.ndarray | None:
  """The tap's feature of ``report.baselines_codes`` codes (classes spread evenly), when ``report.baselines``."""
  r = config.get("report")
  if r is None or not r.get("baselines", False):
    return None
  num, batch, nc = r.baselines_codes, config.baseline.batch_size, gen.num_classes
  out = []
  for start in range(0, num, batch):
    k = min(batch, num - start)
    codes = gen.sample_codes(
      jax.random.fold_in(jax.random.PRNGKey(config.seed + 11), start),
      k,
      classes=np.arange(start, start + k) % nc if nc else None,
    )
    out.append(np.asarray(gen.encode(codes, config.model.layer)))
  return np.concatenate(out)


def sample_grid_png(config, gen) -> bytes | None:
  num = 16
  nc = gen.num_classes
  codes = gen.sample_codes(jax.random.PRNGKey(config.seed + 7), num, classes=np.arange(num) % nc if nc else None)
  return figures.png(figures.image_grid(np.asarray(gen.generate(codes)), cols=8, suptitle="samples from random codes"))


def write_outputs(config, gen, results, workdir: str, elapsed: float) -> dict:
  """Per-image outputs (and the batch index); report.html is written last."""
  samples_png = sample_grid_png(config, gen)
  header = {
    "model": config.model.name,
    "layer": config.model.layer,
    "seconds_total": float(elapsed),
    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
  }
  features = baseline_features(config, gen)
  if len(results) == 1:
    return write_image(config, results[0], workdir, samples_png, header, features).to_json_dict()
  per_image = []
  for res in results:
    per_image.append(
      write_image(config, res, os.path.join(workdir, "images", f"{res.index:03d}"), samples_png, header, features)
    )
  transfer = evaluation.transfer_pairs(results, config.metrics.transfer_k)
  agg = evaluation.aggregate(per_image)
  first = per_image[0].summary
  summary = dict(header, num_images=len(results), n=first.n, players=first.players, feature_shape=first.feature_shape)
  metrics = {
    "summary": summary,
    "aggregate": agg,
    "transferability": transfer,
    "per_image": [
      {
        "image": m.summary.image,
        "class_id": m.summary.class_id,
        "report": f"images/{m.summary.image:03d}/report.html",
        **{k: v for k, v in m.to_json_dict().items() if k != "summary"},
      }
      for m in per_image
    ],
    # headline numbers for the summary line: means over images
    "solver": {
      "met_tau": int(sum(m.solver.met_tau for m in per_image)),
      "subsets": int(sum(m.solver.subsets for m in per_image)),
      "median_error": float(np.median([m.solver.median_error for m in per_image])),
      "problems_solved": int(sum(m.solver.problems_solved or 0 for m in per_image)),
    },
    "completeness": {"feature_error": agg["completeness.feature_error"]["mean"]},
    "additivity": {"k": per_image[0].additivity.k, "error_mean": agg["additivity.error_mean"]["mean"]},
    "faithfulness": evaluation.mean_faithfulness([m.faithfulness for m in per_image]),
    "top_components": results_lib.to_json(per_image[0].top_components),
  }
  io_lib.write_json(os.path.join(workdir, "metrics.json"), metrics_lib.summary(metrics))
  thumbs = [figures.data_uri(figures.target_with_grid(r.image, r.cells, r.players)) for r in results]
  html = render(
    "index.html.j2",
    config=config,
    summary=summary,
    aggregate=agg,
    transfer=transfer,
    per_image=metrics["per_image"],
    thumbs=thumbs,
    samples=figures.data_uri(samples_png) if samples_png else None,
    compare=comparison_view(config, results, [p["report"] for p in metrics["per_image"]]),
  )
  io_lib.atomic_write_text(os.path.join(workdir, "report.html"), html)
  return metrics_lib.summary(metrics)


def spill_line(rho: dict) -> str | None:
  """When ρ (whole image, top 10 %) misses its target: the same components' ρ on the players' pixels, which
  measures how much of their patterns spills onto the cells outside the players, and the override to try
  (README "Faithful by default?": it raised ρ on some generators, not on all). ``None`` when met or unknown."""
  players = rho.get("players_denominator")
  if rho.get("met", True) or players is None:
    return None
  cause = (
    f"the patterns spill outside the players (ρ on the players' pixels {players:.3f} vs {rho['value']:.3f} "
    "over the whole image)"
    if players >= rho["target"]
    else f"the components are not confined even within the players (ρ on the players' pixels {players:.3f})"
  )
  return (
    f"    likely cause: {cause}; try --config.solver.l1_distance_weight=4 (or 64), or another layer "
    "(README 'Faithful by default?')"
  )


def _faithfulness_lines(metrics: dict) -> list[str]:
  """The headline figures against their targets, said plainly (means over images in batch mode)."""
  mark = lambda ok: "met" if ok else "NOT met"  # noqa: E731
  out = []
  f = metrics.get("faithfulness")
  if f:
    r, a = f["rho_image_top10"], f["additivity_top30"]
    out.append(
      f"  boundedness ρ over the whole image, top 10% of components: {r['value']:.3f} "
      f"(target ≥ {r['target']}: {mark(r['met'])})"
    )
    spill = spill_line(r)
    if spill:
      out.append(spill)
    out.append(
      f"  additivity, top-{a['k']} components vs every u(Ŝ), √(Σ‖h_K−u‖²/Σ‖u−f0‖²): {a['value']:.3f} "
      f"(target ≤ {a['target']}: {mark(a['met'])})"
    )
  t = metrics.get("transferability")
  if t and t.get("mean") is not None:
    kappa = t.get("kappa_size_matched")
    kap = (
      f"κ = (t − chance)/(1 − chance) = {kappa:.2f} (target ≥ {t.get('kappa_target', 0.5)})"
      if kappa is not None
      else ""
    )
    out.append(
      f"  transferability, top-{t['k']} fields shared by two images: {t['mean']:.3f} (target ≥ {t['target']}); "
      f"chance with the same field sizes {t['chance_size_matched_mean']:.3f}, {kap}: {mark(t['met'])}"
    )
  return out


def summary_text(metrics: dict, report_path: str, reused: bool) -> str:
  """What a run prints last: the faithfulness figures against their targets first, then how the solve went."""
  s, solver = metrics["summary"], metrics["solver"]
  images = f", {s['num_images']} images" if "num_images" in s else ""
  c = metrics["completeness"]
  solved = solver.get("problems_solved")
  composed = solver["subsets"] - 1 - solved if solved is not None and not images else None
  problems = (
    f"{solved} problems solved" + (f", {composed} subsets composed" if composed else "") + "; "
    if solved is not None
    else ""
  )
  lines = [
    ("Finished earlier; nothing recomputed." if reused else "Done."),
    f"  model {s['model']} at {s['layer']}, feature {tuple(s['feature_shape'])}, n = {s['n']} players "
    f"{s['players']}{images}",
    *_faithfulness_lines(metrics),
    f"  {problems}subsets meeting τ: {solver['met_tau']}/{solver['subsets']}   median RMSE on S "
    f"{solver['median_error']:.4f}",
    "  completeness: u(N) = f0 + ΣΔf_S holds by construction (OR matching, v2 eq. 6); "
    f"against f itself ‖f0 + ΣΔf_S − f‖/‖f − f0‖ = {c['feature_error']:.3f} (u(N) keeps only what the players need)",
    "  strongest fields: " + ", ".join(f"{c['field']} ({c['norm']:.3g})" for c in metrics["top_components"][:5]),
    f"  wall time {s['seconds_total']:.0f} s (after start-up: generator, baseline, solve, metrics, report)",
    *timings.summary_lines(metrics, reused),
    f"  report: {os.path.abspath(report_path)}",
  ]
  return "\n".join(lines)
