"""Queries of an explanation by image region: which components paint inside a region (``rj.region_query``).

Built on the components, the metrics' batched decode and the explainer's binding; nothing below imports it.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from regionjax import components as components_lib
from regionjax import explainer
from regionjax import explanation as explanation_lib
from regionjax import metrics as metrics_lib
from regionjax import patches as patches_lib
from regionjax import subsets as subsets_lib


def region_query(
  result, region, *, generator=None, image: int = 0, min_inside: float = 1.0, batch_size: int | None = 64
) -> list[dict]:
  """The components whose action fields lie inside ``region``, strongest first, with their breach.

  A field ``S`` lies inside the region when at least ``min_inside`` of the
  pixels of its players (the union of their masks) are in it (1: all of
  them). For each such non-zero component the breach is the share of its
  regional pattern ``p_S = g(f) − g(f − Δf_S)`` (v2 §3.2.1) that falls
  outside the region,

      breach_S = 1 − ‖p_S ⊙ region‖² / ‖p_S‖²,

  0 when the component paints only inside the region (``1 − ρ_S^image`` of
  docs/method.md §Boundedness with the region in place of the field).

  Args:
    result: a :class:`regionjax.Explanation` (with ``generator``; image ``image`` of it), or one image bound to
      its decoder (``regionjax.explainer.ImageResult``: ``components``, ``masks``, ``f``, ``decode``, ``names``).
    region: ``(H, W)`` boolean mask of the image.
    generator: the generator an Explanation explains (its decoder paints the patterns).
    image: which image of an Explanation.
    min_inside: share of a field's pixels that must lie in the region.
    batch_size: decodes per compiled batch.

  Returns:
    One dict per component: ``field`` (bitmask), ``players``, ``names`` (or None), ``norm``, ``inside_share``,
    ``breach``.
  """
  if isinstance(result, explanation_lib.Explanation):
    result = explainer.bind(result, image, generator)
  region = np.asarray(region, bool)
  masks = np.asarray(result.masks, bool)
  if region.shape != masks.shape[1:]:
    raise ValueError(f"the region mask is {region.shape} but the players' masks are {masks.shape[1:]}")
  if not region.any():
    raise ValueError("the region mask is empty")
  comps = jnp.asarray(result.components)
  norms = components_lib.component_norms(comps)
  unions = patches_lib.subset_masks(masks)
  inside = (unions & region).sum((1, 2)) / np.maximum(unions.sum((1, 2)), 1)
  fields = [s for s in components_lib.rank(comps) if inside[s] >= min_inside and norms[s] > 0]
  if not fields:
    return []
  f = jnp.asarray(result.f)
  base = result.decode(f)
  removed = metrics_lib.decode_batch(result.decode, f[None] - comps[np.asarray(fields)], batch_size)
  pats = np.asarray(base[None] - removed, np.float64)
  energy = (pats**2).sum(-1)
  total = energy.sum((1, 2))
  within = (energy * region).sum((1, 2))
  names = getattr(result, "names", None)
  out = []
  for k, s in enumerate(fields):
    players = subsets_lib.to_indices(int(s))
    out.append(
      {
        "field": int(s),
        "players": players,
        "names": [names[i] for i in players] if names else None,
        "norm": float(norms[s]),
        "inside_share": float(inside[s]),
        "breach": float(1.0 - within[k] / total[k]) if total[k] > 0 else 0.0,
      }
    )
  return out
