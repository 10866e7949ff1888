"""Plots of an :class:`regionjax.Explanation`, as matplotlib figures (``rj.plot.*``).

Each function draws one image ``i`` of an explanation and returns a
``matplotlib.figure.Figure`` (in a notebook it shows as the cell's value; save
it with ``fig.savefig(path)``). Those that need decoded images take the
generator, or the images computed beforehand; the report draws the same
figures (:mod:`regionjax.figures`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from regionjax import components as components_lib
from regionjax import figures
from regionjax import metrics as metrics_lib
from regionjax import patches as patches_lib
from regionjax import subsets as subsets_lib
from regionjax.explanation import Explanation

#: Fractions p of Algorithm 2 drawn by :func:`incremental_reconstruction` (v1 Fig. 4, 7).
FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def _done(fig: Figure) -> Figure:
  """Detached from pyplot (no second display in a notebook, no open-figure build-up); still drawable."""
  import matplotlib.pyplot as plt

  plt.close(fig)
  return fig


def _decoder(exp: Explanation, i: int, generator):
  from regionjax import explainer

  if generator is None:
    raise ValueError("this plot decodes features: pass the generator (or the images computed beforehand)")
  return explainer.codes_decoder(generator, exp.info.layer, exp[i].codes, np.asarray(exp.f)[i])


def target(exp: Explanation, i: int = 0) -> Figure:
  """The target image with the grid and the numbered players, beside ``g(f0)``."""
  e = exp[i]
  p = e.players
  masks = np.asarray(e.masks, bool)
  if p.grid is not None and p.cells is not None:
    cells, ids = patches_lib.patch_masks(masks.shape[1], masks.shape[2], *p.grid), list(p.cells)
  else:
    cells, ids = masks, list(range(e.n))
  return _done(figures.target_with_grid(np.asarray(e.image)[0], cells, ids, np.asarray(e.baseline_image)[0]))


def action_fields(exp: Explanation, i: int = 0, k: int = 16) -> Figure:
  """The action fields of the ``k`` strongest components over the image, and the heat map of their action
  regions (v1 Fig. 3–4, App. H: each component weighs ``‖Δf_S‖₁ / |S|`` on each patch of its field)."""
  comps = np.asarray(exp[i].components()[0])
  norms = components_lib.component_norms(comps)
  l1 = np.abs(comps.reshape(comps.shape[0], -1)).sum(-1)
  fields = components_lib.rank(comps)[:k]
  return _done(figures.action_fields(np.asarray(exp.image)[i], np.asarray(exp.masks, bool), fields, norms, l1_norms=l1))


def regional_patterns(
  exp: Explanation, generator=None, i: int = 0, k: int = 16, *, fields=None, patterns=None
) -> Figure:
  """Regional patterns ``p_S = g(f) − g(f − Δf_S)`` (v2 §3.2.1, Fig. 2) of the ``k`` strongest components
  (or of ``fields``); ``patterns``: the pattern images computed beforehand, one per field."""
  comps = exp[i].components()[0]
  fields = components_lib.rank(comps)[:k] if fields is None else np.asarray(fields, np.int64)
  if patterns is None:
    decode = _decoder(exp, i, generator)
    patterns = components_lib.regional_patterns(decode, np.asarray(exp.f)[i], comps, fields)
  return _done(figures.patterns(np.asarray(patterns), [int(s) for s in fields], np.asarray(exp.masks, bool)))


def incremental_reconstruction(
  exp: Explanation, generator=None, i: int = 0, *, targets=None, images=None, fractions=FRACTIONS
) -> Figure:
  """Algorithm 2 (v1 App. E, Fig. 4, 7): ``g(f0 + Σ Δf_S)`` over the strongest fraction ``p`` of the components
  whose field meets each target set ``Ŝ`` (default: players 0, 1, 2 and ``N``); one row per target.
  ``images``: those images computed beforehand, ``(len(targets) · len(fractions), H, W, C)``."""
  n = exp.n
  targets = [1 << j for j in range(min(n, 3))] + [subsets_lib.full_set(n)] if targets is None else list(targets)
  comps = exp[i].components()[0]
  norms = components_lib.component_norms(comps)
  ranked = components_lib.rank(comps)
  weights, titles = [], []
  for t in targets:
    cover = ranked[(ranked & int(t)) != 0]
    for p in fractions:
      w = np.zeros(1 << n, np.float32)
      w[cover[: int(round(p * cover.size))]] = 1.0
      weights.append(w)
      name = "N" if t == subsets_lib.full_set(n) else subsets_lib.format_subset(int(t))
      titles.append(f"Ŝ={name} p={p:g}")
  if images is None:
    decode = _decoder(exp, i, generator)
    images = metrics_lib.decode_combinations(decode, comps, np.stack(weights))
  del norms
  return _done(
    figures.image_grid(
      list(np.asarray(images)), titles, cols=len(fractions), size=1.4, suptitle="incremental reconstruction"
    )
  )


def field_sizes(exp: Explanation, i: int = 0, k: int | None = None) -> Figure:
  """Histogram of the field sizes ``|S|`` of the components, weighted by ``‖Δf_S‖₂`` (all, or the ``k``
  strongest): how local the explanation is (size 1 = one patch)."""
  norms = exp[i].norms()[0]
  fields = np.arange(1, 1 << exp.n) if k is None else exp[i].top(k)[0]
  sizes = np.array([subsets_lib.size(int(s)) for s in fields])
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(4.2, 3.0), layout="constrained")
  ax.hist(sizes, bins=np.arange(0.5, exp.n + 1.5), weights=norms[fields])
  ax.set_xlabel("field size |S| (players)")
  ax.set_ylabel("Σ ‖Δf_S‖₂")
  which = "all components" if k is None else f"the {k} strongest components"
  ax.set_title(f"field sizes of {which}", fontsize=9)
  return _done(fig)


def loss(exp: Explanation, i: int = 0) -> Figure:
  """The solver's objective over steps (solved subsets) and every subset's reconstruction error against τ."""
  return _done(
    figures.loss_curves(
      np.concatenate([np.zeros((1,) + np.shape(exp.history)[2:]), np.asarray(exp.history)[i]]),
      np.asarray(exp.error)[i],
      exp.tau,
    )
  )


__all__ = ["action_fields", "field_sizes", "incremental_reconstruction", "loss", "regional_patterns", "target"]
