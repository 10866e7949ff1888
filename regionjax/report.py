"""Metrics, figures, ``components.npz``, ``metrics.json`` and ``report.html``."""

from __future__ import annotations

import base64
import math
import os
import time

import jax
import jax.numpy as jnp
import jinja2
import numpy as np

from regionjax import components as comp_lib
from regionjax import figures
from regionjax import io as io_lib
from regionjax import subsets as subsets_lib

FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def _uri(png: bytes) -> str:
  return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _batched(decode, features, batch: int = 32) -> np.ndarray:
  """``decode`` vmapped over a stack of features, in batches to bound memory."""
  fn = jax.jit(jax.vmap(decode))
  features = jnp.asarray(features)
  out = [np.asarray(fn(features[i:i + batch])) for i in range(0, features.shape[0], batch)]
  return np.concatenate(out) if out else np.zeros((0,))


def basic_metrics(res, top_k: int) -> dict:
  """Completeness, additivity with the top-K components, sparsity, solver status."""
  comps, u, f, f0 = res.components, np.asarray(res.solution.u), res.f, res.f0
  n = res.masks.shape[0]
  full = subsets_lib.full_set(n)
  d = f.size
  rebuilt = comps[0] + comps[1:].sum(0)
  denom = max(float(np.linalg.norm(f - f0)), 1e-12)
  ranked = comp_lib.rank(comps)
  k = min(top_k, ranked.size)
  keep = comp_lib.keep_mask(n, ranked[:k])
  all_s = subsets_lib.all_subsets(n)
  weights = ((all_s[:, None] & all_s[None, :]) != 0) & keep[None, :]
  h_k = np.asarray(comp_lib.combine(jnp.asarray(comps), weights.astype(np.float32)))
  add_err = np.linalg.norm((h_k - u).reshape(u.shape[0], -1), axis=1) / math.sqrt(d)
  mags = np.sort(np.abs(comps[1:]).ravel())[::-1]
  eps = 1e-3 * float(mags[0]) if mags.size and mags[0] > 0 else 0.0
  err = np.asarray(res.solution.error)
  return {
      "completeness": {"relative_to_f": float(np.linalg.norm(rebuilt - f) / denom),
                       "relative_to_u_N": float(np.linalg.norm(rebuilt - u[full]) / denom),
                       "image_rmse_u_N": float(err[full])},
      "additivity": {"top_k": int(k), "mean": float(add_err.mean()), "max": float(add_err.max())},
      "sparsity": {"share_below_1e-3_max": float((mags <= eps).mean()) if mags.size else 1.0,
                   "num_elements": int(mags.size)},
      "solver": {"subsets": int(1 << n), "met_tau": int((err <= res.solution.tau).sum()),
                 "unmet": [subsets_lib.format_subset(s) for s in np.nonzero(res.solution.unmet)[0][:50]],
                 "max_error": float(err.max()), "median_error": float(np.median(err[1:])),
                 "seconds": float(res.seconds)},
  }


def incremental_strips(res, target_sets, kept) -> tuple[list[np.ndarray], list[str]]:
  """Decodes f0 + the strongest fraction p of kept components meeting Ŝ (v1 Fig. 4, 7)."""
  comps = res.components
  n = res.masks.shape[0]
  norms = comp_lib.component_norms(comps)
  feats, titles = [], []
  for target in target_sets:
    cover = [s for s in kept if s & target]
    cover = sorted(cover, key=lambda s: -norms[s])
    for p in FRACTIONS:
      use = cover[:int(round(p * len(cover)))]
      w = np.zeros(1 << n, np.float32)
      w[use] = 1.0
      feats.append(np.asarray(comp_lib.combine(jnp.asarray(comps), w)))
      titles.append(f"Ŝ={subsets_lib.format_subset(target)} p={p:g}")
  images = _batched(res.decode, np.stack(feats))
  return list(images), titles


def image_section(config, res, outdir: str, samples_png: bytes | None) -> tuple[dict, dict]:
  """Metrics and inline figures for one image."""
  comps = res.components
  n = res.masks.shape[0]
  norms = comp_lib.component_norms(comps)
  ranked = comp_lib.rank(comps)
  metrics = basic_metrics(res, config.metrics.top_k)
  salient = comp_lib.top_fraction(comps, config.metrics.salient_fraction)
  metrics["salient"] = {"fraction": config.metrics.salient_fraction, "count": int(salient.size)}
  num_patterns = max(1, math.ceil(0.1 * ranked.size))
  top = ranked[:num_patterns]
  patterns = np.asarray(comp_lib.regional_patterns(res.decode, jnp.asarray(res.f), jnp.asarray(comps), top))
  inside = np.stack([np.any(res.masks[subsets_lib.to_indices(s)], axis=0) for s in top])
  energy = (patterns ** 2).sum(-1)
  rho = (energy * inside).sum((1, 2)) / np.maximum(energy.sum((1, 2)), 1e-20)
  metrics["boundedness_top10pct"] = {"mean": float(rho.mean()), "min": float(rho.min())}
  players = [1 << i for i in range(n)]
  strip_sets = players[:3] + [subsets_lib.full_set(n)]
  strips, strip_titles = incremental_strips(res, strip_sets, salient.tolist())
  mags = np.sort(np.abs(comps[1:]).ravel())[::-1]
  idx = np.unique(np.geomspace(1, mags.size, 200).astype(int)) - 1
  figs = {
      "target": _uri(figures.target_with_grid(res.image, res.cells, res.players, res.baseline_image)),
      "fields": _uri(figures.action_fields(res.image, res.masks, ranked[:16], norms)),
      "patterns": _uri(figures.patterns(patterns, top.tolist(), res.masks)),
      "sparsity": _uri(figures.curve(idx + 1, [mags[idx] / max(mags[0], 1e-20)], ["|element|"], "rank of element",
                                     "|element| / max", "sparsity of all components (v2 Fig. 3)", logy=True)),
      "loss": _uri(figures.loss_curves(res.solution.history, res.solution.error, res.solution.tau)),
      "strips": _uri(figures.image_grid(strips, strip_titles, cols=len(FRACTIONS), size=1.3,
                                        suptitle="incremental reconstruction (v1 Fig. 4, 7)")),
      "norms": _uri(figures.curve(np.arange(1, ranked.size + 1), [norms[ranked]], ["‖Δf_S‖₂"], "rank",
                                  "‖Δf_S‖₂", "component strength by rank", logy=True)),
  }
  if samples_png is not None:
    figs["samples"] = _uri(samples_png)
  table = [{"field": subsets_lib.format_subset(s), "players": subsets_lib.to_indices(s), "norm": float(norms[s])}
           for s in ranked[:20]]
  metrics["top_components"] = table
  return metrics, figs


def write_image_outputs(res, outdir: str) -> None:
  io_lib.atomic_savez(os.path.join(outdir, "components.npz"), u=np.asarray(res.solution.u),
                      alpha=np.asarray(res.solution.alpha), components=res.components, patches=res.players,
                      masks=res.masks, f=res.f, f0=res.f0, image=res.image, baseline_image=res.baseline_image,
                      error=np.asarray(res.solution.error), history=np.asarray(res.solution.history))


def render(template: str, **ctx) -> str:
  env = jinja2.Environment(loader=jinja2.PackageLoader("regionjax", "templates"),
                           autoescape=jinja2.select_autoescape(["html", "j2"]))
  return env.get_template(template).render(**ctx)


def write_outputs(config, gen, results, workdir: str, elapsed: float) -> dict:
  """Writes components.npz, metrics.json and, last, report.html."""
  samples_png = None
  try:
    num = 16
    nc = getattr(gen, "num_classes", None)
    classes = (np.arange(num) % nc) if nc else None
    codes = gen.sample_codes(jax.random.PRNGKey(config.seed + 7), num, **({"classes": classes} if nc else {}))
    samples_png = figures.image_grid(np.asarray(gen.generate(codes)), cols=8, suptitle="samples from random codes")
  except TypeError:
    pass
  res = results[0]
  metrics, figs = image_section(config, res, workdir, samples_png)
  write_image_outputs(res, workdir)
  summary = {
      "model": config.model.name, "layer": config.model.layer, "class_id": res.class_id,
      "n": int(res.masks.shape[0]), "players": res.players.tolist(),
      "feature_shape": list(res.f.shape), "seconds_total": float(elapsed),
      "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
  }
  metrics = {"summary": summary, **metrics}
  io_lib.write_json(os.path.join(workdir, "metrics.json"), metrics)
  html = render("report.html.j2", config=config, metrics=metrics, figs=figs, summary=summary)
  io_lib.atomic_write_text(os.path.join(workdir, "report.html"), html)
  return metrics


def summary_text(metrics: dict, report_path: str, reused: bool) -> str:
  s, solver = metrics["summary"], metrics["solver"]
  lines = [
      ("Finished earlier; nothing recomputed." if reused else "Done."),
      f"  model {s['model']} at {s['layer']}, feature {tuple(s['feature_shape'])}, n = {s['n']} patches {s['players']}",
      f"  subsets meeting τ: {solver['met_tau']}/{solver['subsets']}   median RMSE {solver['median_error']:.4f}",
      f"  completeness (vs f): {metrics['completeness']['relative_to_f']:.4f}   additivity top-"
      f"{metrics['additivity']['top_k']}: mean {metrics['additivity']['mean']:.4g}",
      "  strongest fields: " + ", ".join(f"{c['field']} ({c['norm']:.3g})" for c in metrics["top_components"][:5]),
      f"  total time {s['seconds_total']:.0f} s",
      f"  report: {os.path.abspath(report_path)}",
  ]
  return "\n".join(lines)
