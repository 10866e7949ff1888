"""The pipeline's solve and report when ``solver.max_order = k > 0`` (``regionjax.truncated``).

Only the ``C(n, ≤k)`` minimal features of the sets that leave out at most
``k`` players are solved (or, with ``composition='max'``, composed from
``n + 1`` solved ones), and only the components of order ≤ k exist. Written
to the workdir: ``metrics.json`` (``summary``, ``solver``, ``completeness``,
``residual``, ``explained``, ``top_components``, ``top_pairs``, ``skipped``),
``components.npz`` (``fields`` int64 bitmasks, ``components``, ``u`` of
``N \\ field``, …) and ``report.html``. Metrics that need all ``2**n``
components are skipped, and the report says so.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from regionjax import explanation as explanation_lib  # noqa: E402
from regionjax import figures  # noqa: E402
from regionjax import io as io_lib  # noqa: E402
from regionjax import metrics as metrics_lib  # noqa: E402
from regionjax import progress  # noqa: E402
from regionjax import solver as solver_lib  # noqa: E402
from regionjax import subsets as subsets_lib  # noqa: E402
from regionjax import timings  # noqa: E402
from regionjax import truncated as truncated_lib  # noqa: E402

SKIPPED = (
  "additivity",
  "sparsity",
  "boundedness",
  "boundary_breach",
  "consistency",
  "controllable",
  "sequential",
  "salient (Algorithm 2)",
  "denoise",
  "transferability",
)
SKIPPED_LINE = (
  "Metrics that need all 2^n components are skipped in this mode (solver.max_order > 0): " + ", ".join(SKIPPED) + "."
)


max_order = truncated_lib.config_max_order
validate_config = truncated_lib.validate_config


@dataclasses.dataclass
class ImageResult:
  """One target image's truncated solution (host arrays), as ``pipeline.ImageResult``."""

  index: int
  class_id: Any
  image: np.ndarray
  baseline_image: np.ndarray
  f: np.ndarray
  f0: np.ndarray
  cells: np.ndarray
  players: np.ndarray
  masks: np.ndarray
  solution: truncated_lib.TruncatedResult
  decode: Callable
  seconds: float


def solve_target(config, target, f0, cells, players, ckpt_dir: str, mesh=None) -> ImageResult:
  """``truncated.solve_truncated`` for one target, checkpointed by chunk like the full solve."""
  masks = cells[players]
  s = config.solver
  n, k = len(players), max_order(config)
  options = solver_lib.SolverOptions.from_config(s)
  store = io_lib.ChunkStore(ckpt_dir)
  store.bind(  # chunks of another image, model, players, options or order are set aside, never reused
    explanation_lib.digest(
      "truncated",
      k,
      explanation_lib.solve_fingerprint(
        layer=config.model.layer,
        f=target.f,
        f0=f0,
        image=target.image,
        masks=masks,
        options=options,
        model=config.model.name,
      ),
    )
  )
  done = store.load_all()
  total = n + 1 if s.composition == "max" and n > 1 else truncated_lib.num_sets(n, k)
  bar = progress.bar(total=total, desc=f"solve image {target.index} (order ≤ {k})", unit="subset")
  bar.update(sum(c.subsets.size for c in done.values()))

  def on_chunk(i, count, chunk):
    store.save(i, chunk)
    bar.update(chunk.subsets.size)
    bar.set_postfix(chunk=f"{i + 1}/{count}", err=f"{float(np.max(chunk.error)):.3g}")

  t0 = time.time()
  sol = truncated_lib.solve_truncated(
    target.decode,
    target.f,
    f0,
    target.image,
    masks,
    options,
    max_order=k,
    mesh=mesh,
    done=done,
    on_chunk=on_chunk,
  )
  bar.close()
  return ImageResult(
    index=target.index,
    class_id=target.class_id,
    image=target.image,
    baseline_image=target.baseline_image,
    f=target.f,
    f0=f0,
    cells=cells,
    players=players,
    masks=masks,
    solution=sol,
    decode=target.decode,
    seconds=time.time() - t0,
  )


# -------------------------------------------------------------------- metrics
def _left_out(s: int, n: int) -> str:
  """``N∖{…}``: the set that leaves out the players of ``s``."""
  return "N" if s == 0 else "N∖" + subsets_lib.format_subset(s)


def compute_metrics(config, res: ImageResult) -> tuple[dict, np.ndarray]:
  """metrics.json of one image, and the explained-share array ``(k + 1, num_cells)``."""
  sol = res.solution
  fam, n = sol.family, sol.n
  err = np.asarray(sol.error)
  unmet = np.nonzero(sol.unmet)[0]
  norms = sol.components.norms()
  order = sol.components.rank()
  orders = fam.orders
  explained = truncated_lib.explained_by_order(
    res.decode, sol.components.values, orders, res.image, res.baseline_image, res.cells
  )
  players = np.asarray(res.players)
  f, f0, u_full = np.asarray(res.f, np.float64), np.asarray(res.f0, np.float64), np.asarray(sol.u[0], np.float64)
  pairs = order[orders[order] == 2]
  metrics = {
    "summary": {
      "model": config.model.name,
      "layer": config.model.layer,
      "image": res.index,
      "class_id": res.class_id,
      "n": n,
      "players": players.tolist(),
      "feature_shape": list(np.shape(res.f)),
      "max_order": fam.k,
      "seconds_solve": res.seconds,
    },
    "solver": {
      "mode": "truncated",
      "max_order": fam.k,
      "composition": sol.composition,
      "problems_solved": int(sol.problems.size),
      "subsets": int(fam.size),
      "subsets_full": f"2**{n}",
      "met_tau": int((~sol.unmet).sum()),
      "num_unmet": int(unmet.size),
      "unmet": [_left_out(int(fam.sets[m]), n) for m in unmet[:50]],
      "tau": sol.tau,
      "max_error": float(err.max()),
      "median_error": float(np.median(err[sol.missing != 0])) if (sol.missing != 0).any() else 0.0,
      "seconds": sol.seconds,
      "lam_final_max": float(np.nanmax(sol.lam)) if np.isfinite(sol.lam).any() else float(config.solver.lam),
    },
    "completeness": {
      "feature_error": float(np.linalg.norm(u_full - f) / max(np.linalg.norm(f - f0), 1e-30)),
      "note": "‖u(N) − f‖/‖f − f0‖; u(N) = f0 + ΣΔf_S over all orders, see residual",
    },
    "residual": sol.residual,
    "explained": {
      "orders": list(range(1, fam.k + 1)),
      "share_by_order": explained[1:],  # (k, rows*cols) cumulative: components of order ≤ j
      "players_mean_by_order": [float(np.nanmean(explained[j, players])) for j in range(1, fam.k + 1)],
      "definition": "1 − ‖g(f0 + Σ_{0<|S|≤j} Δf_S) − x‖²_cell / ‖g(f0) − x‖²_cell",
    },
    "top_components": [
      {"field": subsets_lib.format_subset(int(fam.sets[m])), "order": int(orders[m]), "norm": float(norms[m])}
      for m in order[:20]
    ],
    "top_pairs": [
      {
        "field": subsets_lib.format_subset(int(fam.sets[m])),
        "cells": [int(players[i]) for i in subsets_lib.to_indices(int(fam.sets[m]))],
        "norm": float(norms[m]),
      }
      for m in pairs[:20]
    ],
    "skipped": {"metrics": list(SKIPPED), "reason": SKIPPED_LINE},
  }
  return metrics, explained


# -------------------------------------------------------------------- figures
def explained_heatmaps(explained: np.ndarray, rows: int, cols: int, players) -> bytes:
  """One ``rows × cols`` map per order ``j = 1 … k``: the share of each cell's pixels explained by order ≤ j."""
  k = explained.shape[0] - 1
  fig, axes = plt.subplots(1, k, figsize=(3.3 * k + 0.6, 3.4), squeeze=False)
  player_set = set(int(p) for p in players)
  for j in range(1, k + 1):
    ax = axes[0, j - 1]
    grid = explained[j].reshape(rows, cols)
    im = ax.imshow(np.clip(grid, -0.5, 1.0), cmap="viridis", vmin=-0.5, vmax=1.0)
    for r in range(rows):
      for c in range(cols):
        v = grid[r, c]
        txt = "—" if not np.isfinite(v) else f"{v:.2f}"
        ax.text(
          c,
          r,
          txt,
          ha="center",
          va="center",
          fontsize=6,
          color="black" if np.isfinite(v) and v > 0.5 else "white",
          fontweight="bold" if r * cols + c in player_set else "normal",
        )
    ax.set_title(f"explained by orders 1…{j}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
  return figures.png(fig)


def pair_arcs(image, cells, players, fields, norms, max_arcs: int = 25) -> bytes:
  """The strongest pairwise fields as arcs between the centres of their cells (width, opacity ∝ ‖Δf_S‖)."""
  fig, ax = plt.subplots(figsize=(5.2, 5.2))
  ax.imshow(figures.to_rgb(image), interpolation="nearest", alpha=0.55)
  centres = np.array([[np.nonzero(cells[c])[1].mean(), np.nonzero(cells[c])[0].mean()] for c in players])
  fields, norms = list(fields)[:max_arcs], np.asarray(norms)[:max_arcs]
  top = float(norms.max()) if norms.size else 1.0
  cmap = plt.get_cmap("plasma")
  for rank, (s, v) in enumerate(zip(fields, norms)):
    i, j = subsets_lib.to_indices(int(s))
    w = float(v) / top if top > 0 else 0.0
    arc = matplotlib.patches.FancyArrowPatch(
      centres[i],
      centres[j],
      connectionstyle="arc3,rad=0.3",
      arrowstyle="-",
      linewidth=0.8 + 4.0 * w,
      color=cmap(0.85 * (1 - w)),
      alpha=0.3 + 0.7 * w,
    )
    ax.add_patch(arc)
  ax.scatter(centres[:, 0], centres[:, 1], s=6, c="white", edgecolors="black", linewidths=0.4)
  ax.set_title(f"strongest {len(fields)} pairwise fields (arcs; thicker = larger ‖Δf_S‖)", fontsize=9)
  ax.axis("off")
  return figures.png(fig)


HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>regionjax report (order ≤ {{ s.max_order }}) — {{ s.model }} {{ s.layer }}</title>
<style>
 body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }
 h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
 table { border-collapse: collapse; font-size: 0.88em; } td, th { border: 1px solid #ccc; padding: 3px 8px; }
 th { background: #f4f4f4; } .note { color: #555; font-size: 0.9em; } img { max-width: 100%; } .warn { color: #a00; }
</style></head><body>
<h1>Components up to order {{ s.max_order }} of {{ s.model }} at <code>{{ s.layer }}</code></h1>
<p class="note">Feature {{ s.feature_shape }}; {{ s.n }} player patches on a {{ config.patches.rows }}×{{ config.patches.cols }}
grid; λ = {{ config.solver.lam }}, learning rate {{ config.solver.learning_rate }} ({{ config.solver.schedule }}),
{{ config.solver.steps }} steps, τ = {{ config.solver.tau }}, composition '{{ m.solver.composition }}'.
Only the {{ m.solver.subsets }} minimal features u(N∖T), |T| ≤ {{ s.max_order }}, are used (instead of {{ m.solver.subsets_full }});
{{ m.solver.problems_solved }} problems were optimised in {{ "%.1f"|format(m.solver.seconds) }} s. Finished {{ s.finished }}.
Method: Chen, Cheng, Ding, Lin, Zhang, arXiv 2410.04421; the truncation is regionjax's (docs/method.md).</p>
<p class="warn">{{ m.skipped.reason }}</p>

<h2>What the truncation leaves out</h2>
<table>
<tr><th>measure</th><th>value</th><th>meaning</th></tr>
<tr><td>residual ‖u(N) − f0 − Σ<sub>0&lt;|S|≤{{ s.max_order }}</sub> Δf<sub>S</sub>‖ / ‖u(N) − f0‖</td>
<td><b>{{ "%.4g"|format(m.residual.relative) }}</b></td><td>the share of u(N) − f0 in components of order &gt; {{ s.max_order }} (0: nothing left out)</td></tr>
<tr><td>OR matching of the {{ m.residual.or_matching.count }} solved u(N∖T), rebuilt from the truncated components</td>
<td>max {{ "%.4g"|format(m.residual.or_matching.max) }}, mean {{ "%.4g"|format(m.residual.or_matching.mean) }}
(worst: T = {{ m.residual.or_matching.worst_left_out }})</td>
<td>‖h(N∖T) − u(N∖T)‖ / ‖u(N∖T) − f0‖; h(N∖T) − u(N∖T) is minus the residual for every T</td></tr>
{% if m.residual.heldout_singletons %}<tr><td>held out: the solved singletons u({i}) rebuilt from the components</td>
<td>max {{ "%.4g"|format(m.residual.heldout_singletons.max) }}, mean {{ "%.4g"|format(m.residual.heldout_singletons.mean) }}</td>
<td>‖h({i}) − u({i})‖ / ‖u(N) − f0‖; no truncated row contains a singleton</td></tr>{% endif %}
{% for j, v in m.residual.by_order.items() %}<tr><td>‖Σ<sub>|S|={{ j }}</sub> Δf<sub>S</sub>‖ / ‖u(N) − f0‖</td><td>{{ "%.4g"|format(v) }}</td><td>order {{ j }}</td></tr>{% endfor %}
<tr><td>completeness ‖u(N) − f‖/‖f − f0‖</td><td>{{ "%.4g"|format(m.completeness.feature_error) }}</td><td>how far u(N) is from f (the L1 term)</td></tr>
<tr><td>minimal features meeting τ</td><td>{{ m.solver.met_tau }} / {{ m.solver.subsets }}</td><td>RMSE of g(u(N∖T)) on the pixels of N∖T ≤ τ; median {{ "%.4g"|format(m.solver.median_error) }}, max {{ "%.4g"|format(m.solver.max_error) }}</td></tr>
</table>

<h2>Target and players</h2>
<img src="{{ figs.target }}">

<h2>How much of each cell the components of order 1 … {{ s.max_order }} explain</h2>
<p class="note">{{ m.explained.definition }} per grid cell (bold: players). Mean over the players:
{% for j in m.explained.orders %}order ≤ {{ j }}: {{ "%.3f"|format(m.explained.players_mean_by_order[loop.index0]) }}{% if not loop.last %}; {% endif %}{% endfor %}.</p>
<img src="{{ figs.explained }}">

<h2>Strongest pairwise fields</h2>
<img src="{{ figs.arcs }}">
<table><tr><th>field</th><th>cells</th><th>‖Δf_S‖₂</th></tr>
{% for c in m.top_pairs[:10] %}<tr><td>{{ c.field }}</td><td>{{ c.cells }}</td><td>{{ "%.4g"|format(c.norm) }}</td></tr>{% endfor %}</table>

<h2>Strongest components (all orders ≤ {{ s.max_order }})</h2>
<table><tr><th>field</th><th>order</th><th>‖Δf_S‖₂</th></tr>
{% for c in m.top_components %}<tr><td>{{ c.field }}</td><td>{{ c.order }}</td><td>{{ "%.4g"|format(c.norm) }}</td></tr>{% endfor %}</table>

<h2>Errors of the minimal features</h2>
<img src="{{ figs.errors }}">
</body></html>
"""


def write_image(config, res: ImageResult, outdir: str, header: dict) -> dict:
  os.makedirs(outdir, exist_ok=True)
  with timings.stage("metrics"):
    metrics, explained = compute_metrics(config, res)
  metrics["summary"].update(header)
  sol = res.solution
  fam = sol.family
  pairs = sol.components.rank()
  pairs = pairs[fam.orders[pairs] == 2]
  norms = sol.components.norms()
  figs = {
    "target": figures.data_uri(figures.target_with_grid(res.image, res.cells, res.players, res.baseline_image)),
    "explained": figures.data_uri(explained_heatmaps(explained, config.patches.rows, config.patches.cols, res.players)),
    "arcs": figures.data_uri(pair_arcs(res.image, res.cells, res.players, fam.sets[pairs], norms[pairs])),
    "errors": figures.data_uri(
      figures.histogram(
        np.asarray(sol.error)[sol.missing != 0],
        "RMSE on N∖T",
        f"errors of the {int((sol.missing != 0).sum())} minimal features u(N∖T)",
      )
    ),
  }
  io_lib.atomic_savez(
    os.path.join(outdir, "components.npz"),
    fields=fam.sets,
    components=sol.components.values,
    u=sol.u,
    alpha=sol.alpha,
    error=sol.error,
    solved_subsets=sol.problems,
    solved_error=sol.problem_error,
    history=sol.history,
    patches=np.asarray(res.players),
    masks=res.masks,
    f=res.f,
    f0=res.f0,
    image=res.image,
    baseline_image=res.baseline_image,
    explained=explained,
  )
  metrics = metrics_lib.summary(metrics)
  io_lib.write_json(os.path.join(outdir, "metrics.json"), metrics)
  env = jinja2.Environment(autoescape=True)
  html = env.from_string(HTML).render(config=config, s=metrics["summary"], m=metrics, figs=figs)
  io_lib.atomic_write_text(os.path.join(outdir, "report.html"), html)
  return metrics


def write_outputs(config, gen, results, workdir: str, elapsed: float) -> dict:
  """The outputs of every image (batch mode: ``images/NNN/`` each and a short index); report.html last."""
  header = {
    "model": config.model.name,
    "layer": config.model.layer,
    "seconds_total": float(elapsed),
    "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
  }
  if len(results) == 1:
    return write_image(config, results[0], workdir, header)
  per = [write_image(config, r, os.path.join(workdir, "images", f"{r.index:03d}"), header) for r in results]
  rel = [m["residual"]["relative"] for m in per]
  metrics = {
    "summary": dict(
      header,
      num_images=len(per),
      n=per[0]["summary"]["n"],
      players=per[0]["summary"]["players"],
      feature_shape=per[0]["summary"]["feature_shape"],
      max_order=per[0]["summary"]["max_order"],
    ),
    "solver": {k: sum(m["solver"][k] for m in per) for k in ("met_tau", "subsets", "problems_solved")},
    "residual": {
      "relative": float(np.mean(rel)),
      "relative_per_image": rel,
      "or_matching_max": float(max(m["residual"]["or_matching"]["max"] for m in per)),
    },
    "per_image": [
      {
        "image": m["summary"]["image"],
        "report": f"images/{m['summary']['image']:03d}/report.html",
        "residual": m["residual"]["relative"],
      }
      for m in per
    ],
    "top_components": per[0]["top_components"],
    "skipped": per[0]["skipped"],
  }
  metrics = metrics_lib.summary(metrics)
  io_lib.write_json(os.path.join(workdir, "metrics.json"), metrics)
  rows = "".join(
    f'<li><a href="{p["report"]}">image {p["image"]}</a>: residual {p["residual"]:.4g}</li>'
    for p in metrics["per_image"]
  )
  io_lib.atomic_write_text(
    os.path.join(workdir, "report.html"),
    f"<!doctype html><meta charset='utf-8'><h1>{len(per)} images, components up to order "
    f"{metrics['summary']['max_order']}</h1><p>{SKIPPED_LINE}</p><ul>{rows}</ul>",
  )
  return metrics


def summary_text(metrics: dict, report_path: str, reused: bool) -> str:
  s, solver, r = metrics["summary"], metrics["solver"], metrics["residual"]
  images = f", {s['num_images']} images" if "num_images" in s else ""
  lines = [
    ("Finished earlier; nothing recomputed." if reused else "Done."),
    f"  model {s['model']} at {s['layer']}, feature {tuple(s['feature_shape'])}, n = {s['n']} patches "
    f"{s['players']}{images}",
    f"  components of order ≤ {s['max_order']}: {solver['problems_solved']} problems solved, "
    f"minimal features meeting τ: {solver['met_tau']}/{solver['subsets']}",
    f"  residual ‖u(N) − f0 − Σ_{{|S|≤{s['max_order']}}} Δf_S‖/‖u(N) − f0‖: {r['relative']:.4g}",
    "  strongest fields: " + ", ".join(f"{c['field']} ({c['norm']:.3g})" for c in metrics["top_components"][:5]),
    f"  {SKIPPED_LINE}",
    f"  wall time {s['seconds_total']:.0f} s (after start-up: generator, baseline, solve, metrics, report)",
    *timings.summary_lines(metrics, reused),
    f"  report: {os.path.abspath(report_path)}",
  ]
  return "\n".join(lines)
