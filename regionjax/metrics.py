"""Faithfulness metrics of the feature components (docs/method.md §Metrics), as pure functions.

Every function takes arrays and returns a plain ``dict`` of NumPy arrays and
Python numbers: the curves for plotting and the scalars for ``metrics.json``
(pass any of them through :func:`summary` to get JSON-able floats and lists;
non-finite values become ``None``). Conventions (docs/method.md §Subsets as bitmasks):

* ``components``: ``(2**n, *feature_shape)`` from ``rj.or_components(u)``;
  index 0 is ``f0``, index ``S`` is ``Δf_S``.
* ``u``: minimal features ``(2**n, *feature_shape)``; ``f``, ``f0``: features.
* ``decode``: pure, jittable, one feature → one image ``(H, W, C)``.
* ``masks``: bool ``(n, H, W)``, one per player, in player order.
* ``fields`` / sets: bitmask integers.

All decodes of one metric are one jit-compiled batched call
(:func:`decode_batch`: ``vmap``, or ``lax.map`` with ``batch_size`` chunks to
bound memory). Ratios whose denominator is 0 are defined as 0 when the
numerator is 0 (a zero component paints nothing) and never produce NaN.

Paper references: v1 = arXiv 2410.04421v1 ("Disentangling Regional Primitives
for Image Generation"), v2 = the revised version ("Disentangling Primitive
Representation Structures for Image Generation"); see docs/method.md §References.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from regionjax import components as components_lib
from regionjax import decoding
from regionjax import subsets as subsets_lib
from regionjax import transforms

from regionjax.generator import Decode  # noqa: E402  (one definition, shared with the solver)

# ---------------------------------------------------------------------------
# The paper's numbers (only those that survive in the extracted text of the paper).
# ---------------------------------------------------------------------------

#: v2 §3.1 and App. E ("selected the top-30 of all the 512 feature components"):
#: K of the additivity check (Fig. 4).
ADDITIVITY_TOP_K = 30
#: v1 App. H: "for most samples, the top 60% feature components were salient".
SALIENT_FRACTION = 0.6
#: v1 App. H: "in Figure 6 ... in log space, about 40% interactions had
#: relatively low interaction strength".
LOW_STRENGTH_SHARE = 0.4
#: v2 §3.4, Fig. 8: share of the top-K action fields common to two images.
TRANSFERABILITY_NVAE = 0.880
TRANSFERABILITY_SID = 0.763
#: The fractions p of v1 Fig. 5/7 and v2 Fig. 5 ("ratio p of feature components").
DEFAULT_FRACTIONS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())

#: Reference values with their sources, for reports. The threshold of v2
#: §3.2.1 ("all the ρ values ... were greater than ...") and the K and n of
#: v2 §3.4 are lost in the extracted text, so they are not given here.
PAPER_REFERENCE = {
  "transferability_nvae": {"value": TRANSFERABILITY_NVAE, "source": "v2 §3.4, Fig. 8"},
  "transferability_sid": {"value": TRANSFERABILITY_SID, "source": "v2 §3.4, Fig. 8"},
  "additivity_top_k": {"value": ADDITIVITY_TOP_K, "source": "v2 §3.1, App. E (top-30 of 512)"},
  "salient_fraction": {"value": SALIENT_FRACTION, "source": "v1 App. H (top 60% salient)"},
  "low_strength_share": {"value": LOW_STRENGTH_SHARE, "source": "v1 App. H (about 40% low strength, Fig. 6)"},
  "boundedness_rho": {
    "value": None,
    "source": "v2 §3.2.1, Fig. 6: a lower bound on all ρ is stated, but the number is lost in the text we have",
  },
}

_TINY = 1e-30


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def safe_ratio(num, den):
  """``num / den`` elementwise, with ``0 / 0 = 0`` and ``x / 0 = x / 1e-30`` (finite)."""
  num = np.asarray(num, np.float64)
  den = np.asarray(den, np.float64)
  return np.where(num == 0, 0.0, num / np.maximum(den, _TINY))


def decode_batch(decode: Decode, features, batch_size: int | None = None) -> np.ndarray:
  """``decode`` over a leading batch axis (:func:`regionjax.decoding.decode_batch`).

  ``batch_size=None`` vmaps the whole batch in one call; otherwise blocks of
  ``batch_size`` rows share one compiled program (bounds memory for big generators).
  """
  return decoding.decode_batch(decode, features, batch_size)


def num_players(components) -> int:
  """``n`` from the subset axis of ``components`` (or ``u``)."""
  return subsets_lib.num_players_of(np.shape(components)[0], "the leading (subset) axis of components")


def _flat(x) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x.reshape(x.shape[0], -1)


def ranked_fields(components, candidates: np.ndarray) -> np.ndarray:
  """The ``candidates`` (bitmasks) sorted by ``‖Δf_S‖₂``, strongest first (stable)."""
  norms = components_lib.component_norms(components)
  candidates = np.asarray(candidates, np.int64)
  return candidates[np.argsort(-norms[candidates], kind="stable")]


def _kept(n: int, kept) -> np.ndarray:
  return components_lib.keep_mask(n, kept)


def fraction_counts(fractions: Sequence[float], total: int) -> np.ndarray:
  """``round(p · total)`` (half up) for each fraction ``p ∈ [0, 1]``."""
  p = np.asarray(fractions, np.float64)
  if p.ndim != 1 or p.size == 0 or np.any(p < 0) or np.any(p > 1):
    raise ValueError(f"fractions must be a non-empty list of numbers in [0, 1], got {fractions!r}")
  return np.floor(p * total + 0.5).astype(np.int64)


def prefix_weights(n: int, order: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """``(len(counts), 2**n)`` weights: 1 on the first ``c`` fields of ``order``."""
  w = np.zeros((len(counts), 1 << n), np.float32)
  for row, c in enumerate(counts):
    w[row, order[:c]] = 1.0
  return w


def decode_combinations(decode: Decode, components, weights, batch_size: int | None = None) -> np.ndarray:
  """``g(f0 + Σ_S w_S Δf_S)`` for every row of ``weights`` ``(B, 2**n)`` (``w[:, 0]`` ignored;
  :func:`regionjax.decoding.decode_combinations`).

  Each feature is formed inside the batched call, so with ``batch_size``
  only ``batch_size`` features (not ``B``) are in memory at a time.
  """
  return decoding.decode_combinations(decode, components, weights, batch_size)


def patch_sq_error(images, reference, masks) -> tuple[np.ndarray, np.ndarray]:
  """Sum of squared errors per player patch ``(B, n)`` and the values counted per patch ``(n,)``."""
  images = np.asarray(images, np.float64)
  reference = np.asarray(reference, np.float64)
  masks = np.asarray(masks, bool)
  sq = ((images - reference) ** 2).sum(-1)  # (B, H, W)
  per = np.einsum("bhw,nhw->bn", sq, masks.astype(np.float64))
  count = masks.reshape(masks.shape[0], -1).sum(-1) * images.shape[-1]
  return per, count


def union_rmse(per: np.ndarray, count: np.ndarray, members: np.ndarray) -> np.ndarray:
  """RMSE over the union of the patches flagged in ``members`` (``(n,)`` or ``(B, n)`` bool)."""
  members = np.broadcast_to(np.asarray(members, bool), per.shape)
  num = (per * members).sum(-1)
  den = (count[None] * members).sum(-1)
  return np.sqrt(safe_ratio(num, den))


def bits_of(s: int, n: int) -> np.ndarray:
  """Boolean ``(n,)`` membership vector of the bitmask ``s``."""
  return ((int(s) >> np.arange(n)) & 1).astype(bool)


def _check_masks(masks, n: int, image_shape=None) -> np.ndarray:
  masks = np.asarray(masks)
  if masks.ndim != 3 or masks.shape[0] != n or masks.dtype != bool:
    raise ValueError(
      f"masks must be boolean (n, H, W) with n={n} (from the subset axis), got {masks.dtype} {masks.shape}"
    )
  if image_shape is not None and tuple(masks.shape[1:]) != tuple(image_shape[:2]):
    raise ValueError(f"masks cover {masks.shape[1:]} pixels but the image is {tuple(image_shape[:2])}")
  return masks


def _check_fields(fields, n: int) -> np.ndarray:
  fields = np.atleast_1d(np.asarray(fields, np.int64))
  if fields.size and (fields.min() < 1 or fields.max() >= 1 << n):
    raise ValueError(f"fields must be non-empty subsets, bitmasks in [1, {(1 << n) - 1}], got {fields.tolist()}")
  return fields


def summary(value: Any) -> Any:
  """Converts a metric result to JSON-able Python values.

  Arrays become (nested) lists, NumPy/JAX scalars become ``float``/``int``/``bool``,
  non-finite floats become ``None``; dicts, lists and tuples recurse.
  """
  if isinstance(value, dict):
    return {str(k): summary(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [summary(v) for v in value]
  if isinstance(value, (jax.Array, np.ndarray)):
    arr = np.asarray(value)
    if arr.ndim == 0:
      return summary(arr.item())
    return [summary(v) for v in arr.tolist()]
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return value if math.isfinite(value) else None
  if value is None or isinstance(value, str):
    return value
  raise TypeError(f"cannot convert {type(value).__name__} to JSON")


def _stats(x: np.ndarray, prefix: str) -> dict:
  x = np.asarray(x, np.float64)
  if x.size == 0:
    return {f"{prefix}_mean": 0.0, f"{prefix}_max": 0.0, f"{prefix}_min": 0.0}
  return {f"{prefix}_mean": float(x.mean()), f"{prefix}_max": float(x.max()), f"{prefix}_min": float(x.min())}


# ---------------------------------------------------------------------------
# Completeness (v2 Axiom 1, Theorem 2 with Ŝ = N; docs/method.md §Completeness)
# ---------------------------------------------------------------------------


def completeness(components, f, *, u=None, decode: Decode | None = None, image=None, masks=None) -> dict:
  """Feature completeness ``f = f0 + Σ_{S≠∅} Δf_S`` (v2 Axiom 1; v1 eq. 11 at Ŝ = N).

  Returns:
    ``feature_error``: ``‖f0 + Σ_S Δf_S − f‖₂ / ‖f − f0‖₂``. The OR components
      sum to ``u(N) − f0`` exactly, so this is how far the minimal feature
      ``u(N)`` is from ``f`` (the L1 term of eq. 5 shrinks it).
    ``identity_error`` (with ``u``): ``‖f0 + Σ_S Δf_S − u(N)‖₂ / ‖u(N) − f0‖₂``,
      the numerical error of the transform (0 up to rounding).
    ``image_rmse`` (with ``decode`` and ``image``): RMSE of ``g(f0 + Σ_S Δf_S)``
      (= ``g(u(N))``) against ``image`` over all pixels; ``image_rmse_players``
      (with ``masks``): the same over the pixels of the chosen patches, which
      is what eq. 5 constrains.
  """
  comps = np.asarray(components)
  f = np.asarray(f)
  if comps.shape[1:] != f.shape:
    raise ValueError(f"components hold features of shape {comps.shape[1:]} but f has shape {f.shape}")
  f0 = comps[0].astype(np.float64)
  total = f0 + _flat(comps[1:]).sum(0).reshape(f.shape) if comps.shape[0] > 1 else f0
  out = {"feature_error": float(safe_ratio(np.linalg.norm(total - f), np.linalg.norm(f - f0)))}
  if u is not None:
    un = np.asarray(u, np.float64)[-1]
    out["identity_error"] = float(safe_ratio(np.linalg.norm(total - un), np.linalg.norm(un - f0)))
  if decode is not None and image is not None:
    img = np.asarray(decoding.decode_one(decode, jnp.asarray(total, comps.dtype)), np.float64)
    image = np.asarray(image, np.float64)
    out["image_rmse"] = float(np.sqrt(np.mean((img - image) ** 2)))
    if masks is not None:
      masks = _check_masks(masks, num_players(comps), image.shape)
      per, count = patch_sq_error(img[None], image, masks)
      out["image_rmse_players"] = float(union_rmse(per, count, np.ones(masks.shape[0], bool))[0])
  return out


# ---------------------------------------------------------------------------
# Linear additivity (v2 §3.1, Fig. 4, App. E; v1 eq. 11)
# ---------------------------------------------------------------------------


@jax.jit
def _kept_matching(comps, keep):
  """``or_matching`` of the components with weights ``keep`` (1 kept, 0 dropped), one compiled call."""
  return transforms.or_matching(comps * keep.reshape((-1,) + (1,) * (comps.ndim - 1)))


def _matching_norms(h: np.ndarray, u: np.ndarray, rows: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """``‖h(Ŝ) − u(Ŝ)‖₂``, ``‖u(Ŝ)‖₂`` and ``‖u(Ŝ) − u(∅)‖₂`` in float64, a few rows at a time (the same sums
  as on the whole arrays, without their float64 copies: each row is reduced on its own)."""
  h2, u2 = h.reshape(h.shape[0], -1), u.reshape(u.shape[0], -1)
  u0 = u2[0].astype(np.float64)
  miss, norms, size = (np.empty(u2.shape[0]) for _ in range(3))
  for start in range(0, u2.shape[0], rows):
    stop = min(start + rows, u2.shape[0])
    ub = u2[start:stop].astype(np.float64)
    miss[start:stop] = np.linalg.norm(h2[start:stop].astype(np.float64) - ub, axis=1)
    norms[start:stop] = np.linalg.norm(ub, axis=1)
    size[start:stop] = np.linalg.norm(ub - u0, axis=1)
  return miss, norms, size


def additivity(components, u, k: int = ADDITIVITY_TOP_K) -> dict:
  """Matching error of the top-K OR surrogate (v2 §3.1, Fig. 4; App. E).

      h_K(Ŝ) = f0 + Σ_{S ∈ topK, S∩Ŝ≠∅} Δf_S        (v2 eq. 7 / v1 eq. 11)
      error(Ŝ) = ‖h_K(Ŝ) − u(Ŝ)‖₂ / √D              (docs/method.md §Additivity)

  for every ``Ŝ ⊆ N``; topK are the ``k`` components with the largest
  ``‖Δf_S‖₂`` (the paper: top-30 of 512). With ``k ≥ 2**n − 1`` the error is
  0 up to rounding (Theorem 2).

  Returns ``errors`` ``(2**n,)``, ``u_norms`` ``(2**n,)`` (``‖u(Ŝ)‖₂``, the
  curve of Fig. 4), ``order`` (subsets by ascending ``‖u(Ŝ)‖₂``, the x axis
  of Fig. 4), ``relative_errors`` (``‖h_K − u‖ / ‖u(Ŝ) − f0‖``), ``kept``
  (the top-K fields), ``k``, ``error_mean/max/min`` and the headline
  ``aggregate_relative_error`` = √(Σ_Ŝ ‖h_K(Ŝ) − u(Ŝ)‖² / Σ_Ŝ ‖u(Ŝ) − f0‖²):
  how much of the minimal features' departure from ``f0`` the top-K miss
  (0: the K components rebuild every u(Ŝ); 1: no better than ``h = f0``).
  """
  comps = jnp.asarray(components)
  u = jnp.asarray(u)
  if comps.shape != u.shape:
    raise ValueError(f"components {comps.shape} and u {u.shape} must have the same shape")
  if int(k) != k or k < 0:
    raise ValueError(f"k must be a non-negative integer, got {k}")
  n = num_players(comps)
  kept = components_lib.top_k(comps, min(int(k), (1 << n) - 1))
  keep = _kept(n, kept).astype(np.float32)
  keep[0] = 1.0  # f0 stays
  h = _kept_matching(comps, jnp.asarray(keep, comps.dtype))
  miss, u_norms, size = _matching_norms(np.asarray(h), np.asarray(u))
  dim = int(np.prod(comps.shape[1:]))
  errors = miss / math.sqrt(max(dim, 1))
  rel = safe_ratio(miss, size)
  # one number for all Ŝ: √(Σ_Ŝ ‖h_K(Ŝ) − u(Ŝ)‖² / Σ_Ŝ ‖u(Ŝ) − f0‖²)
  aggregate = float(
    safe_ratio(np.sqrt((miss.astype(np.float64) ** 2).sum()), np.sqrt((size.astype(np.float64) ** 2).sum()))
  )
  out = {
    "errors": errors,
    "u_norms": u_norms,
    "order": np.argsort(u_norms, kind="stable"),
    "relative_errors": rel,
    "kept": kept,
    "k": int(len(kept)),
    "aggregate_relative_error": aggregate,
  }
  out.update(_stats(errors, "error"))
  return out


# ---------------------------------------------------------------------------
# Spatial boundedness (v2 §3.2.1, Fig. 6; v2 Axiom 2)
# ---------------------------------------------------------------------------


def boundedness(decode: Decode, f, components, masks, fields=None, *, batch_size: int | None = None) -> dict:
  """Boundedness ratio ``ρ_S`` of the regional pattern of each component (v2 §3.2.1, Fig. 6).

      p_S = g(f) − g(f − Δf_S)                                (v2 §2.3, "regional pattern")
      ρ_S = ‖p_S ⊙ mask(S)‖² / ‖p_S ⊙ mask(N)‖²     (players' pixels; docs/method.md §Boundedness)

  ``mask(S)`` is the union of the patches of the action field ``S``. The
  denominator counts the pixels of all chosen patches: eq. 5 constrains only
  those, so the background outside the players is free to change and is
  not held against a component. ``rho_image`` uses the whole image instead
  (the literal "entire pattern" of v2 §3.2.1). A pattern that is exactly 0
  (a zero component) paints nothing outside its field: ``ρ = 1`` there, and
  it is flagged in ``empty`` and left out of the ``rho_*`` statistics.

  Args:
    fields: bitmasks to evaluate; default every non-empty ``S`` with
      ``Δf_S ≠ 0``, strongest first.

  Returns ``fields``, ``rho``, ``rho_image``, ``energy`` (``‖p_S ⊙ mask(N)‖²``),
  ``empty`` (bool), ``norms`` (``‖Δf_S‖₂``) and ``rho_mean/min/max``,
  ``rho_image_mean/min/max`` over the non-empty patterns.
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  image_shape = jax.eval_shape(decode, jax.ShapeDtypeStruct(comps.shape[1:], comps.dtype)).shape
  masks = _check_masks(masks, n, image_shape)
  norms = components_lib.component_norms(comps)
  if fields is None:
    fields = ranked_fields(comps, np.arange(1, 1 << n))
    fields = fields[norms[fields] > 0]
  fields = _check_fields(fields, n)
  out = {"fields": fields, "norms": norms[fields]}
  if fields.size == 0:
    empty = np.zeros(0, bool)
    out.update(rho=np.zeros(0), rho_image=np.zeros(0), energy=np.zeros(0), empty=empty)
    out.update(_stats(np.zeros(0), "rho"))
    out.update(_stats(np.zeros(0), "rho_image"))
    return out
  f = np.asarray(f, comps.dtype)
  feats = f[None] - np.asarray(comps)[fields]
  base = np.asarray(decoding.decode_one(decode, f), np.float64)
  patterns = base[None] - np.asarray(decode_batch(decode, feats, batch_size), np.float64)
  per, _ = patch_sq_error(patterns, np.zeros_like(base), masks)  # (F, n) energy per patch
  inside = np.stack([bits_of(s, n) for s in fields])  # (F, n)
  e_in = (per * inside).sum(-1)
  e_players = per.sum(-1)
  e_image = (patterns**2).reshape(len(fields), -1).sum(-1)
  empty = e_image == 0
  rho = np.where(empty, 1.0, safe_ratio(e_in, e_players))
  rho_image = np.where(empty, 1.0, safe_ratio(e_in, e_image))
  out.update(rho=rho, rho_image=rho_image, energy=e_players, empty=empty)
  out.update(_stats(rho[~empty], "rho"))
  out.update(_stats(rho_image[~empty], "rho_image"))
  return out


# ---------------------------------------------------------------------------
# Boundary breach (v2 §3.2.2, Fig. 5; v1 §4.2 "irrelevant feature components", Fig. 5)
# ---------------------------------------------------------------------------


def boundary_breach(
  decode: Decode,
  components,
  masks,
  players=None,
  *,
  fractions=DEFAULT_FRACTIONS,
  kept=None,
  batch_size: int | None = None,
) -> dict:
  """RMSE of a patch while the components whose fields exclude it are added (v2 §3.2.2, Fig. 5).

  For patch ``i``: ``Ω_i = {S ≠ ∅ : i ∉ S}`` (restricted to ``kept``), ranked
  by ``‖Δf_S‖₂``, strongest first. For each fraction ``p`` the first
  ``round(p·|Ω_i|)`` of them are added, ``f̂ = f0 + Σ Δf_S`` (v1 §4.2), and

      breach_i(p) = RMSE(clip_i(g(f̂)), clip_i(g(f0)))       ≈ 0 if bounded
      others_i(p) = RMSE over the other players' pixels vs g(f0)  (grows)

  (RMSE over pixels and channels). The paper adds the components "in
  growing fractions" without an order; strongest first is our choice (the
  largest changes appear earliest).

  Args:
    players: patch indices to test (default all ``n``).

  Returns ``players``, ``fractions``, ``counts`` ``(P_players, F)``,
  ``rmse_patch`` ``(P_players, F)`` (the breach curve), ``rmse_others``
  ``(P_players, F)``, ``rmse_per_patch`` ``(P_players, F, n)``, and
  ``breach_max`` (max over players and fractions of ``rmse_patch``),
  ``breach_mean``, ``others_final_mean`` (mean of ``rmse_others`` at the
  largest fraction).
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  base = decoding.decode_one(decode, comps[0])
  masks = _check_masks(masks, n, base.shape)
  players = np.arange(n) if players is None else np.atleast_1d(np.asarray(players, np.int64))
  if players.size == 0 or players.min() < 0 or players.max() >= n:
    raise ValueError(f"players must be indices in [0, {n}), got {players.tolist()}")
  keep = _kept(n, kept)
  all_s = subsets_lib.all_subsets(n)
  rows, counts = [], []
  for i in players:
    omega = ranked_fields(comps, all_s[keep & ~subsets_lib.contains(int(i), n)])
    c = fraction_counts(fractions, omega.size)
    rows.append(prefix_weights(n, omega, c))
    counts.append(c)
  weights = np.concatenate(rows)
  images = decode_combinations(decode, comps, weights, batch_size)
  per, count = patch_sq_error(images, base, masks)
  per_rmse = np.sqrt(safe_ratio(per, count[None]))
  num_f = len(counts[0])
  member = np.zeros((len(players), n), bool)
  member[np.arange(len(players)), players] = True
  member = np.repeat(member, num_f, axis=0)
  rmse_patch = union_rmse(per, count, member).reshape(len(players), num_f)
  rmse_others = union_rmse(per, count, ~member).reshape(len(players), num_f)
  return {
    "players": players,
    "fractions": np.asarray(fractions, np.float64),
    "counts": np.stack(counts),
    "rmse_patch": rmse_patch,
    "rmse_others": rmse_others,
    "rmse_per_patch": per_rmse.reshape(len(players), num_f, n),
    "breach_max": float(rmse_patch.max()),
    "breach_mean": float(rmse_patch.mean()),
    "others_final_mean": float(rmse_others[:, -1].mean()),
  }


# ---------------------------------------------------------------------------
# Consistency (v2 §3.3, Fig. 7; v2 Axiom 3)
# ---------------------------------------------------------------------------


def consistency(
  decode: Decode,
  components,
  fields=None,
  *,
  num_contexts: int = 8,
  seed: int = 0,
  top: int = 10,
  kept=None,
  batch_size: int | None = None,
  paper_literal: bool = False,
) -> dict:
  """Inconsistency of the regional pattern of ``Δf_S`` across contexts (v2 §3.3, Fig. 7).

  A context is a random set of patches ``T ⊆ N \\ S`` (non-empty, uniform,
  drawn with ``seed``) and the components that generate it while keeping
  clear of ``S``'s field, ``Ω_T = {S' ≠ ∅ : S' ∩ T ≠ ∅, S' ∩ S = ∅}``
  (restricted to ``kept``). With ``f_T = f0 + Σ_{S'∈Ω_T} Δf_{S'}``:

      p_S^(T) = g(f_T + Δf_S) − g(f_T)             (pattern when T is generated)
      p_S^ref = g(f0 + Δf_S) − g(f0)               (T = ∅)
      inconsistency(S) = mean_T ‖p_S^(T) − p_S^ref‖₂ / ‖p_S^ref‖₂

  over the whole image. v2 §3.3 defines Ω_T as all components generating
  ``T``; we drop those whose field also meets ``S`` (the brief's "components
  whose fields are disjoint from S"), because such a component paints ``S``'s
  own patches and would change the pattern even for a perfectly consistent
  generator. ``paper_literal=True`` uses v2 §3.3's Ω_T as written: every
  component whose field meets ``T`` (``S`` itself left out).
  When ``N \\ S`` is empty there is no context: the value is 0 and
  ``num_contexts`` is 0 for that field. A zero component gives 0.

  Args:
    fields: bitmasks to test; default the ``top`` strongest non-zero components.

  Returns ``fields``, ``inconsistency`` ``(F,)``, ``per_context`` ``(F, C)``
  (NaN-free; unused contexts are 0), ``contexts`` ``(F, C)`` (the bitmasks
  ``T``, 0 = unused), ``num_contexts`` ``(F,)``, ``reference_norm`` ``(F,)``,
  and ``inconsistency_mean/max/min``.
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  norms = components_lib.component_norms(comps)
  if fields is None:
    fields = components_lib.top_k(comps, min(int(top), (1 << n) - 1))
    fields = fields[norms[fields] > 0]
  fields = _check_fields(fields, n)
  if int(num_contexts) != num_contexts or num_contexts < 1:
    raise ValueError(f"num_contexts must be a positive integer, got {num_contexts}")
  num_contexts = int(num_contexts)
  rng = np.random.default_rng(seed)
  keep = _kept(n, kept)
  all_s = subsets_lib.all_subsets(n)
  full = subsets_lib.full_set(n)
  contexts = np.zeros((len(fields), num_contexts), np.int64)
  weights = []  # per field: reference base, then each context base (weights without S)
  for a, s in enumerate(fields):
    outside = full ^ int(s)
    choices = subsets_lib.subsets_of(outside)[1:]  # non-empty T ⊆ N \ S
    if choices.size:
      contexts[a] = rng.choice(choices, size=num_contexts, replace=True)
    for t in contexts[a]:
      clear = (all_s != int(s)) if paper_literal else ((all_s & int(s)) == 0)
      w = (keep & ((all_s & int(t)) != 0) & clear).astype(np.float32)
      weights.append(w)
  if not len(fields):
    out = {
      "fields": fields,
      "inconsistency": np.zeros(0),
      "per_context": np.zeros((0, num_contexts)),
      "contexts": contexts,
      "num_contexts": np.zeros(0, np.int64),
      "reference_norm": np.zeros(0),
    }
    out.update(_stats(np.zeros(0), "inconsistency"))
    return out
  weights = np.stack(weights).reshape(len(fields), num_contexts, 1 << n)
  # Batch: [context base, context base + Δf_S] for every (field, context), and the references.
  with_s = weights.copy()
  with_s[np.arange(len(fields)), :, fields] = 1.0
  ref_w = np.zeros((2, len(fields), 1 << n), np.float32)
  ref_w[1, np.arange(len(fields)), fields] = 1.0
  batch = np.concatenate([weights.reshape(-1, 1 << n), with_s.reshape(-1, 1 << n), ref_w.reshape(-1, 1 << n)])
  images = np.asarray(decode_combinations(decode, comps, batch, batch_size), np.float64)
  m = len(fields) * num_contexts
  p_ctx = (images[m : 2 * m] - images[:m]).reshape((len(fields), num_contexts) + images.shape[1:])
  p_ref = images[2 * m + len(fields) :] - images[2 * m : 2 * m + len(fields)]
  ref_norm = np.linalg.norm(p_ref.reshape(len(fields), -1), axis=1)
  diff = np.linalg.norm((p_ctx - p_ref[:, None]).reshape(len(fields), num_contexts, -1), axis=-1)
  used = contexts != 0
  per_context = np.where(used, safe_ratio(diff, ref_norm[:, None]), 0.0)
  num_used = used.sum(1)
  inconsistency = safe_ratio(per_context.sum(1), num_used)
  out = {
    "fields": fields,
    "inconsistency": inconsistency,
    "per_context": per_context,
    "contexts": contexts,
    "num_contexts": num_used,
    "reference_norm": ref_norm,
  }
  out.update(_stats(inconsistency, "inconsistency"))
  return out


# ---------------------------------------------------------------------------
# Controllable and sequential reconstruction (v1 §4.2, Fig. 4, Fig. 7; v2 §3.5, App. F, Fig. 9–12)
# ---------------------------------------------------------------------------


def controllable_reconstruction(
  decode: Decode,
  components,
  image,
  masks,
  target_sets,
  *,
  fractions=DEFAULT_FRACTIONS,
  kept=None,
  batch_size: int | None = None,
) -> dict:
  """RMSE of target patches as the covering components are added (v1 Fig. 7; v2 App. F, Fig. 9–10).

  For a target set ``Ŝ``: ``Ω_Ŝ = {S ≠ ∅ : S ∩ Ŝ ≠ ∅}`` (restricted to
  ``kept``), ranked by ``‖Δf_S‖₂`` strongest first (our choice; the paper
  says "incrementally added"); the first ``round(p·|Ω_Ŝ|)`` are added to
  ``f0``, ``f̂ = f0 + Σ Δf_S`` (Algorithm 2 at ``p = 1``), and

      RMSE = sqrt( ‖clip_Ŝ(g(f̂)) − clip_Ŝ(x)‖² / (|Ŝ| · pixels per patch · C) )   (v2 App. F)

  i.e. the RMSE over the pixels of ``Ŝ`` (unequal patches are weighted by
  their pixel counts). ``rmse_others`` is the same over the other players.

  Args:
    image: the target image ``x = g(f)``.
    target_sets: a bitmask or a list of bitmasks ``Ŝ`` (``1 << i`` for patch i).

  Returns ``target_sets``, ``fractions``, ``counts`` ``(T, F)``,
  ``rmse_target`` ``(T, F)``, ``rmse_others`` ``(T, F)``, ``rmse_per_patch``
  ``(T, F, n)``, ``final_rmse_mean`` (mean over targets at the largest
  fraction) and ``initial_rmse_mean`` (at the smallest).
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  image = np.asarray(image, np.float64)
  masks = _check_masks(masks, n, image.shape)
  targets = _check_fields(target_sets, n)
  keep = _kept(n, kept)
  all_s = subsets_lib.all_subsets(n)
  rows, counts = [], []
  for t in targets:
    omega = ranked_fields(comps, all_s[keep & subsets_lib.meets(int(t), n)])
    c = fraction_counts(fractions, omega.size)
    rows.append(prefix_weights(n, omega, c))
    counts.append(c)
  images = decode_combinations(decode, comps, np.concatenate(rows), batch_size)
  per, count = patch_sq_error(images, image, masks)
  num_f = len(counts[0])
  member = np.repeat(np.stack([bits_of(t, n) for t in targets]), num_f, axis=0)
  rmse_target = union_rmse(per, count, member).reshape(len(targets), num_f)
  rmse_others = union_rmse(per, count, ~member).reshape(len(targets), num_f)
  return {
    "target_sets": targets,
    "fractions": np.asarray(fractions, np.float64),
    "counts": np.stack(counts),
    "rmse_target": rmse_target,
    "rmse_others": rmse_others,
    "rmse_per_patch": np.sqrt(safe_ratio(per, count[None])).reshape(len(targets), num_f, n),
    "final_rmse_mean": float(rmse_target[:, -1].mean()),
    "initial_rmse_mean": float(rmse_target[:, 0].mean()),
  }


def sequential_reconstruction(
  decode: Decode, components, image, masks, order=None, *, seed: int = 0, kept=None, batch_size: int | None = None
) -> dict:
  """Patches regenerated one by one (v2 App. F, Fig. 11–12; v1 Fig. 4).

  Step ``k`` (``k = 0 … n``) targets ``Ŝ_k = {o_1, …, o_k}`` and decodes
  ``f̂_k = f0 + Σ_{S ∩ Ŝ_k ≠ ∅} Δf_S`` (all components meeting the growing set,
  restricted to ``kept``); step 0 is ``g(f0)``. The paper picks each new
  patch at random: the default ``order`` is a permutation drawn with ``seed``.

  Returns ``order`` ``(n,)``, ``rmse_per_patch`` ``(n+1, n)`` (RMSE of every
  patch vs ``image`` after each step), ``rmse_added`` ``(n+1,)`` (over the
  pixels of ``Ŝ_k``; 0 at step 0), ``rmse_new`` ``(n+1,)`` (the patch added
  at that step; 0 at step 0), ``rmse_rest`` ``(n+1,)`` (over the patches not
  yet added; 0 at the last step), ``num_components`` ``(n+1,)``,
  ``new_rmse_mean`` and ``final_rmse``.
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  image = np.asarray(image, np.float64)
  masks = _check_masks(masks, n, image.shape)
  if order is None:
    order = np.random.default_rng(seed).permutation(n)
  order = np.asarray(order, np.int64)
  if sorted(order.tolist()) != list(range(n)):
    raise ValueError(f"order must be a permutation of the {n} players, got {order.tolist()}")
  keep = _kept(n, kept)
  sets = [0]
  for i in order:
    sets.append(sets[-1] | (1 << int(i)))
  weights = np.stack([(keep & subsets_lib.meets(s, n)).astype(np.float32) for s in sets])
  images = decode_combinations(decode, comps, weights, batch_size)
  per, count = patch_sq_error(images, image, masks)
  added = np.stack([bits_of(s, n) for s in sets])
  new = np.zeros_like(added)
  new[np.arange(1, n + 1), order] = True
  rmse_added = union_rmse(per, count, added)
  rmse_new = union_rmse(per, count, new)
  rmse_rest = union_rmse(per, count, ~added)
  return {
    "order": order,
    "rmse_per_patch": np.sqrt(safe_ratio(per, count[None])),
    "rmse_added": rmse_added,
    "rmse_new": rmse_new,
    "rmse_rest": rmse_rest,
    "num_components": weights.sum(1).astype(np.int64),
    "new_rmse_mean": float(rmse_new[1:].mean()),
    "final_rmse": float(rmse_added[-1]),
  }


# ---------------------------------------------------------------------------
# Transferability (v2 §3.4, Fig. 8)
# ---------------------------------------------------------------------------


def transferability(components_a, components_b, k: int) -> dict:
  """Share of top-K action fields common to two images (v2 §3.4, Fig. 8).

      ratio = |Ω_a ∩ Ω_b| / K,   Ω_x = action fields of the K strongest ‖Δf_S‖₂ of image x

  Both decompositions must use the same players (the same patches of the
  grid) so that bitmasks mean the same fields. Components that are exactly
  zero are never counted among the top-K (a field that paints nothing is not
  "salient"), so two all-zero decompositions give 0, not 1. ``k`` is capped
  at ``2**n − 1``. Paper: 88.0% (NVAE), 76.3% (SiD) — ``TRANSFERABILITY_*``.

  Returns ``ratio``, ``k``, ``fields_a``, ``fields_b``, ``common`` (in ``a``'s
  order), ``transferable`` (bool over ``fields_a``).
  """
  na, nb = num_players(components_a), num_players(components_b)
  if na != nb:
    raise ValueError(f"the two decompositions have different numbers of players ({na} and {nb})")
  if int(k) != k or k < 1:
    raise ValueError(f"k must be a positive integer, got {k}")
  k = min(int(k), (1 << na) - 1)

  def top(c):
    norms = components_lib.component_norms(c)
    t = components_lib.top_k(c, k)
    return t[norms[t] > 0]

  fa, fb = top(components_a), top(components_b)
  transferable = np.isin(fa, fb)
  return {
    "ratio": float(transferable.sum() / k),
    "k": k,
    "fields_a": fa,
    "fields_b": fb,
    "common": fa[transferable],
    "transferable": transferable,
    "chance_uniform": float(min(k, fa.size) * min(k, fb.size) / ((1 << na) - 1) / k),
    "chance_size_matched": transfer_chance(fa, fb, na, k),
  }


def transfer_chance(fields_a, fields_b, n: int, k: int) -> float:
  """The transferability two images would share by chance, sizes held fixed.

  Replace each image's top-K fields by fields drawn uniformly among the sets of
  the same sizes: with ``a_s``, ``b_s`` fields of size ``s`` in the two lists,
  the expected number in common is ``Σ_s a_s · b_s / C(n, s)``; divided by K.
  Large coalitions are few (one set of size n), so two images whose top fields
  are all large share many of them whatever the content: this is the level a
  ratio must clear to say the *regions* transfer.
  """
  size_of = lambda fields: np.bincount([bin(int(s)).count("1") for s in fields], minlength=n + 1)  # noqa: E731
  a, b = size_of(fields_a), size_of(fields_b)
  expected = sum(a[s] * b[s] / math.comb(n, s) for s in range(1, n + 1))
  return float(expected / k)


# ---------------------------------------------------------------------------
# Sparsity (v2 §2.3, Fig. 3; v1 §4.1, Fig. 6)
# ---------------------------------------------------------------------------


def sparsity(
  components, *, eps: float = 1e-2, thresholds: Iterable[float] = (1e-1, 1e-2, 1e-3), max_points: int = 2048
) -> dict:
  """Sparsity of all elements of all components (v2 §2.3, Fig. 3; v1 Fig. 6).

  All elements of all ``Δf_S`` (``S ≠ ∅``; ``f0`` is not a component) sorted
  by ``|·|`` in descending order — the curve of Fig. 3 — and the share of
  near-zero elements ``|x| < eps · max|x|`` (the paper gives no threshold:
  ``eps`` is ours). ``shares`` gives the share for each of ``thresholds``.

  Returns ``curve`` (the sorted magnitudes subsampled to at most
  ``max_points`` points, always keeping the first and last), ``curve_rank``
  (their ranks as fractions in [0, 1]), ``near_zero_share``, ``eps``,
  ``thresholds``, ``shares``, ``max_abs``, ``num_elements``,
  ``norms_sorted`` (``‖Δf_S‖₂`` descending, for the 60%/40% remarks of v1
  App. H) and ``l1`` (``Σ_S ‖Δf_S‖₁``, the objective of v1 eq. 16).
  """
  comps = np.asarray(components, np.float64)
  num_players(comps)
  x = np.abs(comps[1:].reshape(-1))
  thresholds = tuple(float(t) for t in thresholds)
  norms = np.sort(components_lib.component_norms(comps)[1:])[::-1]
  if x.size == 0:
    return {
      "curve": np.zeros(0),
      "curve_rank": np.zeros(0),
      "near_zero_share": 0.0,
      "eps": float(eps),
      "thresholds": thresholds,
      "shares": [0.0] * len(thresholds),
      "max_abs": 0.0,
      "num_elements": 0,
      "norms_sorted": norms,
      "l1": 0.0,
    }
  xs = np.sort(x)[::-1]
  top = xs[0]
  idx = np.unique(np.round(np.linspace(0, xs.size - 1, min(max_points, xs.size))).astype(np.int64))

  def share(e):
    # all elements are "near zero" when every element is exactly 0
    return float(np.mean(x < e * top)) if top > 0 else 1.0

  return {
    "curve": xs[idx],
    "curve_rank": idx / max(xs.size - 1, 1),
    "near_zero_share": share(eps),
    "eps": float(eps),
    "thresholds": thresholds,
    "shares": [share(t) for t in thresholds],
    "max_abs": float(top),
    "num_elements": int(x.size),
    "norms_sorted": norms,
    "l1": float(x.sum()),
  }


# ---------------------------------------------------------------------------
# Salient components (v1 App. H; v1 Algorithm 1)
# ---------------------------------------------------------------------------


def salient_set(
  decode: Decode,
  components,
  masks=None,
  *,
  fraction: float = SALIENT_FRACTION,
  rel_tol: float = 0.05,
  image=None,
  batch_size: int | None = None,
) -> dict:
  """Salient components by the removal criterion of v1 App. H, and the top-60% set.

  v1 App. H: "we ranked those feature components by their L-2 norm. In order
  to find out which components are salient, we removed the feature
  components from the intermediate feature in descending order, until the
  generated image is similar to the baseline image. Empirically, ... the top
  60% feature components were salient."

  Our reading: rank ``S ≠ ∅`` by ``‖Δf_S‖₂`` descending; after removing the
  ``k`` strongest, ``f_k = f0 + Σ_{S not removed} Δf_S`` (the components
  explain ``u(N) = f0 + Σ_S Δf_S``, which is ``f`` under completeness, so
  ``f_M = f0`` exactly once all ``M = 2**n − 1`` are removed). The image is
  "similar to the baseline" when

      d_k = RMSE(g(f_k), g(f0)) ≤ rel_tol · d_0        (``rel_tol`` ours; pixels of the players if ``masks``)

  and the salient set is the ``k*`` removed components for the smallest such
  ``k*`` (``k* = 0`` if ``d_0`` is already 0). One batched decode for all
  ``k = 0 … M``.

  Returns ``num_salient``, ``fraction_salient`` (``k*/M``), ``salient_fields``,
  ``num_components`` (M), ``top_fraction_fields`` / ``num_top_fraction``
  (the strongest ``fraction`` of M, v1 App. H: 60%), ``removed``
  ``(M+1,)`` and ``rmse_to_baseline`` ``(M+1,)`` (the curve ``d_k``), and with
  ``image``: ``rmse_salient_only`` / ``rmse_top_fraction_only``, the RMSE of
  ``g(f0 + Σ_{S salient} Δf_S)`` against ``image`` (Algorithm 2 with ``Ŝ = N``).
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  if not 0.0 <= fraction <= 1.0:
    raise ValueError(f"fraction must be in [0, 1], got {fraction}")
  if not rel_tol >= 0:
    raise ValueError(f"rel_tol must be >= 0, got {rel_tol}")
  m = (1 << n) - 1
  order = components_lib.rank(comps)
  w = np.ones((m + 1, 1 << n), np.float32)
  for k in range(1, m + 1):
    w[k, order[:k]] = 0.0
  top_fields = components_lib.top_fraction(comps, fraction)
  images = np.asarray(decode_combinations(decode, comps, w, batch_size), np.float64)
  base = images[-1]
  if masks is not None:
    masks = _check_masks(masks, n, base.shape)
    per, count = patch_sq_error(images, base, masks)
    d = union_rmse(per, count, np.ones(n, bool))
  else:
    d = np.sqrt(((images - base) ** 2).reshape(m + 1, -1).mean(-1))
  hit = np.nonzero(d <= rel_tol * d[0])[0]
  k_star = int(hit[0]) if hit.size else m
  salient = order[:k_star]
  out = {
    "num_salient": k_star,
    "fraction_salient": float(k_star / m),
    "salient_fields": salient,
    "num_components": m,
    "top_fraction_fields": top_fields,
    "num_top_fraction": int(top_fields.size),
    "fraction": float(fraction),
    "rel_tol": float(rel_tol),
    "removed": np.arange(m + 1),
    "rmse_to_baseline": d,
  }
  if image is not None:
    image = np.asarray(image, np.float64)
    sel = np.zeros((2, 1 << n), np.float32)
    sel[0, salient] = 1.0
    sel[1, top_fields] = 1.0
    recon = np.asarray(decode_combinations(decode, comps, sel), np.float64)
    if masks is not None:
      per, count = patch_sq_error(recon, image, masks)
      r = union_rmse(per, count, np.ones(n, bool))
    else:
      r = np.sqrt(((recon - image) ** 2).reshape(2, -1).mean(-1))
    out["rmse_salient_only"], out["rmse_top_fraction_only"] = float(r[0]), float(r[1])
  return out


def reconstruction_errors(decode: Decode, u, image, masks, *, batch_size: int | None = None) -> np.ndarray:
  """RMSE of ``g(u(S))`` vs ``image`` over the pixels of ``S``, for every ``S`` (``(2**n,)``, 0 at ∅).

  The quantity the solver bounds by ``τ`` (v2 eq. 5 / App. E); used to compare
  minimal features before and after denoising (v1 App. G).
  """
  u = jnp.asarray(u)
  n = num_players(u)
  image = np.asarray(image, np.float64)
  masks = _check_masks(masks, n, image.shape)
  images = decode_batch(decode, u, batch_size)
  per, count = patch_sq_error(images, image, masks)
  member = np.stack([bits_of(s, n) for s in range(1 << n)])
  return union_rmse(per, count, member)


# ---------------------------------------------------------------------------
# The solver's movement and the headline figures
# ---------------------------------------------------------------------------


def alpha_movement(alpha) -> dict:
  """How far the solver moved α from its start (``α = 1``) (v2 App. E).

  ``max_one_minus_alpha_full`` = ``max |1 − α_N|``: 0 means ``u(N) = f``, the
  features were never made minimal (e.g. an optimizer whose steps are too
  small for the number of steps). ``mean_by_size[s]`` is the mean α over the
  subsets of size ``s`` (s = 1 … n): minimal features keep less for fewer patches.
  """
  a = np.asarray(alpha, np.float64).reshape(np.shape(alpha)[0], -1)
  n = subsets_lib.num_players_of(a.shape[0])
  sizes = np.array([bin(s).count("1") for s in range(a.shape[0])])
  means = a.mean(-1)
  by_size = [float(means[sizes == k].mean()) for k in range(1, n + 1)]
  return {
    "max_one_minus_alpha_full": float(np.abs(1.0 - a[-1]).max()),
    "mean_alpha_full": float(means[-1]),
    "mean_by_size": by_size,
  }


def field_sizes(fields) -> np.ndarray:
  """Number of patches of each bitmask field."""
  return np.array([bin(int(s)).count("1") for s in fields], dtype=np.int64)


def headline(
  decode: Decode,
  f,
  components,
  u,
  masks,
  *,
  k: int = ADDITIVITY_TOP_K,
  top_fraction: float = 0.1,
  batch_size: int | None = None,
  additivity_result: dict | None = None,
) -> dict:
  """The paper-literal figures of one decomposition.

  ``additivity_result``: :func:`additivity` of these components with this ``k``, when already computed.

  * ``rho_image_top``: mean over the strongest ``top_fraction`` of components
    of ρ with the whole image as denominator (v2 §3.2.1: "the entire pattern");
  * ``additivity_aggregate``: :func:`additivity`'s aggregate relative error
    with the top-``k`` components (v2 §3.1, App. E: top-30 of 512);
  * ``top_k_mean_field_size``: mean number of patches of the top-``k`` fields.
  """
  comps = jnp.asarray(components)
  n = num_players(comps)
  ranked = components_lib.rank(comps)
  norms = components_lib.component_norms(comps)
  ranked = ranked[norms[ranked] > 0]
  top = ranked[: max(1, math.ceil(top_fraction * ((1 << n) - 1)))]
  b = boundedness(decode, f, comps, masks, fields=top, batch_size=batch_size)
  add = additivity(comps, u, k=k) if additivity_result is None else additivity_result
  return {
    "rho_image_top": float(np.mean(b["rho_image"])) if top.size else 1.0,
    "rho_players_top": float(np.mean(b["rho"])) if top.size else 1.0,
    "top_fraction": top_fraction,
    "num_top": int(top.size),
    "additivity_aggregate": add["aggregate_relative_error"],
    "k": add["k"],
    "top_k_mean_field_size": float(field_sizes(add["kept"]).mean()) if add["kept"].size else 0.0,
  }
